"""sparse_transpose: values, gradients at A's pattern and order, second derivatives, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import (
    BATCH_FORMS,
    assert_error_policy,
    case,
    generator,
    tol,
    values_at,
    weighted_sum,
    with_values,
)

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int32, id="coo-int32"),
    pytest.param(torch.sparse_coo, torch.int64, id="coo-int64"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


def _matrix(layout, index_dtype, batch, dtype=torch.float64, name="rectangular"):
    return case(name).make(layout=layout, index_dtype=index_dtype, batch=batch, dtype=dtype)


def _indices(S):
    if S.layout == torch.sparse_coo:
        return (S._indices(),)
    return (S.crow_indices(), S.col_indices())


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agrees_with_dense_and_keeps_layout(layout, index_dtype, batch, dtype):
    A = _matrix(layout, index_dtype, batch, dtype)
    T = tc.sparse_transpose(A)
    assert T.layout == layout and T.dtype == dtype
    assert T.shape == (*A.shape[:-2], A.shape[-1], A.shape[-2])
    torch.testing.assert_close(T.to_dense(), A.to_dense().mT, **tol(dtype))
    if layout == torch.sparse_csr:
        assert T.crow_indices().dtype == index_dtype
        # a valid torch CSR tensor: sorted, unique columns
        torch._validate_sparse_csr_tensor_args(
            T.crow_indices(), T.col_indices(), T.values(), T.shape
        )
    else:
        assert T.is_coalesced()
        torch.testing.assert_close(T._indices(), T.coalesce()._indices())


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck_and_gradgradcheck(layout, index_dtype, batch):
    A = _matrix(layout, index_dtype, batch)
    values, rebuild = with_values(A)
    W = torch.randn((*A.shape[:-2], A.shape[-1], A.shape[-2]), generator=generator(3)).double()

    def f(v):  # squared, so the second derivative is not zero
        return weighted_sum(tc.sparse_transpose(rebuild(v)), W) ** 2

    assert gradcheck(f, (values,))
    assert gradgradcheck(f, (values,))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradient_has_the_inputs_pattern_and_order(layout, index_dtype, batch):
    A = _matrix(layout, index_dtype, batch).requires_grad_(True)
    B = torch.randn((*A.shape[:-2], A.shape[-2], 2), generator=generator(5)).double()
    G = torch.randn((*A.shape[:-2], A.shape[-1], 2), generator=generator(6)).double()
    tc.sparse_mm(tc.sparse_transpose(A), B).backward(G)
    grad = A.grad
    assert grad.layout == layout and grad.shape == A.shape
    for ours, theirs in zip(_indices(grad), _indices(A), strict=True):
        assert torch.equal(ours, theirs) and ours.dtype == theirs.dtype
    dense = A.detach().to_dense().requires_grad_(True)
    (dense.mT @ B).backward(G)
    flat = grad.values().reshape(-1) if layout == torch.sparse_csr else grad._values()
    torch.testing.assert_close(flat, values_at(A, dense.grad))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_a_second_call_reuses_the_order(layout, index_dtype, monkeypatch):
    A = _matrix(layout, index_dtype, "unbatched")
    values, rebuild = with_values(A)
    first = tc.sparse_transpose(rebuild(values))

    def no_sort(*args, **kwargs):
        raise AssertionError("the second call sorted again")

    monkeypatch.setattr(torch, "sort", no_sort)
    again = tc.sparse_transpose(rebuild(2 * values))
    ours = again._indices() if layout == torch.sparse_coo else again.col_indices()
    theirs = first._indices() if layout == torch.sparse_coo else first.col_indices()
    assert ours.data_ptr() == theirs.data_ptr()
    torch.testing.assert_close(again.detach().to_dense(), 2 * A.to_dense().mT)


def test_uncoalesced_coo_keeps_its_entries_and_order():
    indices = torch.tensor([[2, 0, 1, 0], [1, 2, 0, 2]])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    A = tc.sparse_coo_tensor(indices, values, (3, 4))
    T = tc.sparse_transpose(A)
    assert not T.is_coalesced()
    assert torch.equal(T._indices(), indices.flip(0))
    torch.testing.assert_close(T.to_dense(), A.detach().to_dense().mT)
    weights = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    weighted_sum(T, weights).backward()
    torch.testing.assert_close(values.grad, weights[indices[1], indices[0]])


def test_transposing_twice_gives_back_a():
    A = _matrix(torch.sparse_csr, torch.int32, "batched")
    TT = tc.sparse_transpose(tc.sparse_transpose(A))
    assert torch.equal(TT.crow_indices(), A.crow_indices())
    assert torch.equal(TT.col_indices(), A.col_indices())
    assert torch.equal(TT.values(), A.values())


@pytest.mark.parametrize(
    ("A", "error", "start"),
    [
        (torch.eye(3), TypeError, "sparse_transpose: A must be a sparse COO or CSR tensor"),
        (torch.eye(3).to_sparse_csc(), TypeError, "sparse_transpose: A must be a sparse COO"),
        ([[1.0]], TypeError, "sparse_transpose: A must be a torch.Tensor"),
        (torch.ones(2, 2, 2, 2).to_sparse(), ValueError, "sparse_transpose: A must have 2 or 3"),
    ],
    ids=["dense", "csc", "list", "4d"],
)
def test_bad_input(A, error, start):
    with pytest.raises(error) as info:
        tc.sparse_transpose(A)
    assert_error_policy(info.value, start)
