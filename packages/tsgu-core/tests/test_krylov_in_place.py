"""The Krylov solvers update their iterates in place: what the caller sees must not show it.

A callback's x is that iteration's x, never a buffer updated later; a callable A or M that
returns its argument (or a view of it) is never updated through that alias; a block whose
columns stop at different iterations keeps each frozen column exactly as it stopped.
"""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import case, generator

SOLVERS = {
    "cg": (tc.cg, "spd"),
    "minres": (tc.minres, "symmetric_indefinite"),
    "bicgstab": (tc.bicgstab, "nonsymmetric"),
    "gmres": (tc.gmres, "nonsymmetric"),
}


def _rhs(shape, seed=0):
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64)


@pytest.mark.parametrize("solver", [*SOLVERS, "lsmr"])
def test_the_callback_sees_each_iterate_not_a_buffer(solver):
    fn, name = SOLVERS.get(solver, (tc.lsmr, "nonsymmetric"))
    A = case(name).make()
    b = _rhs(A.shape[0])
    seen: list[torch.Tensor] = []
    kwargs = {"atol": 1e-12, "btol": 1e-12} if solver == "lsmr" else {"rtol": 1e-12}
    if solver == "gmres":  # GMRES calls back once per restart cycle
        kwargs["restart"] = 3
    x = fn(A, b, callback=seen.append, **kwargs)
    assert len(seen) >= 2
    # the last one is x; earlier ones are earlier iterates, not the same storage
    torch.testing.assert_close(seen[-1], x)
    assert not torch.equal(seen[0], seen[-1])
    assert len({t.data_ptr() for t in seen}) == len(seen)


@pytest.mark.parametrize("solver", ["gmres", "lsmr"])
def test_a_callable_that_returns_its_argument_is_not_updated_through_it(solver):
    # A = I as a callable returning x itself: the solver must not write into its own basis
    n = 10
    b = _rhs(n, seed=1)
    if solver == "gmres":
        x = tc.gmres(lambda v: v, b, rtol=1e-12)
    else:
        x = tc.lsmr(lambda v: v, b, rmatvec=lambda v: v, atol=1e-12, btol=1e-12)
    torch.testing.assert_close(x, b)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_a_preconditioner_that_returns_its_argument(solver):
    fn, name = SOLVERS[solver]
    A = case(name).make()
    b = _rhs(A.shape[0], seed=2)
    x = fn(A, b, rtol=1e-12, M=lambda r: r)
    torch.testing.assert_close(x, torch.linalg.solve(A.to_dense(), b), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("solver", [*SOLVERS, "lsmr"])
def test_a_column_that_stops_early_stays_as_it_stopped(solver):
    # a zero column stops before the first iteration; a nonzero one runs on beside it
    fn, name = SOLVERS.get(solver, (tc.lsmr, "nonsymmetric"))
    A = case(name).make()
    B = torch.zeros(A.shape[0], 2, dtype=torch.float64)
    B[:, 1] = _rhs(A.shape[0], seed=3)
    kwargs = {"atol": 1e-12, "btol": 1e-12} if solver == "lsmr" else {"rtol": 1e-12}
    X = fn(A, B, **kwargs)
    assert torch.equal(X[:, 0], torch.zeros_like(X[:, 0]))
    torch.testing.assert_close(X[:, 1], fn(A, B[:, 1], **kwargs), rtol=1e-8, atol=1e-9)
