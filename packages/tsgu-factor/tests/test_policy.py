"""The error policy every tsgu package keeps (CONTRIBUTING.md), checked for tsgu.factor."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import assert_error_policy
from tsgu.factor import factorize, solve


def _A() -> torch.Tensor:
    return torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64).to_sparse_csr()


@pytest.mark.parametrize(
    ("fn", "call"),
    [
        ("Factorization.solve", lambda B: factorize(_A()).solve(B)),
        ("Factorization.solve", lambda B: solve(_A(), B, "cholesky")),
    ],
)
def test_a_dtype_mismatch_is_a_value_error_that_names_the_cast(fn, call):
    with pytest.raises(ValueError, match=r"; cast it with B\.to\(torch\.float64\)") as info:
        call(torch.ones(2))
    assert_error_policy(info.value, f"{fn}: A and B must have the same dtype")


@pytest.mark.parametrize(
    ("start", "call"),
    [
        ("factorize: A must be square", lambda: factorize(torch.ones(2, 3).to_sparse_csr())),
        ("factorize: kind must be one of", lambda: factorize(_A(), "qr")),
        ("Factorization.refactor: give exactly one of A and values",
         lambda: factorize(_A()).refactor()),
        ("factorize: A must be positive definite",
         lambda: factorize((-_A().to_dense()).to_sparse_csr(), "cholesky")),
    ],
)  # fmt: skip
def test_errors_read_function_argument_expected_got_fix(start, call):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert_error_policy(info.value, start)
