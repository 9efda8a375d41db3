"""Differentiable constructors: O(nnz) gradients to values, pass-through and gather paths."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import BATCH_FORMS, case, generator, to_layout, values_at, weighted_sum

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
    pytest.param(torch.sparse_csc, torch.int32, id="csc-int32"),
    pytest.param(torch.sparse_csc, torch.int64, id="csc-int64"),
]


def _parts(A):
    """(constructor, index args, values) of a torch sparse tensor."""
    if A.layout == torch.sparse_coo:
        return tc.sparse_coo_tensor, (A._indices(),), A._values()
    if A.layout == torch.sparse_csr:
        return tc.sparse_csr_tensor, (A.crow_indices(), A.col_indices()), A.values()
    return tc.sparse_csc_tensor, (A.ccol_indices(), A.row_indices()), A.values()


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_builds_the_same_tensor_as_torch(layout, index_dtype, batch):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    build, indices, values = _parts(A)
    built = build(*indices, values.clone().requires_grad_(True), A.shape)
    assert built.layout == layout and built.shape == A.shape
    assert torch.equal(built.detach().to_dense(), A.to_dense())
    if layout != torch.sparse_coo:
        assert indices[0].dtype == index_dtype


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_dense_gradient_is_gathered_at_the_pattern(layout, index_dtype, batch):
    A = case("spd").make(layout=layout, index_dtype=index_dtype, batch=batch)
    build, indices, values = _parts(A)
    v = values.clone().requires_grad_(True)
    weight = torch.randn(A.shape, generator=generator(2), dtype=torch.float64)
    weighted_sum(build(*indices, v, A.shape), weight).backward()
    torch.testing.assert_close(v.grad.reshape(-1), values_at(A, weight))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX[:3])
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_same_pattern_sparse_gradient_is_passed_through(layout, index_dtype, batch):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    build, indices, values = _parts(A)
    v = values.clone().requires_grad_(True)
    M = build(*indices, v, A.shape)
    B = torch.randn((*A.shape[:-2], A.shape[-1], 2), generator=generator(3), dtype=torch.float64)
    tc.sparse_mm(M, B).sum().backward()
    G = torch.ones((*A.shape[:-1], 2), dtype=torch.float64)
    expected = values_at(A, G @ B.mT)
    torch.testing.assert_close(v.grad.reshape(-1), expected)


def test_other_pattern_sparse_gradient_is_gathered_without_densifying():
    # The gradient arrives as a sparse tensor with a different pattern (torch's own op).
    indices = torch.tensor([[0, 1, 2], [1, 2, 0]])
    v = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    A = tc.sparse_coo_tensor(indices, v, (3, 3))
    other = torch.sparse_coo_tensor(
        torch.tensor([[0, 2, 2], [1, 0, 2]]),
        torch.tensor([5.0, 7.0, 9.0], dtype=torch.float64),
        (3, 3),
    )
    (A * other).sum().backward()  # d/dA = other at A's pattern: (0,1) -> 5, (1,2) -> 0, (2,0) -> 7
    torch.testing.assert_close(v.grad, torch.tensor([5.0, 0.0, 7.0], dtype=torch.float64))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck_through_a_tsgu_op(layout, index_dtype, batch):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    build, indices, values = _parts(A)
    v = values.clone().requires_grad_(True)
    B = torch.randn((*A.shape[:-2], A.shape[-1], 2), generator=generator(4), dtype=torch.float64)

    if layout == torch.sparse_csc:  # sparse_mm takes COO/CSR: a weighted sum for CSC

        def f(v):
            return weighted_sum(build(*indices, v, A.shape), B[..., :1].mT.expand(A.shape))

    else:

        def f(v):
            return tc.sparse_mm(build(*indices, v, A.shape), B)

    assert gradcheck(f, (v,))
    assert gradgradcheck(f, (v,))


def test_batched_coo():
    dense = case("spd").dense(batch="batched")
    A = dense.to_sparse()
    v = A._values().clone().requires_grad_(True)
    M = tc.sparse_coo_tensor(A._indices(), v, A.shape, is_coalesced=True)
    assert M.is_coalesced()
    assert torch.equal(M.detach().to_dense(), dense)


def test_values_without_grad_give_a_plain_tensor():
    A = to_layout(torch.eye(3, dtype=torch.float64), torch.sparse_csr, torch.int32)
    M = tc.sparse_csr_tensor(A.crow_indices(), A.col_indices(), A.values(), A.shape)
    assert not M.requires_grad and M.grad_fn is None


# ----------------------------------------------------------------------------- errors
_IDX = torch.tensor([[0, 1], [1, 0]])
_VALS = torch.tensor([1.0, 2.0])
_CROW = torch.tensor([0, 1, 2])
_COL = torch.tensor([1, 0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: tc.sparse_coo_tensor(_IDX.tolist(), _VALS, (2, 2)),
            TypeError,
            "indices must be a torch.Tensor",
        ),
        (lambda: tc.sparse_coo_tensor(_IDX, _VALS, (2,)), ValueError, "size must be 2 or 3"),
        (lambda: tc.sparse_coo_tensor(_IDX, _VALS, (2, -1)), ValueError, "size must be 2 or 3"),
        (
            lambda: tc.sparse_coo_tensor(_IDX.float(), _VALS, (2, 2)),
            ValueError,
            "indices must have dtype int32 or int64",
        ),
        (
            lambda: tc.sparse_coo_tensor(_IDX, _VALS, (2, 2, 2)),
            ValueError,
            "indices must have 3 rows",
        ),
        (lambda: tc.sparse_coo_tensor(_IDX, _VALS[:1], (2, 2)), ValueError, "the same nnz"),
        (lambda: tc.sparse_coo_tensor(_IDX, _VALS.long(), (2, 2)), ValueError, "floating-point"),
        (
            lambda: tc.sparse_coo_tensor(_IDX, _VALS.to_sparse(), (2, 2)),
            TypeError,
            "values must be a dense",
        ),
        (
            lambda: tc.sparse_csr_tensor(_CROW, _COL, _VALS, (3, 2)),
            ValueError,
            "crow_indices must have 4 entries",
        ),
        (
            lambda: tc.sparse_csr_tensor(_CROW, _COL.int(), _VALS, (2, 2)),
            ValueError,
            "the same dtype",
        ),
        (
            lambda: tc.sparse_csr_tensor(_CROW, _COL, _VALS[:1], (2, 2)),
            ValueError,
            "the same shape",
        ),
        (
            lambda: tc.sparse_csr_tensor(_CROW, _COL, _VALS, (1, 2, 2)),
            ValueError,
            "must have 2 dimensions",
        ),
        (
            lambda: tc.sparse_csr_tensor(_CROW[None], _COL[None], _VALS[None, :1], (1, 2, 2)),
            ValueError,
            "same shape",
        ),
        (
            lambda: tc.sparse_csr_tensor(_CROW[None], _COL[None], _VALS[None], (2, 2, 2)),
            ValueError,
            "must have 2 rows",
        ),
        (
            lambda: tc.sparse_csc_tensor(_CROW, _COL, _VALS, (2, 3)),
            ValueError,
            "ccol_indices must have 4 entries",
        ),
    ],
)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX[:3])
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_a_matrix_used_twice_accumulates_its_gradient(layout, index_dtype, batch):
    # torch 2.13 corrupts the sum of two batched CSR gradients; tsgu's ops read the
    # constructor's values directly, so the gradients add up on the dense values.
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    build, indices, values = _parts(A)
    v = values.clone().requires_grad_(True)
    M = build(*indices, v, A.shape)
    B = torch.randn((*A.shape[:-2], A.shape[-1], 2), generator=generator(8), dtype=torch.float64)
    (tc.sparse_mm(M, B).sum() + tc.sparse_mm(M, 2 * B).sum()).backward()
    once = values.clone().requires_grad_(True)
    tc.sparse_mm(build(*indices, once, A.shape), 3 * B).sum().backward()
    torch.testing.assert_close(v.grad, once.grad)
