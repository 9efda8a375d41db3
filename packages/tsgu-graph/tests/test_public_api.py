"""The public surface of tsgu.graph is pinned: a change to it is a deliberate one."""

from __future__ import annotations

import inspect
from pathlib import Path

import tsgu.graph as tg

EXPECTED = {"__version__", "gather_mm", "segment_mm"}


def test_all_is_pinned():
    assert set(tg.__all__) == EXPECTED
    for name in tg.__all__:
        assert hasattr(tg, name), name


def test_signatures_are_those_of_torchsparsegradutils_0_2():
    assert list(inspect.signature(tg.segment_mm).parameters) == ["a", "b", "seglen_a"]
    assert list(inspect.signature(tg.gather_mm).parameters) == ["a", "b", "idx_b"]


def test_public_functions_have_docstrings_with_examples_and_notes():
    for name in tg.__all__:
        obj = getattr(tg, name)
        if callable(obj):
            assert obj.__doc__ and "Examples" in obj.__doc__ and "Notes" in obj.__doc__, name


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    src = Path(tg.__file__).parents[1]
    assert not (src / "__init__.py").exists()
