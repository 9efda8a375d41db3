"""The shared benchmark runner.

A benchmark script lists :class:`Case` s and a ``measure(params) -> dict`` function. The
runner executes every case in a fresh child process (so one case's memory never inflates
another's peak, and an out-of-memory kill ends only that case), skips a case whose
estimated memory exceeds the budget (recording what it would need), records a raised
error as text, and goes on. It prints a table with ratios against each group's reference
method, writes ``results/<name>.csv`` and ``plots/<name>.png``, and shows progress.

Each case runs in two children: one times it, one measures its peak memory. On the CPU the
memory child runs with a fixed glibc mmap threshold, so every freed block goes back to the
system at once (glibc otherwise raises the threshold after a large free and keeps later
blocks in its heap, which hides their peak); peak memory is then the rise of the peak
resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) over the resident set just
before the measured call. On CUDA it is ``torch.cuda.max_memory_allocated`` over the
allocation before. The timing child keeps the default allocator, as users run.

How long a call that makes large tensors takes depends on the allocator's state: a fresh
block of pages costs a page fault per 4 KiB page on first touch (about 25-65 ms per 130 MB
on this machine), while glibc serves a block from its heap, already resident, where earlier
work left free memory there (a slow build that peaked at several GB, a long-running
process). Two methods timed in separate children then differ by what their set-up left
behind. :func:`return_free_memory` (before each timed call) and :func:`keep_freed_memory`
put every method in the same state: "cold" (every call touches fresh pages) or "warm"
(every call reuses resident pages).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PLOTS = HERE / "plots"
_MARK = "@@tsgu-bench@@"
_MEMORY_ENV = "TSGU_BENCH_MEMORY"
NAN = float("nan")


def measuring_memory() -> bool:
    """True in the child that measures memory (timings there are skipped)."""
    return os.environ.get(_MEMORY_ENV) == "1"


@dataclass
class Case:
    """One measurement: ``method`` on the problem ``group`` with ``params`` for the child."""

    group: str
    method: str
    params: dict[str, Any]
    needs_bytes: float | None = None  # estimated peak; over budget -> skipped, not run
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ child-side tools
def _proc_status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"{key}:\s+(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else 0


def peak_memory(fn: Callable[[], Any], device: str = "cpu") -> float:
    """Bytes by which ``fn()`` raises peak memory above what is live before it.

    NaN (and ``fn`` not run) in the timing child.
    """
    if not measuring_memory():
        return NAN
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - before)
    before = _proc_status("VmRSS")
    with contextlib.suppress(OSError):  # reset VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    fn()
    return float(max(_proc_status("VmHWM") - before, 0))


def timed(
    fn: Callable[[], Any],
    *,
    repeat: int = 3,
    warmup: int = 1,
    device: str = "cpu",
    min_seconds: float = 0.3,
    max_repeat: int = 50,
    setup: Callable[[], Any] | None = None,
) -> float:
    """Median seconds of ``fn()``: at least ``repeat`` runs, more (up to ``max_repeat``)
    until ``min_seconds`` have passed, after ``warmup`` runs. Short calls are noisy.
    ``setup()``, if given, runs before each timed run, outside the timing.

    NaN (and ``fn`` not run) in the memory child.
    """
    if measuring_memory():
        return NAN
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if device.startswith("cuda"):
        import torch

        sync = torch.cuda.synchronize
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < repeat or (sum(times) < min_seconds and len(times) < max_repeat):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _glibc() -> Any:
    """glibc through ctypes, or None where another C library allocates."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (glibc only)
    except (OSError, AttributeError):
        return None
    return libc


def return_free_memory() -> None:
    """Give the allocator's free pages back to the system (glibc ``malloc_trim``): the next
    large tensor touches fresh pages, as in a fresh process. No-op off glibc."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def keep_freed_memory() -> bool:
    """From now on glibc serves every block from its heap and keeps freed memory resident
    (``mallopt``: no mmap, no trim), as a long-running process or jemalloc does: a tensor
    made again reuses resident pages. False (nothing changed) off glibc."""
    libc = _glibc()
    m_trim_threshold, m_mmap_max = -1, -4
    if libc is None:
        return False
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def nbytes(*tensors: Any) -> int:
    """Storage bytes of dense or sparse tensors (indices included), ``None`` ignored."""
    import torch

    total = 0
    for t in tensors:
        if t is None:
            continue
        if t.layout == torch.strided:
            total += t.numel() * t.element_size()
        elif t.layout == torch.sparse_coo:
            total += nbytes(t._indices(), t._values())
        elif t.layout == torch.sparse_csr:
            total += nbytes(t.crow_indices(), t.col_indices(), t.values())
        elif t.layout == torch.sparse_csc:
            total += nbytes(t.ccol_indices(), t.row_indices(), t.values())
    return total


def available_bytes() -> float:
    """MemAvailable of this machine."""
    text = Path("/proc/meminfo").read_text()
    match = re.search(r"MemAvailable:\s+(\d+) kB", text)
    return float(match.group(1)) * 1024 if match else float("inf")


# --------------------------------------------------------------------- parent side
def _run_child(script: Path, case: Case, timeout: float, memory: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(script), "--child", json.dumps(case.params)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if memory:
        env.update(
            {_MEMORY_ENV: "1", "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        )
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return {"status": "ok", **json.loads(line[len(_MARK) :])}
    if proc.returncode in (-9, 137):
        return {"status": "killed (out of memory)"}
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    message = lines[-1] if lines else f"exit code {proc.returncode}"
    return {"status": "error: " + message[:160]}


def _measure_case(script: Path, case: Case, timeout: float) -> dict[str, Any]:
    """Timings from one child, memory from another; a failure in either is the status."""
    timing = _run_child(script, case, timeout, memory=False)
    if timing["status"] != "ok":
        return timing
    memory = _run_child(script, case, timeout, memory=True)
    if memory["status"] != "ok":
        return {**timing, "status": "memory run: " + memory["status"]}
    merged = dict(timing)
    for key, value in memory.items():
        if not (isinstance(value, float) and math.isnan(value)):
            if isinstance(merged.get(key), float) and math.isnan(merged[key]):
                merged[key] = value
            merged.setdefault(key, value)
    return merged


def _progress(cases: Sequence[Case]) -> Any:
    try:
        from tqdm import tqdm

        return tqdm(cases, desc="benchmark", unit="case", file=sys.stderr)
    except ImportError:
        return _PlainProgress(cases)


class _PlainProgress:
    def __init__(self, cases: Sequence[Case]) -> None:
        self.cases = cases

    def __iter__(self) -> Any:
        for i, case in enumerate(self.cases, 1):
            print(f"[{i}/{len(self.cases)}] {case.group} / {case.method}", file=sys.stderr)
            yield case

    def set_postfix_str(self, text: str) -> None:
        pass


def _fmt(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "B":
        for scale, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(value) >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "x":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


@dataclass
class Column:
    """A result column: ``key`` in the child's dict, a header, and a unit (s, B, x or '').

    As a ratio column, it compares a row's ``key`` with the reference row's ``against``
    (default: the same key), e.g. a forward+backward time against a peer's forward alone.
    """

    key: str
    header: str
    unit: str = ""
    against: str | None = None


def _ratios(
    rows: list[dict[str, Any]], reference: dict[str, str], ratio_of: Sequence[Column]
) -> None:
    """Add ``<key>_ratio``: reference / row for times, row / reference for memory."""
    by_group: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["method"] == reference.get(row["group"]) and row["status"] == "ok":
            by_group[row["group"]] = row
    for row in rows:
        ref = by_group.get(row["group"])
        for col in ratio_of:
            value, base = row.get(col.key), (ref or {}).get(col.against or col.key)
            ratio = None
            if (
                isinstance(value, (int, float))
                and isinstance(base, (int, float))
                and value > 0
                and base > 0
            ):
                # speed-up for times (bigger is better), share for memory (smaller is better)
                ratio = base / value if col.unit == "s" else value / base
            row[col.key + "_ratio"] = ratio


def run(
    name: str,
    cases: Sequence[Case],
    measure: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    columns: Sequence[Column],
    reference: dict[str, str],
    ratio_of: Sequence[Column] = (),
    argv: Sequence[str] | None = None,
    timeout: float = 900.0,
    memory_fraction: float = 0.7,
    title: str = "",
) -> list[dict[str, Any]]:
    """Run a benchmark script (parent) or one of its cases (child, with ``--child``)."""
    parser = argparse.ArgumentParser(description=title or name)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--only", help="run only groups containing this text")
    args, _ = parser.parse_known_args(argv)
    if args.child is not None:
        result = measure(json.loads(args.child))
        print(_MARK + json.dumps(result), flush=True)
        return [result]

    script = Path(sys.argv[0]).resolve()
    budget = memory_fraction * available_bytes()
    selected = [c for c in cases if not args.only or args.only in c.group]
    rows: list[dict[str, Any]] = []
    bar = _progress(selected)
    for case in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{case.group} / {case.method}")
        row: dict[str, Any] = {"group": case.group, "method": case.method, **case.extra}
        if case.needs_bytes is not None and case.needs_bytes > budget:
            row["status"] = (
                f"skipped: needs ~{_fmt(case.needs_bytes, 'B')} (budget {_fmt(budget, 'B')})"
            )
        else:
            row.update(_measure_case(script, case, timeout))
        if case.note:
            row["note"] = case.note
        rows.append(row)
    _ratios(rows, reference, ratio_of)
    _print_table(rows, columns, ratio_of, reference, title or name)
    if args.only:  # a partial run must not overwrite the full results
        name = f"{name}-only-{re.sub(r'[^A-Za-z0-9]+', '_', args.only)}"
    _write_csv(name, rows)
    _plot(name, rows, columns, title or name)
    return rows


def _print_table(
    rows: list[dict[str, Any]],
    columns: Sequence[Column],
    ratio_of: Sequence[Column],
    reference: dict[str, str],
    title: str,
) -> None:
    headers = ["problem", "method"] + [c.header for c in columns]
    headers += [
        f"{c.header} vs ref" + (f" {c.against.removesuffix('_s')}" if c.against else "")
        for c in ratio_of
    ] + ["status"]
    table = []
    for row in rows:
        cells = [row["group"], row["method"]]
        cells += [_fmt(row.get(c.key), c.unit) for c in columns]
        cells += [_fmt(row.get(c.key + "_ratio"), "x") for c in ratio_of]
        cells.append("" if row["status"] == "ok" else row["status"][:90])
        table.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(f"\n{title}\n" + line + "\n" + "-" * len(line))
    previous = None
    for cells in table:
        if previous is not None and cells[0] != previous:
            print()
        previous = cells[0]
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)))
    refs = sorted(set(reference.values()))
    print(
        f"\nratios: time = reference time / this time (above 1: faster than the reference); "
        f"memory = this / reference (below 1: leaner). Reference: {', '.join(refs)}."
    )


def _write_csv(name: str, rows: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(exist_ok=True)
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(RESULTS / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {RESULTS / (name + '.csv')}")


def _plot(name: str, rows: list[dict[str, Any]], columns: Sequence[Column], title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    # a column no row measured (a partial run's) gets no panel: a log axis needs a value
    plotted = [
        c
        for c in columns
        if c.unit in ("s", "B")
        and any(isinstance(r.get(c.key), (int, float)) and r[c.key] > 0 for r in rows)
    ]
    if not plotted:
        return
    groups = list(dict.fromkeys(r["group"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, len(plotted), figsize=(5.5 * len(plotted), 0.6 * len(groups) + 2.5))
    axes = [axes] if len(plotted) == 1 else list(axes)
    height = 0.8 / max(len(methods), 1)
    for ax, col in zip(axes, plotted, strict=True):
        for j, method in enumerate(methods):
            ys, xs = [], []
            for i, group in enumerate(groups):
                match = [r for r in rows if r["group"] == group and r["method"] == method]
                value = match[0].get(col.key) if match else None
                if isinstance(value, (int, float)) and value > 0:
                    ys.append(i + j * height)
                    xs.append(value * (1e3 if col.unit == "s" else 2**-20))
            ax.barh(ys, xs, height=height, label=method)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(groups))], groups, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(col.header + (" (ms)" if col.unit == "s" else " (MiB)"))
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    fig.savefig(PLOTS / f"{name}.png", dpi=110)
    plt.close(fig)
    print(f"wrote {PLOTS / (name + '.png')}")
