"""Gradients of sparse_solve_c4t: gradcheck, gradgradcheck, the dense reference, 0.2's bugs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import case, generator, tol, values_at, with_values
from tsgu.cupy import sparse_solve_c4t

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


def _rhs(n, k, dtype=torch.float64, seed=1, device="cpu"):
    shape = (n,) if k is None else (n, k)
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64).to(device, dtype)


def _dense_reference(A, B, G):
    """grad of <G, A^{-1} B> for A's values (at its entries) and for B, by dense autograd."""
    D = A.to_dense().double().requires_grad_(True)
    Bd = B.double().detach().requires_grad_(True)
    (torch.linalg.solve(D, Bd) * G.double()).sum().backward()
    return values_at(A, D.grad), Bd.grad


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("k", [None, 3], ids=["vector", "3-columns"])
@pytest.mark.parametrize("solve", [None, "spsolve"])
def test_gradcheck_and_gradgradcheck_direct(layout, index_dtype, k, solve, device):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, device=device)
    values, rebuild = with_values(A)
    B = _rhs(12, k, device=device).requires_grad_(True)

    def f(v, b):
        return sparse_solve_c4t(rebuild(v), b, solve=solve)

    assert gradcheck(f, (values, B))
    assert gradgradcheck(f, (values, B))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize(
    ("solve", "transpose_solve"),
    [("gmres", None), ("gmres", "spsolve"), ("spsolve", "gmres")],
)
def test_gradcheck_and_gradgradcheck_krylov(layout, index_dtype, solve, transpose_solve, device):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, device=device)
    values, rebuild = with_values(A)
    b = _rhs(12, None, device=device).requires_grad_(True)

    def f(v, b):
        return sparse_solve_c4t(
            rebuild(v), b, solve, transpose_solve, rtol=1e-14, atol=0.0, maxiter=500
        )

    assert gradcheck(f, (values, b))
    assert gradgradcheck(f, (values, b))


@pytest.mark.parametrize(
    ("solve", "case_name"),
    [
        (None, "nonsymmetric"),
        ("gmres", "nonsymmetric"),
        ("cgs", "nonsymmetric"),
        ("cg", "spd"),
        ("minres", "symmetric_indefinite"),
        ("cg", "poisson_3d"),
    ],
)
@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_match_dense_autograd(solve, case_name, layout, index_dtype, dtype, device):
    # cg and minres need a symmetric A, which gradcheck's one-value perturbations break:
    # their gradients are checked against dense autograd instead.
    A = case(case_name).make(layout=layout, index_dtype=index_dtype, dtype=dtype, device=device)
    values, rebuild = with_values(A)
    k = None if solve else 2
    B = _rhs(A.shape[0], k, dtype, device=device).requires_grad_(True)
    G = _rhs(A.shape[0], k, dtype, seed=5, device=device)
    rtol = 1e-14 if dtype == torch.float64 else 1e-6
    X = sparse_solve_c4t(rebuild(values), B, solve=solve, rtol=rtol, atol=0.0, maxiter=2000)
    (X * G).sum().backward()
    ref_values, ref_B = _dense_reference(A, B, G)
    t = tol(dtype) if dtype == torch.float64 else {"rtol": 1e-3, "atol": 1e-4}
    torch.testing.assert_close(values.grad.double(), ref_values, **t)
    torch.testing.assert_close(B.grad.double(), ref_B, **t)
    assert values.grad.dtype == dtype and B.grad.dtype == dtype


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_gradient_of_a_leaf_a_is_sparse_with_its_pattern(layout, index_dtype, device):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, device=device)
    A.requires_grad_(True)
    B = _rhs(12, 2, device=device)
    G = _rhs(12, 2, seed=5, device=device)
    (sparse_solve_c4t(A, B) * G).sum().backward()
    assert A.grad.layout == layout
    if layout == torch.sparse_csr:
        assert torch.equal(A.grad.crow_indices(), A.crow_indices())
        assert torch.equal(A.grad.col_indices(), A.col_indices())
        assert A.grad.col_indices().dtype == index_dtype
        got = A.grad.values()
    else:
        assert torch.equal(A.grad._indices(), A._indices())
        got = A.grad._values()
    ref, _ = _dense_reference(A.detach(), B, G)
    torch.testing.assert_close(got, ref, **tol(torch.float64))


def test_uncoalesced_coo_backward():
    """0.2's backward read A.indices(), which an uncoalesced tensor refuses."""
    A = case("nonsymmetric").make(layout=torch.sparse_coo)
    idx, vals = A.indices(), A.values()
    perm = torch.randperm(vals.numel(), generator=generator(2))
    indices = torch.cat([idx[:, perm], idx], 1)
    values = torch.cat([0.25 * vals[perm], 0.75 * vals]).requires_grad_(True)
    b = _rhs(12, None).requires_grad_(True)

    def f(v, b):
        return sparse_solve_c4t(tc.sparse_coo_tensor(indices, v, A.shape), b)

    assert not tc.sparse_coo_tensor(indices, values.detach(), A.shape).is_coalesced()
    assert gradcheck(f, (values, b))
    assert gradgradcheck(f, (values, b))
    leaf = torch.sparse_coo_tensor(indices, values.detach(), A.shape).requires_grad_(True)
    sparse_solve_c4t(leaf, b.detach()).sum().backward()
    assert torch.equal(leaf.grad._indices(), indices)  # duplicates kept, each with the gradient


def test_user_transpose_solve_receives_the_transposed_matrix():
    """0.2 handed transpose_solve A itself: gradients wrong for every nonsymmetric A."""
    A = case("nonsymmetric").make().requires_grad_(True)
    b = _rhs(12, None).requires_grad_(True)
    seen = []

    def transpose_solve(M, g, rtol):
        seen.append(M.toarray())
        return scipy.sparse.linalg.gmres(M, g, rtol=rtol, atol=0.0)

    x = sparse_solve_c4t(A, b, solve="gmres", transpose_solve=transpose_solve, rtol=1e-14)
    x.sum().backward()
    (M,) = seen
    np.testing.assert_array_equal(M, A.detach().to_dense().numpy().T)
    ref_A, ref_b = _dense_reference(A.detach(), b.detach(), torch.ones(12, dtype=torch.float64))
    torch.testing.assert_close(b.grad, ref_b, **tol(torch.float64))
    torch.testing.assert_close(A.grad.values(), ref_A, **tol(torch.float64))


def test_named_transpose_solve_on_a_nonsymmetric_matrix(device):
    """0.2's case: transpose_solve='gmres' gave a grad_B error of 1.7e-1."""
    A = case("nonsymmetric").make(device=device)
    b = _rhs(12, None, device=device).requires_grad_(True)
    sparse_solve_c4t(A, b, transpose_solve="gmres", rtol=1e-14, atol=0.0).sum().backward()
    ref = torch.linalg.solve(A.to_dense().T, torch.ones_like(b))
    torch.testing.assert_close(b.grad, ref, **tol(torch.float64))


def test_backward_drops_x0_and_transposes_m(monkeypatch):
    seen = []
    real = scipy.sparse.linalg.gmres

    def spy(A, b, x0=None, *, M=None, **kwargs):
        seen.append((A.toarray(), x0, None if M is None else M.toarray()))
        return real(A, b, x0=x0, M=M, **kwargs)

    monkeypatch.setattr(scipy.sparse.linalg, "gmres", spy)
    A = case("nonsymmetric").make()
    b = _rhs(12, None).requires_grad_(True)
    D = A.to_dense()
    M = (torch.diag(1 / D.diagonal()) + 0.01 * torch.triu(D, 1)).to_sparse_csr()  # not symmetric
    x0 = torch.ones(12, dtype=torch.float64)
    x = sparse_solve_c4t(A, b, solve="gmres", x0=x0, M=M, rtol=1e-13, atol=0.0)
    x.sum().backward()
    (fwd_A, fwd_x0, fwd_M), (bwd_A, bwd_x0, bwd_M) = seen
    np.testing.assert_array_equal(fwd_x0, x0.numpy())
    assert bwd_x0 is None
    np.testing.assert_array_equal(fwd_M, M.to_dense().numpy())
    np.testing.assert_array_equal(bwd_M, M.to_dense().numpy().T)
    np.testing.assert_array_equal(bwd_A, fwd_A.T)


def test_only_the_needed_gradients_are_computed():
    A = case("nonsymmetric").make().requires_grad_(True)
    b = _rhs(12, None)
    sparse_solve_c4t(A, b).sum().backward()
    assert A.grad is not None
    A2 = case("nonsymmetric").make()
    b2 = _rhs(12, None).requires_grad_(True)
    sparse_solve_c4t(A2, b2).sum().backward()
    assert b2.grad is not None and A2.grad is None


def test_changing_a_in_place_before_backward_is_refused():
    A = case("nonsymmetric").make().requires_grad_(True)
    x = sparse_solve_c4t(A, _rhs(12, None))
    with torch.no_grad():
        A.values().mul_(2.0)
    with pytest.raises(RuntimeError, match=r"modified (by an )?inplace"):
        x.sum().backward()


def test_float32_gradcheck_is_not_attempted_but_float32_backward_runs():
    A = case("nonsymmetric").make(dtype=torch.float32).requires_grad_(True)
    b = _rhs(12, 2, torch.float32).requires_grad_(True)
    sparse_solve_c4t(A, b).square().sum().backward()
    assert A.grad.dtype == torch.float32 and b.grad.dtype == torch.float32
    assert torch.isfinite(A.grad.values()).all()
