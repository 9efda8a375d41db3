"""The error policy every tsgu package keeps (CONTRIBUTING.md), checked for sparse_solve_j4t."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import assert_error_policy, case
from tsgu.jax import sparse_solve_j4t

FN = "sparse_solve_j4t"


@pytest.mark.parametrize(
    ("B", "kwargs", "error", "start"),
    [
        (torch.ones(12, dtype=torch.float64), {}, ValueError, "A and B must have the same dtype"),
        (None, {"tol": 1e-5, "rtol": 1e-5}, ValueError, "tol and rtol must not both be given"),
        (None, {"solve": "lu"}, ValueError, "solve must be"),
        (None, {"solve": 1.5}, TypeError, "solve must be"),
        (None, {"tol": -1.0}, ValueError, "tol must be a non-negative number"),
        (None, {"tol": "small"}, TypeError, "tol must be a real number"),
        (None, {"x0": [0.0] * 12}, TypeError, "x0 must be"),
        (None, {"x0": torch.ones(12, 1)}, ValueError, "x0 must have"),
        (None, {"maxiter": [3]}, TypeError, "maxiter must be an int or None"),
        (None, {"solve": "gmres", "restart": [3]}, TypeError, "keyword argument restart must"),
    ],
)
def test_errors_follow_the_policy(B, kwargs, error, start):
    B = torch.ones(12) if B is None else B
    with pytest.raises(error) as info:
        sparse_solve_j4t(case("spd").make(dtype=torch.float32), B, **kwargs)
    assert_error_policy(info.value, f"{FN}: {start}")
