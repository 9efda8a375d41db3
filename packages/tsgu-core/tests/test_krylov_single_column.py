"""One right-hand side on the CPU takes the solvers' single-column path (Python-float scalars);
a block takes the block path. The two must agree: same iterates to rounding, same iteration
counts, same stopping reasons and warnings."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import tsgu.core as tc
from tsgu.core.krylov._common import ieee_div
from tsgu.core.testing import case, generator

SOLVERS = {
    "cg": (tc.cg, "spd", {"rtol": 1e-10}),
    "minres": (tc.minres, "symmetric_indefinite", {"rtol": 1e-10}),
    "bicgstab": (tc.bicgstab, "nonsymmetric", {"rtol": 1e-10}),
    "gmres": (tc.gmres, "nonsymmetric", {"rtol": 1e-10, "restart": 5}),
    "lsmr": (tc.lsmr, "nonsymmetric", {"atol": 1e-10, "btol": 1e-10}),
}


def _rhs(n, seed=0):
    return torch.randn(n, generator=generator(seed), dtype=torch.float64)


def _twice(b):  # a two-column block of b: the block path, each column as b alone
    return torch.stack([b, b], dim=-1)


@pytest.mark.parametrize("layout", ["csr", "coo", "dense"])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_the_single_column_path_matches_the_block_path(solver, layout):
    fn, name, kwargs = SOLVERS[solver]
    A = case(name).make()
    A = {"csr": A.to_sparse_csr(), "coo": A.to_sparse_coo(), "dense": A.to_dense()}[layout]
    b = _rhs(A.shape[0], seed=4)
    x, info = fn(A, b, return_info=True, **kwargs)
    X, block_info = fn(A, _twice(b), return_info=True, **kwargs)
    assert info.iterations == block_info.iterations
    assert info.converged == block_info.converged and info.reason == block_info.reason
    torch.testing.assert_close(x, X[:, 0], rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(
        info.residual_norm, block_info.residual_norm[0], rtol=1e-6, atol=1e-12
    )


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_the_single_column_path_with_x0_and_maxiter_matches(solver):
    fn, name, kwargs = SOLVERS[solver]
    A = case(name).make()
    b, x0 = _rhs(A.shape[0], seed=5), _rhs(A.shape[1], seed=6)
    with warnings.catch_warnings(record=True) as one:
        warnings.simplefilter("always")
        x, info = fn(A, b, x0, maxiter=2, return_info=True, **kwargs)
    with warnings.catch_warnings(record=True) as block:
        warnings.simplefilter("always")
        X, block_info = fn(A, _twice(b), _twice(x0), maxiter=2, return_info=True, **kwargs)
    assert info.iterations == block_info.iterations
    assert info.reason == block_info.reason
    assert len(one) == len(block)
    torch.testing.assert_close(x, X[:, 0], rtol=1e-9, atol=1e-11)


def test_cg_single_column_reports_a_breakdown_as_the_block_does():
    n = 6
    A = torch.diag(torch.tensor([1.0, 2.0, -3.0, 4.0, -5.0, 6.0], dtype=torch.float64))
    b = _rhs(n, seed=7)
    with pytest.warns(tc.ConvergenceWarning, match="positive definite"):
        x, info = tc.cg(A.to_sparse_csr(), b, return_info=True)
    with pytest.warns(tc.ConvergenceWarning, match="positive definite"):
        X, block_info = tc.cg(A.to_sparse_csr(), _twice(b), return_info=True)
    assert info.iterations == block_info.iterations and info.reason == block_info.reason
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x, X[:, 0])


def test_ieee_div_divides_by_zero_as_a_tensor_does():
    for a, b in [(1.0, 0.0), (-1.0, 0.0), (1.0, -0.0), (0.0, 0.0), (math.nan, 0.0), (3.0, 2.0)]:
        expected = float(
            torch.tensor(a, dtype=torch.float64) / torch.tensor(b, dtype=torch.float64)
        )
        got = ieee_div(a, b)
        assert got == expected or (math.isnan(got) and math.isnan(expected))
