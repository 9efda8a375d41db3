"""The public surface of tsgu.distributions is pinned: a change to it is a deliberate one."""

from __future__ import annotations

from pathlib import Path

import tsgu.distributions as td
from tsgu.distributions import constraints, stats

EXPECTED = {"SparseMultivariateNormal", "SparseMultivariateNormalNative", "__version__"}


def test_all_is_pinned():
    assert set(td.__all__) == EXPECTED
    for name in td.__all__:
        assert hasattr(td, name), name
    assert set(stats.__all__) == {"mean_hotelling_t2_test", "cov_nagao_test"}
    assert set(constraints.__all__) == {"sparse_lower_cholesky", "sparse_strictly_lower"}


def test_public_objects_have_docstrings_with_examples():
    for obj in (
        td.SparseMultivariateNormal,
        td.SparseMultivariateNormalNative,
        stats.mean_hotelling_t2_test,
        stats.cov_nagao_test,
    ):
        assert obj.__doc__ and "Examples" in obj.__doc__, obj


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    src = Path(td.__file__).parents[1]
    assert not (src / "__init__.py").exists()


def test_version():
    assert td.__version__ == "0.1.0"
