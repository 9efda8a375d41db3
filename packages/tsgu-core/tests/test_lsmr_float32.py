"""LSMR in float32: its condition estimate starts from a bound float32 can hold."""

from __future__ import annotations

import torch

import tsgu.core as tc


def test_lsmr_float32_least_squares():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(12, 5, generator=g) + torch.eye(12, 5)
    b = torch.randn(12, generator=g)
    x, info = tc.lsmr(A.to_sparse_csr(), b, atol=1e-7, btol=1e-7, return_info=True)
    assert x.dtype == torch.float32 and info.iterations > 0
    expected = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)
