"""The error policy every tsgu package keeps (CONTRIBUTING.md), checked for sparse_solve_c4t."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import assert_error_policy, case
from tsgu.cupy import sparse_solve_c4t

FN = "sparse_solve_c4t"


@pytest.mark.parametrize(
    ("B", "kwargs", "error", "start"),
    [
        (torch.ones(12), {}, ValueError, "A and B must have the same dtype, got torch.float64"),
        (torch.ones(12), {"solve": "gmres"}, ValueError, "A and B must have the same dtype"),
        (None, {"solve": "gmres", "tol": 1e-8, "rtol": 1e-9}, ValueError, "tol and rtol must not"),
        (None, {"solve": "lu"}, ValueError, "solve must be"),
        (None, {"solve": 3}, TypeError, "solve must be"),
        (None, {"transpose_solve": "qr"}, ValueError, "transpose_solve must be"),
        (None, {"solve": lambda A, b: b[:2]}, ValueError, "solve must return"),
    ],
)
def test_errors_follow_the_policy(B, kwargs, error, start):
    B = torch.ones(12, dtype=torch.float64) if B is None else B
    with pytest.raises(error) as info:
        sparse_solve_c4t(case("nonsymmetric").make(), B, **kwargs)
    assert_error_policy(info.value, f"{FN}: {start}")
