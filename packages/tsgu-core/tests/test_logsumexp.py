"""sparse_logsumexp and sparse_bidir_logsumexp: values, gradients, infinities, layouts, errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import (
    devices,
    generator,
    to_layout,
    tol,
    torchsparsegradutils_0_2,
    values_at,
    with_values,
)

# dims by name: (unbatched, batched)
DIMS = {
    "rows": (1, 2),
    "cols": (0, 1),
    "all": ([0, 1], [1, 2]),
    "neg-rows": (-1, -1),
    "neg-all-tuple": ((-1, -2), (-1, -2)),
}


def _dim(name, batch):
    return DIMS[name][batch == "batched"]


def _values_grad(A, fn, G):
    """Output of ``fn(A')`` with A' rebuilt by tsgu's constructors, and the values' gradient."""
    values, rebuild = with_values(A)
    out = fn(rebuild(values))
    out.backward(G)
    return out.detach(), values.grad.reshape(-1)


def _dense_reference(case, dim, keepdim, include_zeros, G):
    dense = case.filled(0.0 if include_zeros else -math.inf).double().requires_grad_(True)
    out = torch.logsumexp(dense, dim, keepdim)
    out.backward(G.double())
    return out.detach(), values_at(case.A, dense.grad)


@pytest.mark.parametrize("dim_name", list(DIMS))
@pytest.mark.parametrize("include_zeros", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_match_dense(
    reduction_case, batch_form, dim_name, include_zeros, dtype, shift_mode
):
    case = reduction_case(dtype)
    dim = _dim(dim_name, batch_form)
    ref_shape = torch.logsumexp(case.dense, dim).shape
    G = torch.randn(ref_shape, generator=generator(3), dtype=torch.float64).to(dtype)
    out, grad = _values_grad(
        case.A, lambda A: tc.sparse_logsumexp(A, dim, include_zeros=include_zeros), G
    )
    ref_out, ref_grad = _dense_reference(case, dim, False, include_zeros, G)
    assert out.dtype == dtype and out.shape == ref_out.shape
    torch.testing.assert_close(out.double(), ref_out, **tol(dtype))
    torch.testing.assert_close(grad.double(), ref_grad, **tol(dtype))
    if not include_zeros and dim_name in ("rows", "neg-rows"):
        assert torch.all(out[..., 2] == -math.inf)  # the empty row


@pytest.mark.parametrize("dim_name", list(DIMS))
@pytest.mark.parametrize("keepdim", [False, True])
def test_shapes_follow_torch_logsumexp(reduction_case, batch_form, dim_name, keepdim):
    case = reduction_case()
    dim = _dim(dim_name, batch_form)
    out = tc.sparse_logsumexp(case.A, dim, keepdim)
    ref = torch.logsumexp(case.dense, dim, keepdim)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, **tol(torch.float64))


@pytest.mark.parametrize("axis", ["rows", "cols", "all"])
@pytest.mark.parametrize("include_zeros", [True, False])
def test_gradcheck_and_gradgradcheck(reduction_case, batch_form, axis, include_zeros, shift_mode):
    A = reduction_case().A
    values, rebuild = with_values(A)
    dim = _dim(axis, batch_form)
    # the -inf of an empty row (include_zeros=False) is not differentiable: weight it 0
    shape = torch.logsumexp(torch.zeros(A.shape), dim).shape
    W = torch.randn(shape, generator=generator(5), dtype=torch.float64)

    def f(v):
        out = tc.sparse_logsumexp(rebuild(v), dim, include_zeros=include_zeros)
        return torch.where(torch.isfinite(out), out, out.new_zeros(())) * W

    assert gradcheck(f, (values,))
    if include_zeros:  # the backward is the same either way: check its backward once
        assert gradgradcheck(f, (values,))


def test_second_derivative_matches_dense():
    A = to_layout(torch.randn(6, 4, generator=generator(8), dtype=torch.float64), torch.sparse_csr)
    values, rebuild = with_values(A)
    (g,) = torch.autograd.grad(
        tc.sparse_logsumexp(rebuild(values), 1).square().sum(), values, create_graph=True
    )
    (gg,) = torch.autograd.grad(g.square().sum(), values)
    dense = A.to_dense().requires_grad_(True)
    (gd,) = torch.autograd.grad(torch.logsumexp(dense, 1).square().sum(), dense, create_graph=True)
    (ggd,) = torch.autograd.grad(gd.square().sum(), dense)
    torch.testing.assert_close(gg, values_at(A, ggd))


_NAN, _INF = math.nan, math.inf
# rows holding +inf, only -inf, -inf among finite values, NaN; and an ordinary row
_SPECIAL = torch.tensor(
    [
        [_INF, 1.0, 0.0],
        [-_INF, -_INF, 0.0],
        [-_INF, 2.0, 0.0],
        [_NAN, 1.0, 0.0],
        [1.0, 2.0, 0.0],
    ],
    dtype=torch.float64,
)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
@pytest.mark.parametrize("include_zeros", [True, False])
def test_infinities_and_nan_behave_as_torch_logsumexp(layout, include_zeros, shift_mode):
    mask = torch.tensor([[1, 1, 0]] * 5, dtype=torch.bool)
    A = torch.sparse_coo_tensor(mask.nonzero().T, _SPECIAL[mask], (5, 3), is_coalesced=True)
    if layout == torch.sparse_csr:
        A = A.to_sparse_csr()
    elif layout == torch.sparse_csc:
        A = A.to_sparse_csc()
    G = torch.ones(5, dtype=torch.float64)
    out, grad = _values_grad(A, lambda M: tc.sparse_logsumexp(M, 1, include_zeros=include_zeros), G)
    dense = torch.where(mask, _SPECIAL, 0.0 if include_zeros else -_INF).requires_grad_(True)
    ref = torch.logsumexp(dense, 1)
    ref.backward(G)
    torch.testing.assert_close(out, ref.detach(), equal_nan=True)
    expected = values_at(A, dense.grad)
    torch.testing.assert_close(grad, expected, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("include_zeros", [True, False])
def test_large_values_are_stable(reduction_case, dtype, include_zeros):
    case = reduction_case(dtype, scale=2000.0)  # exp would overflow without a shift
    out = tc.sparse_logsumexp(case.A, -1, include_zeros=include_zeros)
    ref = torch.logsumexp(case.filled(0.0 if include_zeros else -math.inf).double(), -1)
    torch.testing.assert_close(out.double(), ref, **tol(dtype))


def test_uncoalesced_duplicates_count_as_their_sum():
    indices = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 2]])
    values = torch.tensor([1.0, 2.0, 0.5, -1.0], dtype=torch.float64, requires_grad=True)
    A = tc.sparse_coo_tensor(indices, values, (2, 3))
    out = tc.sparse_logsumexp(A, 1, include_zeros=False)
    expected = torch.stack(
        [torch.tensor(1.5, dtype=torch.float64), torch.logsumexp(values.new_tensor([2, -1]), 0)]
    )
    torch.testing.assert_close(out.detach(), expected)
    out.sum().backward()
    assert values.grad[0] == values.grad[2] == 1.0  # both copies of (0, 1) carry its gradient


def test_agrees_with_torchsparsegradutils_025_when_installed(reduction_case, batch_form):
    t = torchsparsegradutils_0_2()
    if not hasattr(t, "sparse_logsumexp"):
        pytest.skip("torchsparsegradutils older than 0.2.5")
    A = reduction_case().A
    for dim in (1, 2, [1, 2]) if batch_form == "batched" else (0, 1, [0, 1]):
        for include_zeros in (True, False):
            ours = tc.sparse_logsumexp(A, dim, include_zeros=include_zeros)
            theirs = t.sparse_logsumexp(A, dim, include_zeros=include_zeros)
            torch.testing.assert_close(ours, theirs)
    for layout in ("tuple", "padded"):
        ours, theirs = tc.sparse_bidir_logsumexp(A, output_layout=layout), None
        theirs = t.sparse_bidir_logsumexp(A, output_layout=layout)
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
def test_devices(layout, device):
    dense = torch.randn(5, 4, generator=generator(1), dtype=torch.float64)
    dense[dense.abs() < 0.5] = 0.0
    A = to_layout(dense, layout).to(device)
    out = tc.sparse_logsumexp(A, 0, include_zeros=True)
    assert out.device == A.device
    torch.testing.assert_close(out.cpu(), torch.logsumexp(dense, 0))


def test_empty_matrix():
    A = torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (3, 2))
    torch.testing.assert_close(tc.sparse_logsumexp(A, 1), torch.full((3,), math.log(2)))
    assert torch.all(tc.sparse_logsumexp(A, [0, 1], include_zeros=False) == -math.inf)
    assert torch.all(tc.sparse_logsumexp(A.to_sparse_csr(), 0, include_zeros=False) == -math.inf)


def test_dim_takes_integer_like_values():
    np = pytest.importorskip("numpy")
    A = to_layout(torch.randn(4, 3, generator=generator(6), dtype=torch.float64), torch.sparse_csr)
    expected = tc.sparse_logsumexp(A, 1)
    for dim in (np.int64(1), torch.tensor(1), [np.int32(-1)]):
        assert torch.equal(tc.sparse_logsumexp(A, dim), expected)
    assert torch.equal(tc.sparse_logsumexp(A, torch.Size([0, 1])), tc.sparse_logsumexp(A, (0, 1)))


def test_no_gradient_work_when_input_needs_none():
    A = to_layout(torch.eye(3), torch.sparse_csr)
    assert tc.sparse_logsumexp(A, 1).grad_fn is None


# --------------------------------------------------------------------------- bidir
@pytest.mark.parametrize("include_zeros", [True, False])
@pytest.mark.parametrize("keepdim", [False, True])
def test_bidir_equals_two_calls(reduction_case, batch_form, include_zeros, keepdim):
    A = reduction_case().A
    col, row = tc.sparse_bidir_logsumexp(A, keepdim, include_zeros)
    assert torch.equal(col, tc.sparse_logsumexp(A, -2, keepdim, include_zeros))
    assert torch.equal(row, tc.sparse_logsumexp(A, -1, keepdim, include_zeros))


def test_bidir_padded_and_nested(reduction_case, batch_form):
    A = reduction_case().A
    col, row = tc.sparse_bidir_logsumexp(A)
    r, c = A.shape[-2], A.shape[-1]
    padded = tc.sparse_bidir_logsumexp(A, output_layout="padded")
    assert padded.shape == ((2, A.shape[0], r) if batch_form == "batched" else (2, r))
    assert torch.equal(padded[0, ..., :c], col) and torch.equal(padded[1, ..., :r], row)
    assert torch.all(padded[0, ..., c:] == -math.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: nested tensors are a prototype
        nested = tc.sparse_bidir_logsumexp(A, output_layout="nested")
    first, second = nested.unbind()
    assert torch.equal(first, col) and torch.equal(second, row)


def test_bidir_gradient_is_the_sum_of_both(reduction_case, batch_form, shift_mode):
    A = reduction_case().A
    values, rebuild = with_values(A)
    col, row = tc.sparse_bidir_logsumexp(rebuild(values))
    Wc = torch.randn(col.shape, generator=generator(1), dtype=torch.float64)
    Wr = torch.randn(row.shape, generator=generator(2), dtype=torch.float64)
    (grad,) = torch.autograd.grad((col * Wc).sum() + (row * Wr).sum(), values)
    v2, rebuild2 = with_values(A)
    # one matrix per call: torch 2.13 cannot add up two gradients of one batched CSR tensor
    expected = (tc.sparse_logsumexp(rebuild2(v2), -2) * Wc).sum() + (
        tc.sparse_logsumexp(rebuild2(v2), -1) * Wr
    ).sum()
    (grad2,) = torch.autograd.grad(expected, v2)
    torch.testing.assert_close(grad, grad2)


@pytest.mark.parametrize("output_layout", ["tuple", "padded"])
def test_bidir_gradcheck(output_layout):
    A = to_layout(torch.randn(4, 6, generator=generator(4), dtype=torch.float64), torch.sparse_csr)
    values, rebuild = with_values(A)

    def f(v):
        out = tc.sparse_bidir_logsumexp(rebuild(v), output_layout=output_layout)
        if output_layout == "padded":  # the -inf padding has no finite difference
            return torch.where(torch.isfinite(out), out, out.new_zeros(()))
        return out

    assert gradcheck(f, (values,))
    assert gradgradcheck(f, (values,))


# -------------------------------------------------------------------------- errors
_A = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).to_sparse()
_AB = torch.stack([_A.to_dense()] * 2).to_sparse()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: tc.sparse_logsumexp(_A.to_dense(), 1), TypeError, "input must be a sparse COO"),
        (lambda: tc.sparse_logsumexp(_A.to_sparse_bsr((1, 1)), 1), TypeError, "got layout BSR"),
        (lambda: tc.sparse_logsumexp([[1.0]], 1), TypeError, "input must be a torch.Tensor"),
        (
            lambda: tc.sparse_logsumexp(torch.ones(2, 2, 2).to_sparse(2), 1),
            ValueError,
            "no dense dimensions",
        ),
        (
            lambda: tc.sparse_logsumexp(torch.ones(2).to_sparse(), 0),
            ValueError,
            "2 or 3 dimensions",
        ),
        (lambda: tc.sparse_logsumexp(_A.long(), 1), ValueError, "float32 or float64"),
        (lambda: tc.sparse_logsumexp(_A, 1.0), TypeError, "dim must be an int or a sequence"),
        (lambda: tc.sparse_logsumexp(_A, "1"), TypeError, "dim must be an int or a sequence"),
        (lambda: tc.sparse_logsumexp(_A, True), TypeError, "dim must be an int or a sequence"),
        (lambda: tc.sparse_logsumexp(_A, [0, 1.0]), TypeError, "dim must be an int or a sequence"),
        (lambda: tc.sparse_logsumexp(_A, 2), ValueError, r"dim must be in \[-2, 1\]"),
        (lambda: tc.sparse_logsumexp(_A, [0, -3]), ValueError, r"dim must be in \[-2, 1\]"),
        (lambda: tc.sparse_logsumexp(_A, []), ValueError, "at least one dimension"),
        (lambda: tc.sparse_logsumexp(_A, [1, -1]), ValueError, "must not repeat"),
        (lambda: tc.sparse_logsumexp(_AB, 0), ValueError, "batch dimension 0"),
        (lambda: tc.sparse_logsumexp(_AB, [0, 2]), ValueError, "batch dimension 0"),
        (lambda: tc.sparse_logsumexp(_AB, -3), ValueError, "batch dimension 0"),
        (
            lambda: tc.sparse_bidir_logsumexp(_A, output_layout="dense"),
            ValueError,
            "output_layout must be one of 'tuple', 'padded', 'nested'",
        ),
        (
            lambda: tc.sparse_bidir_logsumexp(_A, keepdim=True, output_layout="padded"),
            ValueError,
            "keepdim=True needs output_layout='tuple'",
        ),
        (lambda: tc.sparse_bidir_logsumexp(_A.to_dense()), TypeError, "input must be a sparse"),
        (
            lambda: tc.sparse_bidir_logsumexp(torch.ones(2, 2, 2).to_sparse(2)),
            ValueError,
            "no dense dimensions",
        ),
    ],
)
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
