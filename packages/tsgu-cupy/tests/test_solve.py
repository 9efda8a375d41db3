"""sparse_solve_c4t on the CPU (SciPy): every solver against a dense solve, kwargs, callables."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from tsgu.core import ConvergenceWarning
from tsgu.core.testing import case, generator, tol
from tsgu.cupy import sparse_solve_c4t

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]
# Each solver on a matrix it is meant for.
SOLVERS = [
    pytest.param(None, "nonsymmetric", id="default"),
    pytest.param("spsolve", "nonsymmetric", id="spsolve"),
    pytest.param("gmres", "nonsymmetric", id="gmres"),
    pytest.param("cgs", "nonsymmetric", id="cgs"),
    pytest.param("cg", "spd", id="cg"),
    pytest.param("minres", "symmetric_indefinite", id="minres"),
]
ITERATIVE = {"cg", "cgs", "minres", "gmres"}


def _rhs(n, k, dtype=torch.float64, seed=1, device="cpu"):
    shape = (n,) if k is None else (n, k)
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64).to(device, dtype)


def _check(X, A, B):
    """X against the float64 dense solve, at X's dtype's tolerance."""
    D = A.to_dense().double()
    ref = torch.linalg.solve(D, B.double())
    assert X.shape == B.shape and X.dtype == A.dtype and X.device == A.device
    torch.testing.assert_close(X.double(), ref, **tol(X.dtype))


# Krylov solvers take one right-hand side (several: a ValueError, in test_errors).
SHAPES = [
    pytest.param(solve, case_name, k, id=f"{p.id}-{k_id}")
    for p in SOLVERS
    for solve, case_name in [p.values]
    for k, k_id in [(None, "vector"), (1, "one-column"), (4, "4-columns")]
    if not (solve in ITERATIVE and k == 4)
]


@pytest.mark.parametrize(("solve", "case_name", "k"), SHAPES)
@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_the_dense_solve(solve, case_name, k, layout, index_dtype, dtype, device):
    A = case(case_name).make(layout=layout, index_dtype=index_dtype, dtype=dtype, device=device)
    B = _rhs(A.shape[0], k, dtype, device=device)
    kwargs = {"rtol": 1e-13 if dtype == torch.float64 else 1e-6, "atol": 0.0}
    if solve in ITERATIVE:
        kwargs["maxiter"] = 1000
    X = sparse_solve_c4t(A, B, solve=solve, **kwargs)
    _check(X, A, B)


@pytest.mark.parametrize("case_name", ["poisson_2d", "poisson_3d", "lower_triangular"])
def test_direct_solve_on_more_matrices(case_name):
    A = case(case_name).make(layout=torch.sparse_csr)
    B = _rhs(A.shape[0], 3)
    _check(sparse_solve_c4t(A, B), A, B)


def test_uncoalesced_coo_is_the_sum_of_its_entries(device):
    A = case("nonsymmetric").make(layout=torch.sparse_coo, device=device)
    idx, vals = A.indices(), A.values()
    # every entry stored twice, as 0.25 and 0.75 of it, in shuffled order
    perm = torch.randperm(vals.numel(), generator=generator(2)).to(device)
    U = torch.sparse_coo_tensor(
        torch.cat([idx[:, perm], idx], 1), torch.cat([0.25 * vals[perm], 0.75 * vals]), A.shape
    )
    assert not U.is_coalesced()
    B = _rhs(12, 2, device=device)
    for solve in (None, "gmres"):
        b = B if solve is None else B[:, 0]
        _check(sparse_solve_c4t(U, b, solve=solve, rtol=1e-13, atol=0.0), A, b)


def test_b_is_left_alone_and_may_be_strided():
    A = case("nonsymmetric").make()
    wide = _rhs(12, 6)
    B = wide[:, ::2]  # not contiguous
    before = B.clone()
    X = sparse_solve_c4t(A, B)
    assert torch.equal(B, before)
    _check(X, A, before)


# --------------------------------------------------------------------------- kwargs
def test_tol_is_renamed_to_what_the_backend_takes(device):
    A = case("spd").make(device=device)
    b = _rhs(12, None, device=device)
    loose = sparse_solve_c4t(A, b, solve="cg", tol=1e-1)
    tight = sparse_solve_c4t(A, b, solve="cg", tol=1e-14, atol=0.0)
    ref = torch.linalg.solve(A.to_dense(), b)
    assert (loose - ref).norm() > 1e3 * (tight - ref).norm()  # tol reached the solver
    torch.testing.assert_close(tight, ref, **tol(torch.float64))


def test_kwargs_reach_the_solver(monkeypatch):
    seen = {}
    real = scipy.sparse.linalg.gmres

    @functools.wraps(real)  # the signature that the kwargs are matched against
    def spy(A, b, **kwargs):
        seen.update(kwargs)
        return real(A, b, **kwargs)

    monkeypatch.setattr(scipy.sparse.linalg, "gmres", spy)
    A = case("nonsymmetric").make()
    b = _rhs(12, None)
    x0 = torch.zeros(12, dtype=torch.float64)
    M = torch.diag(1 / A.to_dense().diagonal()).to_sparse_csr()  # Jacobi, as a torch tensor
    iterates = []
    x = sparse_solve_c4t(
        A,
        b,
        solve="gmres",
        tol=1e-12,
        atol=0.0,
        maxiter=200,
        restart=7,
        x0=x0,
        M=M,
        callback=iterates.append,
        callback_type="x",
        not_a_gmres_argument=1,  # ignored, as 0.2 does
    )
    assert seen["rtol"] == 1e-12 and "tol" not in seen and seen["restart"] == 7
    assert seen["maxiter"] == 200 and seen["atol"] == 0.0
    assert isinstance(seen["x0"], np.ndarray) and scipy.sparse.issparse(seen["M"])
    assert "not_a_gmres_argument" not in seen
    assert iterates  # the callback ran
    _check(x, A, b)


def test_direct_solve_takes_splu_options_and_ignores_iteration_controls(monkeypatch):
    import tsgu.cupy._factor as factor_module

    seen = {}
    real = factor_module.splu

    def spy(M, **kwargs):
        seen.update(kwargs)
        return real(M, **kwargs)

    monkeypatch.setattr(factor_module, "splu", spy)
    A = case("nonsymmetric").make()
    B = _rhs(12, 3)
    X = sparse_solve_c4t(A, B, permc_spec="NATURAL", rtol=1e-3, maxiter=1, M=None)
    assert seen == {"permc_spec": "NATURAL"}
    _check(X, A, B)


@pytest.mark.parametrize(
    ("case_name", "expected"),
    [("poisson_2d", {"permc_spec": "MMD_AT_PLUS_A"}), ("nonsymmetric", {})],
)
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_default_ordering_follows_the_pattern(monkeypatch, case_name, expected, layout):
    """Minimum degree on Aᵀ + A for a symmetric pattern, SciPy's default otherwise."""
    import tsgu.cupy._factor as factor_module

    seen = {}
    real = factor_module.splu

    def spy(M, **kwargs):
        seen.update(kwargs)
        return real(M, **kwargs)

    monkeypatch.setattr(factor_module, "splu", spy)
    A = case(case_name).make(layout=layout)
    B = _rhs(A.shape[0], 2)
    _check(sparse_solve_c4t(A, B), A, B)
    assert seen == expected


def test_non_convergence_warns_with_the_residual(device):
    A = case("poisson_2d").make(device=device)
    b = _rhs(16, None, device=device)
    with pytest.warns(
        ConvergenceWarning, match=r"cg did not converge on A x = b: info = \d+, relative residual"
    ):
        sparse_solve_c4t(A, b, solve="cg", maxiter=2)


def test_non_convergence_of_the_backward_solve_warns():
    A = case("nonsymmetric").make().requires_grad_()
    b = _rhs(12, None)
    x = sparse_solve_c4t(A, b, transpose_solve="gmres", maxiter=1, restart=1)
    with pytest.warns(ConvergenceWarning, match=r"gmres did not converge on Aᵀ y = g"):
        x.sum().backward()


# ------------------------------------------------------------------------ callables
def test_callable_gets_backend_objects_and_may_return_a_tensor():
    A = case("nonsymmetric").make(layout=torch.sparse_coo)
    B = _rhs(12, 3)
    calls = []

    def solve(M, b):
        calls.append((M, b))
        return torch.from_numpy(scipy.sparse.linalg.spsolve(M.tocsc(), b))

    X = sparse_solve_c4t(A, B, solve=solve)
    ((M, b),) = calls
    assert scipy.sparse.issparse(M) and isinstance(b, np.ndarray) and b.shape == (12, 3)
    _check(X, A, B)


def test_callable_returning_scipy_style_tuple_and_taking_kwargs():
    A = case("nonsymmetric").make()
    b = _rhs(12, None)
    X = sparse_solve_c4t(A, b, solve=scipy.sparse.linalg.bicgstab, tol=1e-13, atol=0.0)
    _check(X, A, b)
    got = {}

    def anything(M, b, **kwargs):
        got.update(kwargs)
        return scipy.sparse.linalg.spsolve(M.tocsc(), b)

    sparse_solve_c4t(A, b, solve=anything, tol=1e-3, whatever=5)
    assert got == {"tol": 1e-3, "whatever": 5}


def test_callable_reporting_no_convergence_warns():
    A = case("nonsymmetric").make()
    b = _rhs(12, None)

    def stubborn(M, b):
        return np.zeros_like(b), 3

    with pytest.warns(ConvergenceWarning, match="stubborn did not converge"):
        sparse_solve_c4t(A, b, solve=stubborn)
