"""pytest plugin for running torchsparsegradutils 0.2's own test suite against this drop-in.

``nox -s compat_suite`` extracts the ``tests/`` folder of a 0.2 release's wheel into a fresh
folder, copies this file there as ``conftest.py`` and runs pytest from that folder, so the
release's own package is never on the path. The plugin

- refuses to run unless ``torchsparsegradutils`` is this drop-in (``--drop-in-src``);
- marks the tests listed in ``expected_failures_0_2.txt`` for this release as strict xfail,
  each with its reason, and fails the run when an entry matches no collected test;
- counts passed / failed / skipped / xfailed / xpassed / errors and writes them as JSON.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")

_ENTRIES = pytest.StashKey[list["Entry"]]()
# one pytest run loads the plugin once: the counts live with the module
_counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)


@dataclass
class Entry:
    """One line of the expected-failure file: a node-id pattern, its releases and reason."""

    pattern: str
    releases: frozenset[str]
    reason: str
    line: int
    regex: re.Pattern[str] = field(init=False)
    matched: int = 0

    def __post_init__(self) -> None:
        # only '*' is a wildcard: node ids hold '[' and ']' literally
        self.regex = re.compile(".*".join(re.escape(part) for part in self.pattern.split("*")))


def read_expected_failures(path: Path, release: str) -> list[Entry]:
    """The entries of ``path`` that apply to ``release``.

    Format: ``#`` starts a comment; a line ``reason: <text>`` sets the reason of the
    entries below it; an entry is ``<node-id pattern>`` (``*`` matches anything), optionally
    followed by ``@<release>`` tags limiting it to those releases (default: every release).
    """
    entries: list[Entry] = []
    reason = ""
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("reason:"):
            reason = line[len("reason:") :].strip()
            continue
        if not reason:
            raise ValueError(f"{path}:{number}: entry before any 'reason:' line")
        pattern, *tags = line.split()
        releases = frozenset(tag.removeprefix("@") for tag in tags)
        if any(not tag.startswith("@") for tag in tags):
            raise ValueError(f"{path}:{number}: tags must read @<release>, got {tags}")
        if not releases or release in releases:
            entries.append(Entry(pattern, releases, reason, number))
    return entries


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("suite_0_2", "torchsparsegradutils 0.2's suite against the drop-in")
    group.addoption("--suite-release", required=True, help="the 0.2 release the tests come from")
    group.addoption("--expected-failures", required=True, help="expected_failures_0_2.txt")
    group.addoption("--drop-in-src", required=True, help="the drop-in's src/ folder")
    group.addoption("--suite-summary", help="write the outcome counts here as JSON")


def pytest_configure(config: pytest.Config) -> None:
    module = importlib.import_module("torchsparsegradutils")
    src = Path(config.getoption("--drop-in-src")).resolve()
    where = Path(module.__file__ or "").resolve()
    if src not in where.parents:
        raise pytest.UsageError(
            f"torchsparsegradutils is imported from {where}, not from the drop-in in {src}: "
            "a 0.2 release is on the path"
        )
    release = config.getoption("--suite-release")
    config.stash[_ENTRIES] = read_expected_failures(
        Path(config.getoption("--expected-failures")), release
    )


def _relative_id(nodeid: str) -> str:
    """``tests/test_x.py::name`` -> ``test_x.py::name`` (the file's entries omit the folder)."""
    return nodeid.split("/", 1)[1] if nodeid.startswith("tests/") else nodeid


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    entries = config.stash[_ENTRIES]
    for item in items:
        nodeid = _relative_id(item.nodeid)
        for entry in entries:
            if entry.regex.fullmatch(nodeid):
                entry.matched += 1
                item.add_marker(pytest.mark.xfail(reason=entry.reason, strict=True))
                break


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.outcome == "skipped" else "xpassed"
        elif report.when == "setup" and report.outcome == "failed":
            outcome = "error"
        else:
            outcome = report.outcome
        _counts[outcome] += 1
    elif report.when == "teardown" and report.outcome == "failed":
        _counts["error"] += 1


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # a module that cannot be imported is an error; one that skips itself, one skip
    if report.outcome == "failed":
        _counts["error"] += 1
    elif report.outcome == "skipped":
        _counts["skipped"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    stale = [entry for entry in config.stash[_ENTRIES] if not entry.matched]
    # an entry can only be judged stale when the whole suite was collected and run
    whole_suite = (
        config.args == ["tests"]
        and not config.option.keyword
        and not config.option.markexpr
        and not config.option.collectonly
        and not config.option.maxfail
    )
    if not whole_suite:
        stale = []
    if stale:
        for entry in stale:
            print(f"expected_failures_0_2.txt:{entry.line}: {entry.pattern} matches no test")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    summary = config.getoption("--suite-summary")
    if summary:
        counts = dict(_counts, stale_entries=len(stale))
        Path(summary).write_text(json.dumps(counts))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    release = terminalreporter.config.getoption("--suite-release")
    counts = ", ".join(f"{_counts[name]} {name}" for name in OUTCOMES)
    terminalreporter.write_sep("=", f"torchsparsegradutils {release}'s suite: {counts}")
