"""Sphinx configuration for the tsgu documentation (all packages).

Build with ``nox -s docs`` (warnings are errors; the gallery scripts run first), or by hand
with ``sphinx-build -W --keep-going -b html docs docs/_build/html`` once the packages,
sphinx, myst-parser and matplotlib are installed.

Offline builds: intersphinx links to the torch, NumPy, SciPy, CuPy and JAX docs only when
their inventories can be fetched. Each ``objects.inv`` is downloaded here, in parallel, with
a 2-second socket timeout and 6 seconds for all; a site that cannot be reached is left out
(its names stay plain text) instead of becoming an intersphinx warning, which ``-W`` would
turn into a failure. Machines without internet (CI, the build machines) so build the same
site without the links, in about the time of a failed name lookup.
``TSGU_DOCS_OFFLINE=1`` skips the attempt altogether.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))

import _generate  # noqa: E402 (needs the path above)

_generate.main()  # benchmark tables and plots, the package table: docs/_generated/

project = "tsgu"
author = "the tsgu developers"
copyright = "2026, the tsgu developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
exclude_patterns = ["_build", "_generated", "gallery/figures"]
html_theme = "alabaster"
html_static_path: list[str] = []
nitpicky = False

# --- intersphinx, only where the network reaches -------------------------------------------

INVENTORIES = {
    "python": "https://docs.python.org/3/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "numpy": "https://numpy.org/doc/stable/",
    "scipy": "https://docs.scipy.org/doc/scipy/",
    "cupy": "https://docs.cupy.dev/en/stable/",
    "jax": "https://docs.jax.dev/en/latest/",
}
_CACHE = DOCS / "_build" / "intersphinx"


def _fetch(name: str, url: str, found: dict[str, tuple[str, str]]) -> None:
    """Download ``url``'s objects.inv into the cache and record it in ``found``."""
    try:
        with urllib.request.urlopen(url + "objects.inv", timeout=2) as response:
            data = response.read()
    except (OSError, ValueError):
        return
    target = _CACHE / f"{name}.inv"
    target.write_bytes(data)
    found[name] = (url, str(target))


def _inventories() -> dict[str, tuple[str, str]]:
    if os.environ.get("TSGU_DOCS_OFFLINE", "") not in ("", "0"):
        return {}
    _CACHE.mkdir(parents=True, exist_ok=True)
    found: dict[str, tuple[str, str]] = {}
    # daemon threads: a name lookup that hangs (urlopen's timeout does not cover DNS) is
    # abandoned after the deadline instead of holding the build or its exit
    deadline = time.monotonic() + 6.0
    threads = [
        threading.Thread(target=_fetch, args=(name, url, found), daemon=True)
        for name, url in INVENTORIES.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return {name: found[name] for name in INVENTORIES if name in found}


intersphinx_mapping = _inventories()
print(
    "intersphinx: "
    + (", ".join(intersphinx_mapping) if intersphinx_mapping else "offline, no links")
)
