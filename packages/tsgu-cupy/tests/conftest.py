"""Fixtures of the tsgu.cupy tests: a clean factorization cache and a count of factorizations."""

from __future__ import annotations

import pytest
import torch

import tsgu.cupy._factor as factor_module
from tsgu.cupy import have_cupy
from tsgu.cupy._cache import factor_cache

# CPU always; CUDA where a GPU and CuPy are there (marked: pytest -m "cuda and cupy").
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.cupy,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
            pytest.mark.skipif(not have_cupy, reason="needs CuPy: pip install 'tsgu-cupy[cuda12]'"),
        ],
    ),
]


class Counter:
    def __init__(self) -> None:
        self.calls = 0


@pytest.fixture(autouse=True)
def _clean_cache():
    """Every test starts and ends with an empty factorization cache."""
    factor_cache.clear()
    yield
    factor_cache.clear()


@pytest.fixture(params=DEVICES)
def device(request):
    """Each device the backends run on: "cpu" (SciPy) and "cuda" (CuPy, skipped without it)."""
    return request.param


@pytest.fixture
def factorizations(monkeypatch):
    """Counts the SuperLU factorizations (calls of ``splu``) made during a test."""
    counter = Counter()
    real = factor_module.splu

    def counting(*args, **kwargs):
        counter.calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(factor_module, "splu", counting)
    return counter
