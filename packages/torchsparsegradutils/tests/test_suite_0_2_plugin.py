"""The expected-failure list that ``nox -s compat_suite`` applies to 0.2's own suites."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _plugin():  # the plugin is a file nox copies, not an importable module
    path = Path(__file__).with_name("suite_0_2_plugin.py")
    spec = importlib.util.spec_from_file_location("suite_0_2_plugin", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


_PLUGIN = _plugin()
Entry = _PLUGIN.Entry
read_expected_failures = _PLUGIN.read_expected_failures
LIST = Path(__file__).with_name("expected_failures_0_2.txt")
RELEASES = ("0.2.2", "0.2.7")


@pytest.mark.parametrize("release", RELEASES)
def test_every_entry_has_a_reason_of_an_allowed_kind(release):
    entries = read_expected_failures(LIST, release)
    assert entries
    allowed = ("exact message", "exact error type", "mocks an old torch", "asserts", "reads 0.2.7")
    for entry in entries:
        assert entry.reason.startswith(allowed), (entry.line, entry.reason)
        assert entry.releases <= set(RELEASES), (entry.line, entry.releases)


def test_release_tags_select_entries():
    only_0_2_7 = {e.pattern for e in read_expected_failures(LIST, "0.2.7")} - {
        e.pattern for e in read_expected_failures(LIST, "0.2.2")
    }
    assert "test_sparse_logsumexp.py::test_dense_layout_raises" in only_0_2_7


def test_patterns_take_brackets_literally_and_star_as_anything():
    entry = Entry("test_a.py::test_b[cpu-*]", frozenset(), "r", 1)
    assert entry.regex.fullmatch("test_a.py::test_b[cpu-float32-int64]")
    assert not entry.regex.fullmatch("test_a.py::test_bc")
    assert not entry.regex.fullmatch("test_a.py::test_b[cuda-float32]")


def test_malformed_lists_are_refused(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("test_a.py::test_b\n")
    with pytest.raises(ValueError, match="before any 'reason:' line"):
        read_expected_failures(path, "0.2.2")
    path.write_text("reason: r\ntest_a.py::test_b 0.2.7\n")
    with pytest.raises(ValueError, match="@<release>"):
        read_expected_failures(path, "0.2.2")
