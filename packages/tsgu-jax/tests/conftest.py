"""Fixtures of the tsgu.jax tests: JAX's 64-bit mode switched on or off for one test, then
restored (tsgu.jax never changes it itself)."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")

from tsgu.jax._x64 import x64_enabled  # noqa: E402


def _mode(on: bool):
    before = x64_enabled()
    jax.config.update("jax_enable_x64", on)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.fixture
def x64():
    """JAX's 64-bit mode on for this test (float64 and int64 pass through)."""
    yield from _mode(True)


@pytest.fixture
def no_x64():
    """JAX's 64-bit mode off for this test (its default)."""
    yield from _mode(False)
