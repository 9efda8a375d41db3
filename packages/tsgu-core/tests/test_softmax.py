"""sparse_softmax and sparse_log_softmax: values, pattern, gradients, infinities, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import (
    devices,
    generator,
    to_layout,
    tol,
    values_at,
    weighted_sum,
    with_values,
)

OPS = {
    "softmax": (tc.sparse_softmax, torch.softmax),
    "log_softmax": (tc.sparse_log_softmax, torch.log_softmax),
}
AXES = {"rows": (1, 2), "cols": (0, 1), "neg-rows": (-1, -1), "neg-cols": (-2, -2)}


def _dim(axis, batch):
    return AXES[axis][batch == "batched"]


def _out_values(S):
    """Stored values of a sparse result, flat, in stored order."""
    return (S._values() if S.layout == torch.sparse_coo else S.values()).reshape(-1)


def _index_tensors(S):
    if S.layout == torch.sparse_coo:
        return (S._indices(),)
    if S.layout == torch.sparse_csr:
        return S.crow_indices(), S.col_indices()
    return S.ccol_indices(), S.row_indices()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("axis", list(AXES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_match_dense(reduction_case, batch_form, op, axis, dtype, shift_mode):
    ours, dense_op = OPS[op]
    case = reduction_case(dtype)
    dim = _dim(axis, batch_form)
    W = torch.randn(case.A.shape, generator=generator(3), dtype=torch.float64)
    values, rebuild = with_values(case.A)
    S = ours(rebuild(values), dim)
    weighted_sum(S, W.to(dtype)).backward()

    dense = case.filled(-math.inf).double().requires_grad_(True)
    ref = dense_op(dense, dim)
    first = _first(case.A)
    out = _out_values(S).detach().double()
    torch.testing.assert_close(out[first], values_at(case.A, ref)[first], **tol(dtype))
    assert torch.all(out[~first] == 0)  # repeats of an uncoalesced position hold 0
    # absent entries (and the NaN of an all-absent row) carry no weight
    torch.where(case.mask, ref * W, 0.0).sum().backward()
    torch.testing.assert_close(
        values.grad.reshape(-1).double(), values_at(case.A, dense.grad), **tol(dtype)
    )


def _first(A):
    """True where a stored entry of ``A`` is the first one at its position."""
    keys = values_at(A, torch.arange(A.numel()).reshape(A.shape))
    first = torch.zeros_like(keys, dtype=torch.bool)
    seen: set[int] = set()
    for k, key in enumerate(keys.tolist()):  # tiny test matrices: a loop is clearest
        first[k] = key not in seen
        seen.add(key)
    return first


@pytest.mark.parametrize("op", list(OPS))
def test_output_keeps_the_input_pattern(reduction_case, batch_form, op):
    A = reduction_case().A
    S = OPS[op][0](A, -1)
    assert S.layout == A.layout and S.shape == A.shape and S.dtype == A.dtype
    for ours, theirs in zip(_index_tensors(S), _index_tensors(A), strict=True):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    if A.layout == torch.sparse_coo:
        assert S.is_coalesced() == A.is_coalesced()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("axis", ["rows", "cols"])
def test_gradcheck_and_gradgradcheck(reduction_case, batch_form, op, axis):
    # (the backward does not depend on the shift the forward used: one mode is enough)
    A = reduction_case().A
    values, rebuild = with_values(A)
    W = torch.randn(A.shape, generator=generator(5), dtype=torch.float64)
    dim = _dim(axis, batch_form)

    def f(v):
        return weighted_sum(OPS[op][0](rebuild(v), dim), W)

    assert gradcheck(f, (values,))
    assert gradgradcheck(f, (values,))


@pytest.mark.parametrize("op", list(OPS))
def test_matches_torch_sparse_softmax_on_coo(reduction_case, batch_form, op):
    A = reduction_case().A
    if A.layout != torch.sparse_coo:
        A = A.to_sparse_coo()
    torch_op = torch.sparse.softmax if op == "softmax" else torch.sparse.log_softmax
    for dim in (1, 2) if batch_form == "batched" else (0, 1):
        ours = OPS[op][0](A, dim).coalesce()
        theirs = torch_op(A.coalesce(), dim)
        assert torch.equal(ours.indices(), theirs.indices())
        torch.testing.assert_close(ours.values(), theirs.values())


def test_uncoalesced_repeats_hold_zero_and_share_the_gradient():
    indices = torch.tensor([[0, 0, 0, 1], [1, 2, 1, 0]])
    values = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64, requires_grad=True)
    S = tc.sparse_softmax(tc.sparse_coo_tensor(indices, values, (2, 3)), 1)
    assert torch.equal(S._indices(), indices)
    cell = torch.softmax(torch.tensor([1.5, 2.0], dtype=torch.float64), 0)
    expected = torch.stack([cell[0], cell[1], cell.new_zeros(()), cell.new_ones(())])
    torch.testing.assert_close(S._values().detach(), expected)
    W = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    weighted_sum(S, W).backward()
    assert values.grad[0] == values.grad[2]  # both copies of (0, 1)
    # d/dv of 1 * softmax_01 + 2 * softmax_02 over the row (1.5, 2.0)
    p = cell[0]
    torch.testing.assert_close(values.grad[0], p * (1 - p) * (1.0 - 2.0))


_INF, _NAN = math.inf, math.nan
_SPECIAL = torch.tensor(
    [[-_INF, -_INF], [_INF, 1.0], [-_INF, 2.0], [_NAN, 1.0], [1.0, 2.0]], dtype=torch.float64
)


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
def test_infinities_and_nan_behave_as_torch(op, layout, shift_mode):
    A = torch.sparse_coo_tensor(
        torch.ones(5, 2).nonzero().T, _SPECIAL.reshape(-1), (5, 3), is_coalesced=True
    )
    ref = OPS[op][1](torch.cat([_SPECIAL, torch.full((5, 1), -_INF)], 1), 1)
    if layout != torch.sparse_coo:
        A = A.to_sparse_csr() if layout == torch.sparse_csr else A.to_sparse_csc()
    out = OPS[op][0](A, 1)
    torch.testing.assert_close(_out_values(out), values_at(A, ref), equal_nan=True)


@pytest.mark.parametrize("op", list(OPS))
def test_large_values_are_stable(reduction_case, op):
    case = reduction_case(torch.float32, scale=3000.0)
    out = OPS[op][0](case.A, -1)
    ref = OPS[op][1](case.filled(-math.inf).double(), -1)
    first = _first(case.A)
    torch.testing.assert_close(
        _out_values(out).double()[first], values_at(case.A, ref)[first], **tol(torch.float32)
    )


def test_dtype_argument_casts_first():
    A = to_layout(torch.tensor([[1.0, 2.0], [0.0, 3.0]]), torch.sparse_csr)
    S = tc.sparse_softmax(A, 1, dtype=torch.float64)
    assert S.dtype == torch.float64 and S.crow_indices().dtype == A.crow_indices().dtype
    expected = torch.cat([torch.softmax(A.values().double()[:2], 0), torch.ones(1).double()])
    torch.testing.assert_close(S.values(), expected)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
def test_devices(layout, device):
    dense = torch.randn(5, 4, generator=generator(1), dtype=torch.float64)
    dense[dense.abs() < 0.5] = 0.0
    A = to_layout(dense, layout).to(device)
    S = tc.sparse_log_softmax(A, 0)
    assert S.device == A.device
    ref = torch.log_softmax(torch.where(dense != 0, dense, -math.inf), 0)
    torch.testing.assert_close(_out_values(S).cpu(), values_at(A.cpu(), ref))


def test_empty_matrix():
    A = torch.sparse_csr_tensor(
        torch.zeros(4, dtype=torch.int32), torch.zeros(0, dtype=torch.int32), torch.zeros(0), (3, 2)
    )
    S = tc.sparse_softmax(A, 1)
    assert S.values().numel() == 0 and S.crow_indices().dtype == torch.int32


# -------------------------------------------------------------------------- errors
_A = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).to_sparse_csr()
_AB = torch.stack([_A.to_dense()] * 2).to_sparse()


@pytest.mark.parametrize("op", [tc.sparse_softmax, tc.sparse_log_softmax])
@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((_A.to_dense(), 1), TypeError, "input must be a sparse COO, CSR or CSC"),
        ((_A.to_sparse_bsr((1, 1)), 1), TypeError, "got layout BSR"),
        ((torch.ones(2, 2, 2).to_sparse(2), 1), ValueError, "no dense dimensions"),
        ((_A.to_sparse().long(), 1), ValueError, "float32 or float64"),
        ((_A, [1]), TypeError, "dim must be an int"),
        ((_A, 2), ValueError, r"dim must be in \[-2, 1\]"),
        ((_AB, 0), ValueError, "batch dimension 0"),
        ((_AB, -3), ValueError, "batch dimension 0"),
    ],
)
def test_errors(op, args, error, message):
    with pytest.raises(error, match=message):
        op(*args)


def test_bad_dtype_argument():
    with pytest.raises(ValueError, match=r"dtype must be torch\.float32 or torch\.float64"):
        tc.sparse_softmax(_A, 1, dtype=torch.int64)
