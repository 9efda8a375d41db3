"""0.2 accepted complex systems in ``lsmr`` and ``bicgstab``; 0.2.7's BiCGSTAB conventions."""

from __future__ import annotations

import pytest
import torch

from torchsparsegradutils.utils import BICGSTABSettings, bicgstab, lsmr


def _complex(m: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(m, n, dtype=torch.float64, generator=g)
    imag = torch.randn(m, n, dtype=torch.float64, generator=g)
    A = torch.complex(real, imag)
    return A * (torch.rand(m, n, dtype=torch.float64, generator=g) < 0.5)  # sparse-ish


def _as(A: torch.Tensor, kind: str) -> torch.Tensor:
    return {"dense": A, "coo": A.to_sparse_coo(), "csr": A.to_sparse_csr()}[kind]


@pytest.mark.parametrize("kind", ["dense", "coo", "csr"])
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_lsmr_solves_complex_least_squares(kind, dtype):
    A = _complex(12, 5, seed=0) + torch.eye(12, 5)
    b = _complex(12, 1, seed=1).squeeze(1)
    A, b = A.to(dtype), b.to(dtype)
    x, itn = lsmr(_as(A, kind), b, atol=1e-12, btol=1e-12, maxiter=100)
    assert x.dtype == dtype and x.shape == (5,) and itn > 0
    expected = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
    tol = 1e-4 if dtype == torch.complex64 else 1e-10
    torch.testing.assert_close(x, expected, rtol=tol, atol=tol)


def test_lsmr_complex_initial_guess_callable_and_real_matrix_with_complex_b():
    A = _complex(10, 10, seed=2) + 4 * torch.eye(10)
    b = _complex(10, 1, seed=3).squeeze(1)
    expected = torch.linalg.solve(A, b)
    x, _ = lsmr(
        lambda v: A @ v, b, Armat=lambda u: A.mH @ u, x0=expected + 0.1, atol=1e-12, btol=1e-12
    )
    torch.testing.assert_close(x, expected)
    R = torch.eye(10, dtype=torch.float64) * 2
    x, _ = lsmr(R.to_sparse(), b, atol=1e-12, btol=1e-12)
    torch.testing.assert_close(x, b / 2)


def test_lsmr_squeezes_one_vector_as_0_2_did():
    A = torch.eye(4, dtype=torch.float64)
    b = torch.arange(1.0, 5.0, dtype=torch.float64)
    for shaped in (b.unsqueeze(0), b.unsqueeze(1)):
        x, _ = lsmr(A, shaped)
        assert x.shape == (4,)
        torch.testing.assert_close(x, b)


@pytest.mark.parametrize("kind", ["dense", "coo", "csr"])
def test_bicgstab_solves_complex_systems(kind):
    A = _complex(10, 10, seed=4) + 5 * torch.eye(10)
    B = _complex(10, 3, seed=5)
    settings = BICGSTABSettings(reltol=1e-12, abstol=0.0, matvec_max=200)
    X = bicgstab(_as(A, kind), B, settings=settings)
    torch.testing.assert_close(X, torch.linalg.solve(A, B))
    x = bicgstab(
        _as(A, kind), B[:, 0], initial_guess=torch.ones(10, dtype=A.dtype), settings=settings
    )
    torch.testing.assert_close(x, torch.linalg.solve(A, B[:, 0]))


def test_bicgstab_tolerance_is_relative_to_b_as_scipy():
    # a warm start already within reltol * ||b|| needs no iteration (0.2.2 scaled the
    # tolerance by the initial residual instead, and would iterate)
    A = torch.diag(torch.tensor([2.0, 4.0], dtype=torch.float64))
    b = torch.tensor([2.0, 4.0], dtype=torch.float64)
    calls = []

    def operator(x):
        calls.append(1)
        return A @ x

    x0 = torch.full((2,), 1.0 - 5e-7, dtype=torch.float64)
    x = bicgstab(operator, b, initial_guess=x0)
    assert len(calls) == 1  # the initial residual only
    torch.testing.assert_close(x, x0)


def test_bicgstab_matvec_budget_bounds_the_products():
    n = 30
    A = torch.diag(torch.linspace(1.0, 1000.0, n, dtype=torch.float64)) + torch.diag(
        torch.full((n - 1,), 0.5, dtype=torch.float64), 1
    )
    calls = []

    def operator(x):
        calls.append(1)
        return A @ x

    with pytest.warns(UserWarning, match="did not converge"):
        bicgstab(
            operator, torch.ones(n, dtype=torch.float64), settings=BICGSTABSettings(matvec_max=7)
        )
    assert 0 < len(calls) <= 7


def test_bicgstab_zero_and_negative_budgets_and_bad_operators():
    b = torch.ones(3, dtype=torch.float64)

    def never(x):
        raise AssertionError("no product may be computed")

    with pytest.warns(UserWarning, match="matvec_max=0"):
        x = bicgstab(never, b, initial_guess=b * 0.5, settings=BICGSTABSettings(matvec_max=0))
    torch.testing.assert_close(x, b * 0.5)
    with pytest.raises(ValueError, match="matvec_max must be nonnegative"):
        bicgstab(never, b, settings=BICGSTABSettings(matvec_max=-1))
    for error in (TypeError, RuntimeError):  # tsgu's type and 0.2's
        with pytest.raises(error, match="matmul_closure must be a tensor"):
            bicgstab(object(), b, settings=BICGSTABSettings(matvec_max=0))
        with pytest.raises(error, match=r"settings\.precon must be a tensor"):
            bicgstab(never, b, settings=BICGSTABSettings(precon=object()))
