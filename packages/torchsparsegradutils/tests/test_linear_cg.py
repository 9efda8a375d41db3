"""The drop-in's ``linear_cg``: 0.2.7's interface and defaults, 0.2.2's rule on request,
the Lanczos tridiagonal matrices, and no silent zero."""

from __future__ import annotations

import warnings

import pytest
import torch

import tsgu.core
from torchsparsegradutils import sparse_generic_solve
from torchsparsegradutils.utils import CGInfo, LinearCGSettings, linear_cg

# 0.2.2's stopping rule in 0.2.7's terms (its tolerance default was 1)
_0_2_2_RULE = {"convergence_reduction": "mean", "min_iter": 11, "stop_updating_after": 1e-10}


def _spd(n: int = 40, seed: int = 0) -> torch.Tensor:
    """A dense SPD matrix with eigenvalues spread over [1, 100]."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    return Q @ torch.diag(torch.linspace(1.0, 100.0, n, dtype=torch.float64)) @ Q.T


def _rhs(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_0_2_7_defaults_every_column_to_1e_5_with_an_info_record():
    assert LinearCGSettings().cg_tolerance == 1e-5
    A, B = _spd(), _rhs(40, 3)
    X, info = linear_cg(A, B, return_info=True)
    assert isinstance(info, CGInfo)
    assert info.reason == "converged" and info.tolerance == 1e-5
    assert info.converged.shape == (3,) and bool(info.converged.all())
    relative = torch.linalg.vector_norm(B - A @ X, dim=0) / torch.linalg.vector_norm(B, dim=0)
    torch.testing.assert_close(info.true_relative_residual, relative)
    assert float(relative.max()) <= 1e-5
    # one product for the first residual, one per iteration, one for the true residual
    assert info.matvecs == info.iterations + 2


def test_0_2_2_rule_is_the_mean_over_columns_after_a_minimum_of_iterations():
    A = _spd()
    # nine easy columns (eigenvectors: solved in one step) and one hard column, whose
    # relative residual is 0.60, 0.42, 0.29, ... after 1, 2, 3, ... iterations
    B = torch.cat([torch.linalg.eigh(A).eigenvectors[:, :9], _rhs(40, 1)], dim=1)
    with pytest.warns(UserWarning, match="did not converge"):
        _, info = linear_cg(
            A, B, tolerance=0.05, convergence_reduction="mean", min_iter=2, return_info=True
        )
    # the mean of the ten residuals fell to 0.05 while the hard column's is still above
    assert info.reason == "mean_converged"
    assert info.iterations == 2
    assert float(info.recursive_relative_residual.mean()) <= 0.05
    assert float(info.recursive_relative_residual[-1]) > 0.05
    _, every = linear_cg(A, B, tolerance=0.05, return_info=True)
    assert every.reason == "converged" and every.iterations > 2


def test_0_2_2_defaults_run_eleven_iterations_not_zero():
    # 0.2.2: tolerance 1 on the mean, at least min(10, max_iter - 1) + 1 iterations, and
    # columns frozen only at 1e-10
    A, b = _spd(), _rhs(40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # not converged to tolerance 0 or 1
        eleven = linear_cg(A, b, tolerance=0, max_iter=11)
        x, info = linear_cg(A, b, return_info=True, **{**_0_2_2_RULE, "tolerance": 1})
    assert info.iterations == 11
    torch.testing.assert_close(x, eleven)
    assert float(torch.linalg.vector_norm(b - A @ x)) < float(torch.linalg.vector_norm(b))


def test_a_tolerance_met_by_the_zero_guess_warns_instead_of_a_silent_zero():
    A, b = _spd(), _rhs(40)
    with pytest.warns(UserWarning, match="returned x = 0"):
        x = linear_cg(A, b, tolerance=1)
    assert bool((x == 0).all())


def test_generic_solve_with_linear_cg_both_ways_is_the_solve_and_its_gradients():
    A = tsgu.core.poisson_2d(6).to_sparse_csr().requires_grad_(True)
    b = _rhs(36).requires_grad_(True)
    x = sparse_generic_solve(A, b, solve=linear_cg, transpose_solve=linear_cg)
    dense = A.detach().to_dense().requires_grad_(True)
    b_ref = b.detach().clone().requires_grad_(True)
    x_ref = torch.linalg.solve(dense, b_ref)
    torch.testing.assert_close(x, x_ref, rtol=1e-4, atol=1e-6)
    assert float(x.detach().abs().max()) > 0.1
    (x * x_ref.detach()).sum().backward()
    (x_ref * x_ref.detach()).sum().backward()
    torch.testing.assert_close(b.grad, b_ref.grad, rtol=1e-4, atol=1e-6)
    grad_at_pattern = dense.grad * (A.detach().to_dense() != 0)
    torch.testing.assert_close(A.grad.to_dense(), grad_at_pattern, rtol=1e-4, atol=1e-6)


def _lanczos(A: torch.Tensor, v: torch.Tensor, steps: int) -> torch.Tensor:
    """The Lanczos tridiagonal matrix of A from v, with full reorthogonalisation."""
    Q = [v / torch.linalg.vector_norm(v)]
    alphas, betas = [], []
    for k in range(steps):
        w = A @ Q[k]
        alphas.append(torch.dot(Q[k], w))
        for q in Q:
            w = w - torch.dot(q, w) * q
        if k + 1 < steps:
            betas.append(torch.linalg.vector_norm(w))
            Q.append(w / betas[-1])
    return (
        torch.diag(torch.stack(alphas))
        + torch.diag(torch.stack(betas), 1)
        + torch.diag(torch.stack(betas), -1)
    )


def test_tridiagonal_matrices_are_lanczos_from_each_probe_column():
    A, B = _spd(12), _rhs(12, 4)
    x, T = linear_cg(A, B, n_tridiag=3, tolerance=0, max_iter=12, max_tridiag_iter=6)
    assert T.shape == (3, 6, 6)
    for j in range(3):
        torch.testing.assert_close(T[j], _lanczos(A, B[:, j], 6), rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(x, torch.linalg.solve(A, B), rtol=1e-6, atol=1e-8)


def test_tridiagonal_matrices_of_a_batch_approximate_every_eigenvalue():
    A = torch.stack([_spd(8, seed=s) for s in range(2)])
    B = _rhs(2, 8, 5)
    with pytest.warns(UserWarning, match="did not converge"):  # tolerance 0
        _, T = linear_cg(A, B, n_tridiag=2, tolerance=0, max_iter=8, max_tridiag_iter=8)
    assert T.shape == (2, 2, 8, 8)  # (n_tridiag, batch, r, r)
    for i in range(2):
        for j in range(2):
            torch.testing.assert_close(
                torch.linalg.eigvalsh(T[j, i]), torch.linalg.eigvalsh(A[i]), rtol=1e-6, atol=1e-6
            )


def test_breakdown_and_bad_operators_raise():
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"p\^T A p"):
        linear_cg(indefinite, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    for error in (TypeError, RuntimeError):  # tsgu's type and 0.2's
        with pytest.raises(error, match="matmul_closure must be a tensor, or a callable"):
            linear_cg(object(), torch.ones(2))
    with pytest.raises(TypeError, match="real floating-point"):
        linear_cg(torch.eye(2), torch.ones(2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="tolerance must be finite"):
        linear_cg(torch.eye(2), torch.ones(2), tolerance=float("nan"))


def test_not_converging_within_max_iter_warns_with_the_numbers():
    A, b = _spd(), _rhs(40)
    with pytest.warns(UserWarning, match=r"did not converge: CG terminated in 3 iterations"):
        _, info = linear_cg(A, b, max_iter=3, return_info=True)
    assert info.reason == "max_iter" and not bool(info.converged.all())


def test_second_derivatives_through_generic_solve_with_linear_cg():
    # 0.2.7's sparse_generic_solve differentiates its own backward; so does the drop-in's
    A = tsgu.core.poisson_2d(3).requires_grad_(True)
    b = _rhs(9, seed=3).requires_grad_(True)
    x = sparse_generic_solve(A, b, solve=linear_cg, transpose_solve=linear_cg, tolerance=1e-12)
    (g,) = torch.autograd.grad(x.square().sum(), b, create_graph=True)
    gg_b, gg_A = torch.autograd.grad(g.sum(), (b, A))
    dense = A.detach().to_dense().requires_grad_(True)
    b_ref = b.detach().clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(
        torch.linalg.solve(dense, b_ref).square().sum(), b_ref, create_graph=True
    )
    gg_b_ref, gg_A_ref = torch.autograd.grad(g_ref.sum(), (b_ref, dense))
    torch.testing.assert_close(gg_b, gg_b_ref, rtol=1e-6, atol=1e-8)
    mask = A.detach().to_dense() != 0
    torch.testing.assert_close(gg_A.to_dense(), gg_A_ref * mask, rtol=1e-6, atol=1e-8)
