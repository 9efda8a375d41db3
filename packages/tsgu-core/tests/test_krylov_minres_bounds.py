"""MINRES's single-column step skips the finiteness check of x where a bound on its norm
proves it finite, and checks exactly where the bound is too large: near overflow it must
behave as the block path (which always checks), step for step."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import case, generator

# the module (the package's attribute of that name is the function)
minres_module = importlib.import_module("tsgu.core.krylov.minres")


def _rhs(n, seed=0):
    return torch.randn(n, generator=generator(seed), dtype=torch.float64)


def _both(A, b, **kwargs):
    """The single-column path's and the block path's (b twice) results and warnings."""
    with warnings.catch_warnings(record=True) as one:
        warnings.simplefilter("always")
        x, info = tc.minres(A, b, return_info=True, **kwargs)
    with warnings.catch_warnings(record=True) as block:
        warnings.simplefilter("always")
        X, block_info = tc.minres(A, torch.stack([b, b], -1), return_info=True, **kwargs)
    return (x, info, [str(w.message) for w in one]), (X[:, 0], block_info, block)


@pytest.mark.parametrize("scale", [1.0, 1e100, 1e150])
def test_minres_single_column_of_a_scaled_system_matches_the_block_path(scale):
    A = case("symmetric_indefinite").make().to_sparse_csr()
    b = _rhs(A.shape[0], seed=11) * scale
    (x, info, one), (X, block_info, block) = _both(A, b, rtol=1e-10)
    assert info.iterations == block_info.iterations
    assert info.reason == block_info.reason and info.converged == block_info.converged
    assert len(one) == len(block)
    torch.testing.assert_close(x / scale, X / scale, rtol=1e-9, atol=1e-11)
    # and the iterates of the unscaled problem, scaled
    x1, info1 = tc.minres(A, b / scale, rtol=1e-10, return_info=True)
    assert info.iterations == info1.iterations
    torch.testing.assert_close(x / scale, x1, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["symmetric_indefinite", "spd"])
def test_minres_single_column_exact_check_at_every_step_gives_the_same_iterates(name, monkeypatch):
    # no bound proves a step finite: x_next out of place and checked by its sum of squares
    # at every step, and the bounds reset from exact norms; the same arithmetic otherwise
    A = case(name).make().to_sparse_csr()
    b = _rhs(A.shape[0], seed=13)
    x, info = tc.minres(A, b, rtol=1e-10, return_info=True)
    monkeypatch.setattr(minres_module, "_CERTAIN", 0.0)
    x_checked, info_checked = tc.minres(A, b, rtol=1e-10, return_info=True)
    assert info.iterations == info_checked.iterations and info.reason == info_checked.reason
    assert torch.equal(x, x_checked)


def test_minres_single_column_with_a_preconditioner_matches_the_block_path():
    # with M the norm of y is not known: every step takes the exact check
    A = case("symmetric_indefinite").make().to_sparse_csr()
    M = torch.diag(1.0 / (1.0 + torch.arange(A.shape[0], dtype=torch.float64)))
    b = _rhs(A.shape[0], seed=12)
    (x, info, one), (X, block_info, block) = _both(A, b, rtol=1e-10, M=M)
    assert info.iterations == block_info.iterations and info.reason == block_info.reason
    assert len(one) == len(block)
    torch.testing.assert_close(x, X, rtol=1e-9, atol=1e-11)
