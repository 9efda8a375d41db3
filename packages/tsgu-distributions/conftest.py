"""The matrix-given SparseMultivariateNormal needs the optional tsgu-factor: without it,
its module's examples are not collected (its tests skip themselves)."""

from __future__ import annotations

import importlib.util

collect_ignore: list[str] = []
try:
    _has_factor = importlib.util.find_spec("tsgu.factor") is not None
    if _has_factor:
        import tsgu.factor  # noqa: F401  (importable, not only present)
except ImportError:
    _has_factor = False
if not _has_factor:
    collect_ignore.append("src/tsgu/distributions/_from_matrix.py")
