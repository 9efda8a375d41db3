"""The error policy every tsgu package keeps (CONTRIBUTING.md), checked for the distributions:
a dtype mismatch between the arguments is a ValueError that names the cast."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import assert_error_policy
from tsgu.distributions import SparseMultivariateNormal


@pytest.mark.parametrize("name", ["scale_tril", "precision_tril"])
def test_a_dtype_mismatch_is_a_value_error_that_names_the_cast(name):
    L = torch.eye(3, dtype=torch.float64).to_sparse_csr()
    with pytest.raises(ValueError, match=r"; cast one with \.to\(") as info:
        SparseMultivariateNormal(torch.zeros(3, dtype=torch.float32), **{name: L})
    start = f"SparseMultivariateNormal: loc and {name} must have the same dtype"
    assert_error_policy(info.value, start)
