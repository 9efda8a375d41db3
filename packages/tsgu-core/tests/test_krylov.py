"""Krylov solvers: solutions against SciPy and dense solves, blocks, batches, reporting, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import tsgu.core as tc
from tsgu.core.testing import case, devices, generator, tol

SQUARE = {
    "cg": (tc.cg, ["spd", "poisson_2d", "poisson_3d"]),
    "minres": (tc.minres, ["spd", "symmetric_indefinite", "poisson_3d"]),
    "bicgstab": (tc.bicgstab, ["nonsymmetric", "spd", "lower_triangular"]),
    "gmres": (tc.gmres, ["nonsymmetric", "symmetric_indefinite", "poisson_2d"]),
}
SQUARE_CASES = [(name, c) for name, (_, cs) in SQUARE.items() for c in cs]
LAYOUTS = [pytest.param(torch.sparse_coo, id="coo"), pytest.param(torch.sparse_csr, id="csr")]


def _scipy(A):
    D = A.to_dense().numpy()
    return sp.csr_matrix(D)


def _rhs(shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize(("solver", "case_name"), SQUARE_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_solution_agrees_with_scipy(solver, case_name, layout):
    A = case(case_name).make(layout=layout)
    b = _rhs(A.shape[0])
    x = SQUARE[solver][0](A, b, rtol=1e-12)
    x_scipy, info = getattr(spla, solver)(_scipy(A), b.numpy(), rtol=1e-12, maxiter=1000)
    assert info == 0
    np.testing.assert_allclose(x.numpy(), x_scipy, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("solver", "case_name"), SQUARE_CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch", ["unbatched", "batched"])
def test_block_and_batch_equal_dense_and_per_column(solver, case_name, layout, batch):
    fn = SQUARE[solver][0]
    A = case(case_name).make(layout=layout, batch=batch)
    B = _rhs((*A.shape[:-1], 3), seed=1)
    X, info = fn(A, B, rtol=1e-12, return_info=True)
    assert info.converged and info.reason == "converged"
    assert info.residual_norm.shape == B.shape[:-2] + B.shape[-1:]
    torch.testing.assert_close(X, torch.linalg.solve(A.to_dense(), B), rtol=1e-8, atol=1e-9)
    for j in range(3):  # columns iterate together but each stops on its own
        torch.testing.assert_close(X[..., j], fn(A, B[..., j], rtol=1e-12), rtol=1e-8, atol=1e-9)


# SciPy's MINRES stops on a different test by design (see tsgu.core.minres's Notes).
@pytest.mark.parametrize("solver", ["cg", "bicgstab", "gmres"])
def test_iteration_counts_match_scipy(solver):
    A = tc.poisson_2d(20)
    b = _rhs(A.shape[0], seed=2)
    counter = {"n": 0}

    def count(*_):
        counter["n"] += 1

    kwargs = {"callback_type": "pr_norm"} if solver == "gmres" else {}
    getattr(spla, solver)(_scipy(A), b.numpy(), rtol=1e-8, callback=count, **kwargs)
    _, info = SQUARE[solver][0](A, b, rtol=1e-8, return_info=True)
    assert abs(info.iterations - counter["n"]) <= max(2, 0.1 * counter["n"])


@pytest.mark.parametrize("operator", ["dense", "callable"])
@pytest.mark.parametrize("solver", list(SQUARE))
def test_dense_and_callable_operators(operator, solver):
    name = SQUARE[solver][1][0]
    A = case(name).make()
    D = A.to_dense()
    op = D if operator == "dense" else (lambda x: D @ x)
    b = _rhs(D.shape[0], seed=3)
    x = SQUARE[solver][0](op, b, rtol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(D, b), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("solver", list(SQUARE))
def test_float32(solver):
    A = case(SQUARE[solver][1][0]).make(dtype=torch.float32)
    b = _rhs(A.shape[0], seed=4, dtype=torch.float32)
    x = SQUARE[solver][0](A, b, rtol=1e-6)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x, torch.linalg.solve(A.to_dense(), b), **tol(torch.float32))


@pytest.mark.parametrize("solver", list(SQUARE))
def test_initial_guess_is_used(solver):
    # 0.2's bicgstab formed its first residual from b alone and returned x0 + A⁻¹b.
    A = case(SQUARE[solver][1][0]).make()
    b = _rhs(A.shape[0], seed=5)
    exact = torch.linalg.solve(A.to_dense(), b)
    x = SQUARE[solver][0](A, b, x0=torch.ones_like(b), rtol=1e-12)
    torch.testing.assert_close(x, exact, rtol=1e-8, atol=1e-9)
    _, info = SQUARE[solver][0](A, b, x0=exact, rtol=1e-8, return_info=True)
    assert info.iterations == 0


@pytest.mark.parametrize("solver", list(SQUARE))
def test_one_hot_and_zero_columns(solver):
    # What a backward pass feeds: a unit vector column beside a zero column.
    A = case(SQUARE[solver][1][0]).make()
    n = A.shape[0]
    for i in range(n):
        B = torch.zeros(n, 2, dtype=torch.float64)
        B[i, 0] = 1.0
        X = SQUARE[solver][0](A, B, rtol=1e-12)
        torch.testing.assert_close(X, torch.linalg.solve(A.to_dense(), B), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("solver", list(SQUARE))
def test_not_converging_warns_and_returns_a_finite_iterate(solver):
    A = tc.poisson_2d(12)
    b = _rhs(144, seed=6)
    with pytest.warns(
        tc.ConvergenceWarning, match=rf"{solver} did not converge: maxiter after \d+ iterations"
    ):
        x, info = SQUARE[solver][0](A, b, rtol=1e-12, maxiter=2, return_info=True)
    assert not info.converged and info.reason == "maxiter"
    assert bool(torch.isfinite(x).all())
    assert float(info.residual_norm) > 1e-12 * float(b.norm())


def test_cg_on_an_indefinite_matrix_reports_the_breakdown():
    A = case("symmetric_indefinite").make()
    with pytest.warns(tc.ConvergenceWarning, match="not positive definite"):
        x, info = tc.cg(A, _rhs(12, seed=7), rtol=1e-12, return_info=True)
    assert not info.converged and "breakdown" in info.reason
    assert bool(torch.isfinite(x).all())


def test_singular_system_never_returns_nan():
    A = case("singular").make()
    b = _rhs(12, seed=8)
    for fn in (tc.bicgstab, tc.gmres):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tc.ConvergenceWarning)
            x = fn(A, b, rtol=1e-12, maxiter=50)
        assert bool(torch.isfinite(x).all())


def test_zero_right_hand_side_gives_zero():
    A = case("spd").make()
    for fn in (tc.cg, tc.minres, tc.bicgstab, tc.gmres):
        x, info = fn(A, torch.zeros(12, dtype=torch.float64), return_info=True)
        assert info.converged and info.iterations == 0
        assert torch.equal(x, torch.zeros(12, dtype=torch.float64))


def test_callback_and_tol_alias():
    A = case("spd").make()
    seen = []
    x = tc.cg(A, _rhs(12), tol=1e-12, callback=lambda xk: seen.append(xk.clone()))
    assert len(seen) > 1
    torch.testing.assert_close(seen[-1], x)
    assert not hasattr(tc, "linear_cg")  # the 0.2 name lives in torchsparsegradutils.utils


@pytest.mark.parametrize("device", devices())
def test_device(device):
    A = case("spd").make(device=device)
    b = _rhs(12).to(device)
    x = tc.cg(A, b, rtol=1e-12)
    assert x.device == A.device
    torch.testing.assert_close(x.cpu(), torch.linalg.solve(A.cpu().to_dense(), b.cpu()))


# --------------------------------------------------------------------------------- lsmr
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch", ["unbatched", "batched"])
def test_lsmr_least_squares(layout, batch):
    A = case("rectangular").make(layout=layout, batch=batch)
    B = _rhs((*A.shape[:-1], 2), seed=9)
    X, info = tc.lsmr(A, B, atol=1e-12, btol=1e-12, return_info=True)
    assert info.converged
    torch.testing.assert_close(
        X, torch.linalg.lstsq(A.to_dense(), B).solution, rtol=1e-8, atol=1e-9
    )


def test_lsmr_agrees_with_scipy_and_its_iterations():
    A = case("rectangular").make()
    b = _rhs(A.shape[0], seed=10)
    x, info = tc.lsmr(A, b, atol=1e-10, btol=1e-10, return_info=True)
    result = spla.lsmr(_scipy(A), b.numpy(), atol=1e-10, btol=1e-10)
    np.testing.assert_allclose(x.numpy(), result[0], rtol=1e-7, atol=1e-9)
    assert abs(info.iterations - result[2]) <= 1


def test_lsmr_minimum_norm_for_an_underdetermined_system():
    A = case("rectangular").make()
    wide = A.to_dense().T.contiguous()
    g = _rhs(wide.shape[0], seed=11)
    y = tc.lsmr(wide.to_sparse(), g, atol=1e-12, btol=1e-12)
    torch.testing.assert_close(y, torch.linalg.pinv(wide) @ g, rtol=1e-8, atol=1e-9)


def test_lsmr_with_a_callable_and_damping():
    A = case("rectangular").make().to_dense()
    b = _rhs(A.shape[0], seed=12)
    x = tc.lsmr(lambda v: A @ v, b, rmatvec=lambda u: A.T @ u, damp=0.5, atol=1e-12, btol=1e-12)
    expected = torch.linalg.solve(A.T @ A + 0.25 * torch.eye(A.shape[1], dtype=A.dtype), A.T @ b)
    torch.testing.assert_close(x, expected, rtol=1e-8, atol=1e-9)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda A, b: tc.cg([[1.0]], b), TypeError, "A must be a torch.Tensor"),
        (lambda A, b: tc.cg(A.to_sparse_csc(), b), TypeError, "got layout CSC"),
        (lambda A, b: tc.cg(A, b.tolist()), TypeError, "b must be a torch.Tensor"),
        (lambda A, b: tc.cg(A, b.to_sparse()), TypeError, "b must be a dense"),
        (lambda A, b: tc.cg(A, b[:5]), ValueError, "b must have 12 rows"),
        (lambda A, b: tc.cg(A, b.float()), ValueError, "the same dtype"),
        (lambda A, b: tc.cg(A, b[None, None]), ValueError, r"b must have shape \(n,\) or \(n, k\)"),
        (lambda A, b: tc.cg(A, b, x0=b[:3]), ValueError, "x0 must have shape"),
        (lambda A, b: tc.cg(A, b, rtol=-1.0), ValueError, "rtol must be a non-negative number"),
        (lambda A, b: tc.cg(A, b, M=3), TypeError, "M must be a tensor or a callable"),
        (lambda A, b: tc.gmres(A, b, restart=0), ValueError, "restart must be a positive int"),
        (
            lambda A, b: tc.minres(A, b, M=-torch.eye(12, dtype=torch.float64)),
            ValueError,
            "M must be positive definite",
        ),
        (lambda A, b: tc.lsmr(lambda v: v, b), ValueError, "needs rmatvec"),
        (
            lambda A, b: tc.cg(torch.ones(3, 4, dtype=torch.float64), b[:3]),
            ValueError,
            "A must be square",
        ),
        (
            lambda A, b: tc.cg(A.to(torch.float32), b.float(), x0=None, maxiter=-1),
            ValueError,
            "cg: maxiter must be a non-negative int",
        ),
    ],
)
def test_errors(call, error, message):
    A = case("spd").make()
    b = _rhs(12)
    with pytest.raises(error, match=message):
        call(A, b)


def test_batch_mismatch():
    A = case("spd").make(batch="batched")
    with pytest.raises(ValueError, match="batch sizes must match"):
        tc.cg(A, _rhs((2, 12, 1)))


def test_bicgstab_stopping_halfway_makes_no_product_with_s():
    # A = 2I: the first half step solves exactly; SciPy stops there without A s.
    b = torch.tensor([[2.0, 1.0], [4.0, -3.0]], dtype=torch.float64)
    calls: list[int] = []

    def operator(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return 2 * x

    x, info = tc.bicgstab(operator, b, rtol=1e-10, return_info=True)
    torch.testing.assert_close(x, b / 2)
    assert info.converged and info.iterations == 1
    assert len(calls) == 2  # A p and the final true-residual verdict (x0 = 0: r0 = b)


@pytest.mark.parametrize("shape", ["vector", "block"])
@pytest.mark.parametrize("matrix", ["near_identity", "shifted_cycle"])
def test_gmres_with_and_without_the_second_gram_schmidt_pass(matrix, shape):
    # Near the identity, A v is almost v: every first Gram-Schmidt pass cancels most of it
    # and GMRES re-orthogonalises. A cyclic shift plus I/2 maps the basis mostly to a new
    # direction, where most steps keep one pass. Either way: the dense solution, one column
    # or many.
    n = 40
    if matrix == "near_identity":
        noise = torch.randn(n, n, generator=generator(8), dtype=torch.float64)
        D = torch.eye(n, dtype=torch.float64) + 1e-6 * noise
    else:
        D = torch.roll(torch.eye(n, dtype=torch.float64), 1, dims=0) + 0.5 * torch.eye(n)
    A = D.to_sparse_csr()
    b = _rhs((n,) if shape == "vector" else (n, 3), seed=9)
    x, info = tc.gmres(A, b, rtol=1e-12, restart=n, return_info=True)
    assert bool(torch.all(torch.as_tensor(info.converged)))
    torch.testing.assert_close(x, torch.linalg.solve(D, b), rtol=1e-9, atol=1e-10)
