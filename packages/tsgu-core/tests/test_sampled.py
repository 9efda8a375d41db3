"""sparse_sampled_mm: values at the pattern, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import BATCH_FORMS, case, generator, tol, values_at, weighted_sum

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
    pytest.param(torch.sparse_csc, torch.int32, id="csc-int32"),
]


def _operands(A, k=3, dtype=torch.float64):
    lead = A.shape[:-2]
    gen = generator(9)
    mat1 = torch.randn((*lead, A.shape[-2], k), generator=gen, dtype=torch.float64).to(dtype)
    mat2 = torch.randn((*lead, k, A.shape[-1]), generator=gen, dtype=torch.float64).to(dtype)
    return mat1, mat2


def _values(S):
    return S._values() if S.layout == torch.sparse_coo else S.values().reshape(-1)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 3])  # one column: the product per entry, no sampled_addmm
def test_values_at_the_pattern(layout, index_dtype, batch, dtype, k):
    A = case("rectangular").make(layout=layout, index_dtype=index_dtype, batch=batch, dtype=dtype)
    mat1, mat2 = _operands(A, k=k, dtype=dtype)
    S = tc.sparse_sampled_mm(A, mat1, mat2)
    assert S.layout == layout and S.shape == A.shape
    if layout == torch.sparse_coo:
        assert torch.equal(S._indices(), A._indices())
    elif layout == torch.sparse_csr:
        assert torch.equal(S.col_indices(), A.col_indices())
        assert S.col_indices().dtype == index_dtype
    torch.testing.assert_close(_values(S), values_at(A, mat1 @ mat2), **tol(dtype))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck(layout, index_dtype, batch):
    A = case("rectangular").make(layout=layout, index_dtype=index_dtype, batch=batch)
    mat1, mat2 = _operands(A)
    mat1.requires_grad_(True)
    mat2.requires_grad_(True)

    W = torch.randn(A.shape, generator=generator(4), dtype=torch.float64)

    def f(a, b):
        return weighted_sum(tc.sparse_sampled_mm(A, a, b), W)

    assert gradcheck(f, (mat1, mat2))
    assert gradgradcheck(f, (mat1, mat2))


def test_uncoalesced_coo_keeps_its_order():
    indices = torch.tensor([[1, 0, 1], [0, 1, 0]])
    A = torch.sparse_coo_tensor(indices, torch.ones(3, dtype=torch.float64), (2, 2))
    U = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    V = torch.tensor([[3.0, 5.0]], dtype=torch.float64)
    S = tc.sparse_sampled_mm(A, U, V)
    assert torch.equal(S._indices(), indices)
    torch.testing.assert_close(S._values(), torch.tensor([6.0, 5.0, 6.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda A, a, b: (A.to_dense(), a, b), TypeError, "A must be a sparse COO, CSR or CSC"),
        (lambda A, a, b: (A, a.to_sparse(), b), TypeError, "mat1 must be a dense"),
        (lambda A, a, b: (A, a[:-1], b), ValueError, "must have A's shape"),
        (lambda A, a, b: (A, a, b[:, :-1]), ValueError, "must have A's shape"),
        (lambda A, a, b: (A, a.float(), b), ValueError, "the same dtype"),
        (lambda A, a, b: (A, a[None], b), ValueError, "mat1 must have 2 dimensions"),
    ],
)
def test_errors(make, error, message):
    A = case("rectangular").make()
    with pytest.raises(error, match=message):
        tc.sparse_sampled_mm(*make(A, *_operands(A)))


def test_batch_mismatch():
    A = case("rectangular").make(batch="batched")
    mat1, mat2 = _operands(A)
    with pytest.raises(ValueError, match="batch sizes must match"):
        tc.sparse_sampled_mm(A, mat1[:2], mat2[:2])
