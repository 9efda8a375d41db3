"""The property-based fuzz tests of tsgu.distributions (fuzz_distributions.py), run in a
child process. ``TSGU_FUZZ_PROFILE=nightly`` runs many more examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsgu.core.testing import run_fuzz_module

pytest.importorskip("hypothesis")


def test_fuzz_distributions():
    run_fuzz_module(Path(__file__).with_name("fuzz_distributions.py"))
