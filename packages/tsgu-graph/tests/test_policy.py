"""The error policy every tsgu package keeps (CONTRIBUTING.md), checked for the indexed
products: a dtype mismatch between the operands is a ValueError that names the cast."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import assert_error_policy
from tsgu.graph import gather_mm, segment_mm


@pytest.mark.parametrize(
    ("fn", "call"),
    [
        ("gather_mm", lambda a, b: gather_mm(a, b, torch.tensor([0, 1, 0, 1]))),
        ("segment_mm", lambda a, b: segment_mm(a, b, torch.tensor([2, 2]))),
    ],
)
def test_a_dtype_mismatch_is_a_value_error_that_names_the_cast(fn, call):
    with pytest.raises(ValueError, match=r"; cast it with b\.to\(torch\.float32\)") as info:
        call(torch.randn(4, 3), torch.randn(2, 3, 2, dtype=torch.float64))
    assert_error_policy(info.value, f"{fn}: b must have the dtype of a")
