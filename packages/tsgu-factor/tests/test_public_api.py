"""The public surface of tsgu.factor is pinned: a change to it is a deliberate one."""

from __future__ import annotations

from pathlib import Path

import tsgu.factor as tf

EXPECTED = {"Factorization", "__version__", "clear_cache", "factorize", "solve"}


def test_all_is_pinned():
    assert set(tf.__all__) == EXPECTED
    for name in tf.__all__:
        assert hasattr(tf, name), name


def test_public_functions_have_docstrings_with_examples():
    for obj in (tf.factorize, tf.solve, tf.Factorization.solve, tf.Factorization.logdet):
        assert obj.__doc__ and "Examples" in obj.__doc__, obj


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None
    assert not (Path(tf.__file__).parents[1] / "__init__.py").exists()
