"""GMRES's single-column path reuses its x and residual buffers across restart cycles: what a
callback is handed must stay what it was, and an operator that returns its argument itself
must not be overwritten by the residual."""

from __future__ import annotations

import torch

import tsgu.core as tc
from tsgu.core.testing import case, generator


def _rhs(n, seed=0):
    return torch.randn(n, generator=generator(seed), dtype=torch.float64)


def test_gmres_callback_iterates_stay_as_handed_and_match_the_block_path():
    A = case("nonsymmetric").make().to_sparse_csr()
    b = _rhs(A.shape[0], seed=21)
    seen, seen_block = [], []
    x = tc.gmres(A, b, rtol=1e-10, restart=3, callback=seen.append)
    X = tc.gmres(A, torch.stack([b, b], -1), rtol=1e-10, restart=3, callback=seen_block.append)
    assert len(seen) == len(seen_block) >= 3
    for one, block in zip(seen, seen_block, strict=True):
        torch.testing.assert_close(one, block[:, 0], rtol=1e-9, atol=1e-11)
    assert not torch.equal(seen[0], seen[-1])  # each cycle's x, not the last one's storage
    torch.testing.assert_close(seen[-1], x)
    torch.testing.assert_close(x, X[:, 0], rtol=1e-9, atol=1e-11)


def test_gmres_with_an_operator_returning_its_argument():
    b = _rhs(50, seed=22)
    x = tc.gmres(lambda v: v, b, rtol=1e-12)  # A = I, handing x itself back
    torch.testing.assert_close(x, b)
    x = tc.gmres(lambda v: 2.0 * v, b, rtol=1e-12, restart=2)  # a fresh tensor
    torch.testing.assert_close(x, b / 2)
