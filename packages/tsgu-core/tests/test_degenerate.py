"""Degenerate problems: zero, singular and 0 x 0 systems, NaN or Inf anywhere, bad tolerances
and options. Each ends in a ConvergenceWarning whose residual is the true one, or in our own
TypeError / ValueError naming the function and the argument: never a false "converged"."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import tsgu.core as tc

SQUARE = ["cg", "minres", "bicgstab", "gmres"]
SOLVERS = [*SQUARE, "lsmr"]
F64 = torch.float64


def _eye(n=3, dtype=F64):
    return torch.eye(n, dtype=dtype).to_sparse_csr()


def _b(n=3):
    return torch.arange(1.0, n + 1, dtype=F64)


def _solve(name, A, b, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, info = getattr(tc, name)(A, b, return_info=True, **kwargs)
    warned = [w for w in caught if issubclass(w.category, tc.ConvergenceWarning)]
    return x, info, warned


def _true_residual(A, x, b):
    return torch.linalg.vector_norm(b - A.to_dense() @ x)


ZERO = torch.zeros(3, 3, dtype=F64).to_sparse_csr()
EMPTY = torch.sparse_csr_tensor(
    torch.zeros(4, dtype=torch.int64),
    torch.zeros(0, dtype=torch.int64),
    torch.zeros(0, dtype=F64),
    (3, 3),
)
SINGULAR = torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=F64)).to_sparse_csr()


@pytest.mark.parametrize("name", SQUARE)
@pytest.mark.parametrize("A", [ZERO, EMPTY, SINGULAR], ids=["zero", "no-entries", "singular"])
def test_degenerate_systems_warn_with_the_true_residual(name, A):
    b = _b()
    x, info, warned = _solve(name, A, b)
    true = _true_residual(A, x, b)
    assert not info.converged
    assert warned and "did not converge" in str(warned[0].message)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(info.residual_norm, true)


def test_minres_on_a_zero_matrix_is_not_converged():
    # it returned x = 0 with converged=True and residual 0 (the true residual is 3.74)
    _, info, warned = _solve("minres", ZERO, _b())
    assert not info.converged and warned
    assert float(info.residual_norm) == pytest.approx(math.sqrt(14))
    assert "true residual" in info.reason


def test_generic_solve_of_a_zero_matrix_warns():
    with pytest.warns(tc.ConvergenceWarning):
        tc.sparse_generic_solve(ZERO, _b())


def test_lsmr_of_a_zero_matrix_gives_the_least_squares_solution():
    # Every x minimises ||0 x - b||; x = 0 is the minimum-norm one, and A^T r = 0 holds.
    x, info, warned = _solve("lsmr", ZERO, _b())
    assert info.converged and not warned
    assert torch.equal(x, torch.zeros(3, dtype=F64))
    assert float(info.residual_norm) == pytest.approx(math.sqrt(14))


@pytest.mark.parametrize("name", SOLVERS)
def test_zero_by_zero_systems_solve_to_empty(name):
    x, info, warned = _solve(
        name, torch.zeros(0, 0, dtype=F64).to_sparse_csr(), torch.zeros(0, dtype=F64)
    )
    assert x.shape == (0,) and info.converged and not warned


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("where", ["A", "b", "x0"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_or_inf_in_a_system_is_an_error(name, where, bad):
    A, b, x0 = torch.eye(3, dtype=F64), _b(), torch.zeros(3, dtype=F64)
    {"A": A, "b": b, "x0": x0}[where].view(-1)[1] = bad
    with pytest.raises(ValueError, match=f"{name}: {where} must be finite"):
        getattr(tc, name)(A.to_sparse_csr(), b, x0=x0)


@pytest.mark.parametrize("name", SQUARE)
def test_a_preconditioner_that_returns_nan_ends_in_a_warning(name):
    b = _b()
    x, info, warned = _solve(name, _eye(), b, M=lambda r: r * math.nan)
    assert not info.converged and warned
    assert torch.isfinite(x).all()
    torch.testing.assert_close(info.residual_norm, _true_residual(_eye(), x, b))


@pytest.mark.parametrize("name", SOLVERS)
def test_converged_means_the_true_residual_meets_the_tolerance(name):
    A = tc.poisson_2d(6)
    b = torch.ones(36, dtype=F64)
    x, info, warned = (
        _solve(name, A, b) if name != "lsmr" else _solve(name, A, b, atol=1e-10, btol=1e-10)
    )
    assert info.converged and not warned
    true = _true_residual(A, x, b)
    torch.testing.assert_close(info.residual_norm, true)
    if name != "lsmr":
        assert true <= 1e-5 * torch.linalg.vector_norm(b)


@pytest.mark.parametrize("name", SQUARE)
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rtol": math.nan}, ValueError, "rtol must be a non-negative number, got nan"),
        ({"rtol": -1.0}, ValueError, "rtol must be a non-negative number"),
        ({"tol": -1.0}, ValueError, "tol must be a non-negative number"),
        ({"atol": -1.0}, ValueError, "atol must be a non-negative number"),
        ({"atol": math.nan}, ValueError, "atol must be a non-negative number"),
        ({"rtol": "1e-5"}, TypeError, "rtol must be a real number, got str"),
        ({"rtol": True}, TypeError, "rtol must be a real number, got bool"),
        ({"tol": 1e-5, "rtol": 1e-5}, ValueError, "tol and rtol must not both be given"),
        ({"maxiter": -1}, ValueError, "maxiter must be a non-negative int"),
        ({"maxiter": 2.5}, TypeError, "maxiter must be an int or None"),
        ({"x0": torch.zeros(3)}, ValueError, "x0 must have the dtype of b"),
        ({"x0": torch.zeros(4, dtype=F64)}, ValueError, "x0 must have shape"),
        ({"M": torch.eye(4, dtype=F64)}, ValueError, "M must have A's shape"),
        ({"M": tc.jacobi(_eye(3, torch.float32))}, ValueError, "M must have the dtype of b"),
        ({"M": lambda r: r[:2]}, ValueError, "M.r. must return a tensor shaped like r"),
    ],
)
def test_option_errors_are_ours(name, kwargs, error, message):
    with pytest.raises(error, match=f"{name}: {message}"):
        getattr(tc, name)(_eye(), _b(), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"atol": math.nan}, "atol must be a non-negative number"),
        ({"btol": -1.0}, "btol must be a non-negative number"),
        ({"conlim": math.nan}, "conlim must be a non-negative number"),
        ({"damp": math.inf}, "damp must be finite"),
        ({"maxiter": -2}, "maxiter must be a non-negative int"),
    ],
)
def test_lsmr_option_errors(kwargs, message):
    with pytest.raises(ValueError, match=f"lsmr: {message}"):
        tc.lsmr(_eye(), _b(), **kwargs)


def test_a_callable_operator_of_the_wrong_shape_is_our_error():
    with pytest.raises(ValueError, match=r"cg: A\(x\) must return a tensor shaped like b"):
        tc.cg(lambda x: x[:2], _b())


def test_gmres_never_returns_nan_on_a_matrix_without_entries():
    x, info, warned = _solve("gmres", EMPTY, _b())
    assert torch.isfinite(x).all() and not info.converged and warned


# --------------------------------------------------------------- preconditioners
@pytest.mark.parametrize("build", [tc.jacobi, tc.ic0, tc.ilu0, lambda A: tc.block_jacobi(A, 2)])
def test_preconditioners_reject_non_finite_values(build):
    A = torch.eye(3, dtype=F64)
    A[1, 1] = math.inf
    with pytest.raises(ValueError, match="A must have finite values, got inf"):
        build(A.to_sparse_csr())


def test_ic0_rejects_a_nonsymmetric_matrix():
    A = torch.tensor([[2.0, 1.0], [0.0, 2.0]], dtype=F64).to_sparse_csr()
    with pytest.raises(ValueError, match="ic0: A must be symmetric"):
        tc.ic0(A)


@pytest.mark.parametrize("build", [tc.ic0, tc.ilu0])
def test_factorizations_of_a_matrix_without_entries_are_our_error(build):
    with pytest.raises(ValueError, match="no stored diagonal entry at row 0"):
        build(EMPTY)


@pytest.mark.parametrize(
    "build",
    [tc.jacobi, tc.ic0, tc.ilu0, lambda A: tc.block_jacobi(A, 2)],
    ids=["jacobi", "ic0", "ilu0", "bj"],
)
def test_preconditioners_of_zero_by_zero(build):
    M = build(torch.zeros(0, 0, dtype=F64).to_sparse_csr())
    assert M(torch.zeros(0, dtype=F64)).shape == (0,)


@pytest.mark.parametrize("build", [tc.jacobi, tc.ic0, tc.ilu0])
def test_a_preconditioner_applied_in_another_dtype_is_our_error(build):
    M = build(_eye(3, torch.float32))
    with pytest.raises(
        ValueError, match=r"r must have the dtype it was built for \(torch.float32\)"
    ):
        M(_b())
    with pytest.raises(ValueError, match="r must have shape"):
        M(torch.ones(4, dtype=torch.float32))


def test_an_out_of_range_diagonal_index_is_a_structure_error():
    A = torch.sparse_coo_tensor(
        torch.tensor([[0, 1, 2], [0, 1, 5]]),
        torch.ones(3, dtype=F64),
        (3, 3),
        check_invariants=False,
    )
    with pytest.raises(ValueError, match=r"jacobi: A: indices\[1, 2\] = 5 is out of range"):
        tc.jacobi(A)


# ------------------------------------------------------------- other arguments
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: tc.sparse_triangular_solve(_eye(), _b()[:, None], upper="yes"),
            TypeError,
            "sparse_triangular_solve: upper must be True or False, got 'yes'",
        ),
        (lambda: tc.sparse_eye(3.0), TypeError, "sparse_eye: size must be an int n"),
        (lambda: tc.sparse_eye(3, device="bogus"), ValueError, "sparse_eye: device must name"),
        (lambda: tc.sparse_eye(3, requires_grad="no"), TypeError, "requires_grad must be True or"),
        (
            lambda: tc.rand_sparse((3, 3), 3.5),
            TypeError,
            "rand_sparse: nnz must be an int, got float",
        ),
        (lambda: tc.rand_sparse((3, 3), 2, device="bogus"), ValueError, "rand_sparse: device"),
        (lambda: tc.rand_sparse(3, 2), TypeError, "rand_sparse: size must be a tuple"),
        (lambda: tc.rand_sparse_tri((3, 3), 3.0), TypeError, "rand_sparse_tri: nnz must be an int"),
        (lambda: tc.make_spd_sparse(3, nz=1.5), TypeError, "make_spd_sparse: nz must be an int"),
    ],
)
def test_argument_errors_are_ours(call, error, message):
    with pytest.raises(error, match=message):
        call()
