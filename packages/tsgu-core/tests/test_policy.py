"""The error policy every tsgu package keeps (CONTRIBUTING.md), checked for tsgu-core's solves.

A dtype mismatch between A and B is a ValueError that names the cast; ``tol`` and ``rtol``
together are a ValueError; every message reads "<function>: <argument> ..., got ...; <fix>".
"""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
import tsgu.core.extend as ext
from tsgu.core.testing import assert_error_policy, case


class _Exact(ext.LinearSolver):
    def __init__(self, A):
        self.D = A.detach().to_dense()

    def solve(self, B, transpose):
        return torch.linalg.solve(self.D.mT if transpose else self.D, B)


OPERATIONS = {
    "sparse_mm": lambda A, B: tc.sparse_mm(A, B),
    "sparse_triangular_solve": lambda A, B: tc.sparse_triangular_solve(A, B, upper=False),
    "sparse_generic_solve": lambda A, B: tc.sparse_generic_solve(A, B),
    "sparse_generic_lstsq": lambda A, B: tc.sparse_generic_lstsq(A, B),
    "linear_solve": lambda A, B: ext.linear_solve(A, B, _Exact(A)),
}


@pytest.mark.parametrize("fn", list(OPERATIONS))
def test_a_dtype_mismatch_is_a_value_error_that_names_the_cast(fn):
    A = case("lower_triangular").make()
    with pytest.raises(ValueError, match=r"; cast one with \.to\(torch\.float64\)") as info:
        OPERATIONS[fn](A, torch.ones(12, 2, dtype=torch.float32))
    assert_error_policy(info.value, f"{fn}: A and B must have the same dtype, got torch.float64")


@pytest.mark.parametrize("solve", [None, "gmres", lambda A, B, **kw: torch.zeros_like(B)])
def test_tol_and_rtol_together_are_an_error(solve):
    A = case("nonsymmetric").make()
    with pytest.raises(ValueError) as info:
        tc.sparse_generic_solve(A, torch.ones(12, dtype=torch.float64), solve, tol=1e-8, rtol=1e-9)
    assert_error_policy(info.value, "sparse_generic_solve: tol and rtol must not both be given")


@pytest.mark.parametrize(
    ("call", "error", "start"),
    [
        (lambda A, B: tc.sparse_generic_solve(A, B, solve="lu"), ValueError, "solve must be"),
        (lambda A, B: tc.sparse_generic_solve(A, B, solve=3), TypeError, "solve must be"),
        (
            lambda A, B: tc.sparse_generic_solve(A, B, solve=lambda A, B: B[:2]),
            ValueError,
            "the solver's result must be",
        ),
        (lambda A, B: tc.sparse_generic_lstsq(A, B, lstsq="lsmr"), TypeError, "lstsq must be"),
        (lambda A, B: tc.sparse_triangular_solve(A.to_dense(), B), TypeError, "A must be"),
        (lambda A, B: tc.sparse_triangular_solve(A, B.to_sparse()), TypeError, "B must be"),
    ],
)
def test_solve_errors_name_the_fix(call, error, start):
    with pytest.raises(error) as info:
        call(case("nonsymmetric").make(), torch.ones(12, 2, dtype=torch.float64))
    fn = str(info.value).split(":")[0]
    assert_error_policy(info.value, f"{fn}: {start}")
