"""The public surface of tsgu.encoders is pinned: a change to it is a deliberate one."""

from __future__ import annotations

from pathlib import Path

import tsgu.encoders as te

EXPECTED = {
    "PairwiseEncoder",
    "__version__",
    "calc_pairwise_coo_indices_nd",
    "plot_pairwise_pattern",
}


def test_all_is_pinned():
    assert set(te.__all__) == EXPECTED
    for name in te.__all__:
        assert hasattr(te, name), name


def test_public_names_have_docstrings_with_examples():
    for name in te.__all__:
        obj = getattr(te, name)
        if callable(obj):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    src = Path(te.__file__).parents[1]
    assert not (src / "__init__.py").exists()
