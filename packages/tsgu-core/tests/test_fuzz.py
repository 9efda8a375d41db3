"""The property-based fuzz tests of tsgu.core (fuzz_core.py), each run in a child process.

``TSGU_FUZZ_PROFILE=nightly`` runs many more examples than the suite's default profile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tsgu.core.testing import run_fuzz_module

pytest.importorskip("hypothesis")


def test_fuzz_core():
    run_fuzz_module(Path(__file__).with_name("fuzz_core.py"))
