"""Until tsgu-core's extension layer (tsgu.core.extend) is on this branch, tsgu.factor's
solves and logdet cannot import: skip its modules and tests rather than fail them."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("tsgu.core.extend") is None:  # pragma: no cover
    collect_ignore_glob = ["src/*", "tests/*"]
