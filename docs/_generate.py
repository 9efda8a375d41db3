"""Write the parts of the site that come from the tree: benchmark numbers, plots, packages.

``conf.py`` calls :func:`main` at the start of every build; ``python docs/_generate.py``
does the same by hand. Everything goes to ``docs/_generated/`` (not committed), as ``.inc``
files that the pages include (``.inc`` is not a source suffix, so Sphinx does not read them
as pages of their own):

* ``headline.inc``: the landing page's table, from ``benchmarks/results/sparse_mm.csv``
  (the full run) or else ``sparse_mm_demo.csv`` (``nox -s demo``); a note when neither exists;
* ``constructors.inc``: the training-step rows of ``benchmarks/results/reductions.csv``;
* ``packages.inc``: one row per ``packages/*/pyproject.toml``, with its install command;
* ``benchmarks.inc``: one section per benchmark with its plot (copied from
  ``benchmarks/plots/``) or a note that it has not been run, and its CSV table.

No number is written by hand: every figure here is read from a committed CSV.
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
RESULTS = ROOT / "benchmarks" / "results"
PLOTS = ROOT / "benchmarks" / "plots"
OUT = DOCS / "_generated"


@dataclass(frozen=True)
class Benchmark:
    """A benchmark output name (results/<name>.csv, plots/<name>.png) and what it measures."""

    name: str
    title: str
    command: str
    what: str


BENCHMARKS = [
    Benchmark(
        "sparse_mm",
        "sparse_mm",
        "python benchmarks/sparse_mm.py",
        "Forward, backward and peak memory of ``tsgu.core.sparse_mm`` against "
        "``torch.sparse.mm``, ``A @ B``, dense ``torch.mm`` (and JAX BCOO where installed) on "
        "a random n = 20,000 matrix, 2D and 3D Poisson matrices and a batch of four, k = 16, "
        "float32.",
    ),
    Benchmark(
        "sparse_mm_demo",
        "sparse_mm, the demonstration",
        "nox -s demo",
        "The same measurement on the random n = 20,000 matrix only, tsgu against "
        "``torch.sparse.mm``: what ``nox -s demo`` prints.",
    ),
    Benchmark(
        "compile",
        "torch.compile: a GCN training step",
        "python benchmarks/compile.py",
        "A two-layer GCN training step (forward, backward, Adam) on a 100,000-node random "
        "graph (degree 10, self loops, COO and CSR), the adjacency a ``SparseParameter``: eager "
        "against ``torch.compile(model, fullgraph=True)``; the step time, and the one-off cost "
        "of the first step (for the compiled model, its compilation). float32, 2 threads, "
        "measured on a shared machine (load average about 6.5).",
    ),
    Benchmark(
        "triangular_solve",
        "sparse_triangular_solve",
        "python benchmarks/triangular_solve.py",
        "Forward and forward+backward of ``tsgu.core.sparse_triangular_solve`` against "
        "SciPy's ``spsolve_triangular`` and ``torch.triangular_solve`` (forward only) on the "
        "lower triangles of 2D and 3D Poisson matrices and a random matrix, 16 right-hand "
        "sides, float64.",
    ),
    Benchmark(
        "generic_solve",
        "Krylov solvers and sparse_generic_solve",
        "python benchmarks/generic_solve.py",
        "Time, iterations, final residual and memory of tsgu's CG, MINRES, BiCGSTAB, GMRES and "
        "LSMR, and of a differentiable ``sparse_generic_solve``, against SciPy's solver of the "
        "same name stopped at the same true residual, float64.",
    ),
    Benchmark(
        "indexed_mm",
        "segment_mm and gather_mm",
        "python benchmarks/indexed_mm.py",
        "Forward, backward and memory of ``tsgu.graph.segment_mm`` and ``gather_mm`` against "
        "the per-type Python loop, a padded ``torch.bmm`` and torchsparsegradutils 0.2 "
        "(where installed), N = 100,000 rows, 3 to 1,024 relation types of equal size.",
    ),
    Benchmark(
        "indexed_mm-skew",
        "segment_mm and gather_mm, skewed relation sizes",
        "python benchmarks/indexed_mm.py --skew",
        "The same with relation sizes drawn from a Zipf law, as in real heterogeneous graphs.",
    ),
    Benchmark(
        "pairwise_encoder",
        "PairwiseEncoder",
        "python benchmarks/pairwise_encoder.py",
        "Build, forward, backward and memory of ``tsgu.encoders.PairwiseEncoder`` against "
        "torchsparsegradutils 0.2's encoder (where installed) on a 4 x 64³ volume, radius 1 "
        "and 2, COO and CSR.",
    ),
    Benchmark(
        "reductions",
        "Reductions and trainable values",
        "python benchmarks/reductions.py",
        "Log-sum-exp and softmax over the stored entries against torch and "
        "torchsparsegradutils 0.2.5, and a training step through tsgu's CSR constructor "
        "against torch's, n = 200,000 with 4M nnz.",
    ),
    Benchmark(
        "factor",
        "Factorizations you keep: a Newton loop, and logdet with its gradient",
        "python benchmarks/factor.py",
        "``tsgu.factor`` refactoring with new values at every step of a 20-step Newton loop, "
        "against SciPy ``splu`` at every step (best ordering), tsgu-cupy's direct solve and "
        "JAX's ``spsolve`` on the CPU (2-D Laplacian 1000², 3-D 30³, convection-diffusion "
        "512², a circuit-like matrix); logdet and its gradient by selected inversion at "
        "n = 10⁶ against a Hutchinson estimate, and against the dense gradient at n = 1,936.",
    ),
    Benchmark(
        "factor_backends",
        "SuiteSparse bindings from wheels",
        "python benchmarks/factor_backends.py",
        "Why tsgu-factor builds on kvxopt: analysis, numeric factorization, refactorization "
        "with new values and a solve for the SuiteSparse bindings that install from wheels "
        "(kvxopt's CHOLMOD, UMFPACK, KLU; sksparse-minimal, cholespy, homapy, pyklu), against "
        "SciPy's ``splu``.",
    ),
    Benchmark(
        "krylov",
        "Krylov solvers against SciPy",
        "python benchmarks/krylov.py",
        "CG, MINRES, BiCGSTAB and GMRES(20) of ``tsgu.core`` against ``scipy.sparse.linalg`` "
        "(same rtol 1e-8, same iteration counts) on the 7- and 27-point 3-D Laplacians and a "
        "convection-diffusion operator, 32³ to 64³, warm and first call, float64, with each "
        "solver's share of the memory-bandwidth floor. torch runs at its default 2 threads, "
        "SciPy's sparse product at one; details in ``benchmarks/results/krylov.md``.",
    ),
    Benchmark(
        "krylov-large",
        "Krylov solvers against SciPy, 100³ and 128³",
        "python benchmarks/krylov.py --large",
        "The same comparison at 10⁶ and 2.1 x 10⁶ rows (``--large``).",
    ),
    Benchmark(
        "sparse_sparse",
        "Sparse @ sparse, sparse + sparse, triangular solve",
        "python benchmarks/sparse_sparse.py",
        "``sparse_mm`` with a sparse B, ``sparse_add`` and ``sparse_triangular_solve``: the "
        "rows of the numml paper's Table 2 (1-D Laplacian, N = 32,768, one thread; the "
        "paper's figures are another machine's) and A @ A and PᵀAP on the 27-point 3-D Poisson "
        "50³ against SciPy and ``torch.sparse.mm``; first call, later calls, backward, peak "
        "memory. Details in ``benchmarks/results/sparse_sparse.md``.",
    ),
    Benchmark(
        "gcn_epoch",
        "A GCN training epoch, CSR against COO",
        "python benchmarks/gcn_epoch.py",
        "A two-layer GCN epoch (64 features, Adam, float32, 2 threads) on a random graph of "
        "10⁵ nodes and 2.1M edges: ``tsgu.core.sparse_mm`` with CSR and COO against "
        "``torch.sparse.mm`` COO. Details in ``benchmarks/results/gcn_epoch.md``.",
    ),
]

TIME_COLUMNS = {
    "build_s": "build",
    "fwd_s": "forward",
    "bwd_s": "backward",
    "total_s": "fwd+bwd",
    "fwd_bwd_s": "fwd+bwd",
    "time_s": "time",
    "analysis_s": "analysis",
    "numeric_s": "numeric",
    "first_s": "first factorization",
    "again_s": "new values",
    "step_s": "per step",
    "solve_s": "solve",
}
OTHER_COLUMNS = {
    "iterations": "iterations",
    "residual": "rel. residual",
    "peak_B": "peak memory",
    "analysis_share": "analysis share",
    "rel_error": "gradient error",
}


def read_csv(name: str) -> list[dict[str, str]] | None:
    """Rows of ``benchmarks/results/<name>.csv``, or None when it is not there."""
    path = RESULTS / f"{name}.csv"
    if not path.exists():
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_bytes(size: float | None) -> str:
    if size is None:
        return ""
    if size >= 2**30:
        return f"{size / 2**30:.3g} GiB"
    return f"{size / 2**20:.3g} MiB"


def fmt_speed(ratio: float | None) -> str:
    """A time ratio (reference / this) as "5.4x faster" or "1.7x slower"."""
    if ratio is None or ratio == 1.0 or ratio <= 0:
        return ""
    return f"{ratio:.2g}x faster" if ratio > 1 else f"{1 / ratio:.2g}x slower"


def fmt_share(ratio: float | None) -> str:
    """A memory ratio (this / reference) as a percentage of the reference."""
    if ratio is None or ratio == 1.0:
        return ""
    return f"{100 * ratio:.2g}%" if ratio < 1 else f"{ratio:.2g}x"


def _cell(value: str, note: str) -> str:
    return f"{value} ({note})" if value and note else value


def _status(row: dict[str, str]) -> str:
    status = row.get("status", "")
    return "" if status == "ok" else status


def list_table(header: list[str], rows: list[list[str]], widths: str | None = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [header, *rows]:
        lines.append("   * - " + (_escape(row[0]) or " "))
        lines += ["     - " + (_escape(cell) or " ") for cell in row[1:]]
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    """Backslash-escape inline markup characters, except a whole cell in bold."""
    bold = re.fullmatch(r"\*\*([^*]+)\*\*", text)
    if bold:
        return f"**{_escape(bold.group(1))}**"
    return re.sub(r"([*|`_\\])", r"\\\1", text)


def headline() -> str:
    """tsgu against torch.sparse.mm, from the full sparse_mm run or the demonstration."""
    for name in ("sparse_mm", "sparse_mm_demo"):
        rows = read_csv(name)
        if rows:
            break
    else:
        return (
            ".. note::\n\n"
            "   No committed measurement yet: this table is filled from\n"
            "   ``benchmarks/results/sparse_mm.csv`` (``python benchmarks/sparse_mm.py``) or\n"
            "   ``benchmarks/results/sparse_mm_demo.csv`` (``nox -s demo``).\n"
        )
    keep = {"tsgu", "torch.sparse.mm", "loop of torch.sparse.mm"}
    table = []
    for row in rows:
        if row["method"] not in keep:
            continue
        tsgu = row["method"] == "tsgu"
        method = "**tsgu.core.sparse_mm**" if tsgu else row["method"]
        cells = [row["group"], method]
        if row.get("status") != "ok":
            cells += [_status(row), "", ""]
        else:
            cells += [
                _cell(
                    fmt_time(_number(row.get("fwd_s"))),
                    fmt_speed(_number(row.get("fwd_s_ratio"))) if tsgu else "",
                ),
                _cell(
                    fmt_time(_number(row.get("bwd_s"))),
                    fmt_speed(_number(row.get("bwd_s_ratio"))) if tsgu else "",
                ),
                _cell(
                    fmt_bytes(_number(row.get("peak_B"))),
                    fmt_share(_number(row.get("peak_B_ratio"))) if tsgu else "",
                ),
            ]
        table.append(cells)
    text = list_table(["problem", "method", "forward", "backward", "peak memory"], table)
    return (
        f"From ``benchmarks/results/{name}.csv`` (k = 16 dense columns, float32, CPU; "
        "peak memory: its rise during forward and backward; ratios against "
        "``torch.sparse.mm``):\n\n" + text
    )


def constructors() -> str:
    """The training step through tsgu's CSR constructor against torch's."""
    rows = read_csv("reductions")
    rows = [r for r in rows or [] if r["group"].startswith("train step")]
    if not rows:
        return (
            ".. note::\n\n"
            "   The measured comparison appears here once\n"
            "   ``benchmarks/results/reductions.csv`` is committed\n"
            "   (``python benchmarks/reductions.py``).\n"
        )
    constructor = {"tsgu": "tsgu.core.sparse_csr_tensor"}
    constructor["tsgu on torch.sparse_csr_tensor"] = "torch.sparse_csr_tensor"
    table = []
    for row in rows:
        ok = row.get("status") == "ok"
        table.append(
            [
                row["group"].removeprefix("train step ").removeprefix("CSR sparse_mm "),
                constructor.get(row["method"], row["method"]),
                fmt_time(_number(row.get("fwd_bwd_s"))) if ok else _status(row),
                fmt_bytes(_number(row.get("peak_B"))) if ok else "",
            ]
        )
    return (
        "One training step, values → CSR matrix → ``tsgu.core.sparse_mm`` → loss → backward, "
        "with the matrix built by each constructor, from "
        "``benchmarks/results/reductions.csv``:\n\n"
        + list_table(["problem", "constructor", "forward + backward", "peak memory"], table)
    )


def packages() -> str:
    """Every distribution under packages/: what it holds and how to install it."""
    rows = []
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        meta = tomllib.loads(pyproject.read_text())["project"]
        name = meta["name"]
        extras = [e for e in meta.get("optional-dependencies", {}) if e != "test"]
        install = f"``pip install {name}``"
        if extras:
            install += "; extras: " + ", ".join(f"``pip install '{name}[{e}]'``" for e in extras)
        rows.append((name, meta.get("description", ""), install))
    order = {"tsgu-core": 0, "tsgu": 2, "torchsparsegradutils": 3}
    rows.sort(key=lambda r: (order.get(r[0], 1), r[0]))
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 18 50 32", ""]
    lines += ["   * - distribution", "     - what it holds", "     - install"]
    for name, description, install in rows:
        lines += [f"   * - ``{name}``", f"     - {description}", f"     - {install}"]
    return "\n".join(lines) + "\n"


def _results_table(rows: list[dict[str, str]]) -> str:
    present = [k for k in [*TIME_COLUMNS, *OTHER_COLUMNS] if any(k in r for r in rows)]
    header = ["problem", "method", *[{**TIME_COLUMNS, **OTHER_COLUMNS}[k] for k in present]]
    table = []
    for row in rows:
        cells = [row["group"], row["method"]]
        if row.get("status") != "ok":
            cells.append(_status(row))
            cells += [""] * (len(present) - 1)
        else:
            for key in present:
                value = _number(row.get(key))
                if key in TIME_COLUMNS:
                    cells.append(fmt_time(value))
                elif key == "peak_B":
                    cells.append(fmt_bytes(value))
                else:
                    cells.append(f"{value:.3g}" if value is not None else "")
        table.append(cells[: len(header)])
    return list_table(header, table)


def benchmarks(plot_dir: Path) -> str:
    """One section per benchmark: plot (or a note), what it measures, the numbers."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    known = set()
    for bench in BENCHMARKS:
        known.add(bench.name)
        parts.append(_section(bench.title, bench.what, bench.name, bench.command, plot_dir))
    others = sorted(
        p.stem
        for p in PLOTS.glob("*.png")
        if p.stem not in known and "-only-" not in p.stem  # --only runs are partial
    )
    for stem in others:
        parts.append(_section(stem, "", stem, "", plot_dir))
    return "\n".join(parts)


def _section(title: str, what: str, name: str, command: str, plot_dir: Path) -> str:
    text = f"{title}\n{'-' * len(title)}\n\n"
    if what:
        text += what + "\n\n"
    plot = PLOTS / f"{name}.png"
    if plot.exists():
        shutil.copyfile(plot, plot_dir / plot.name)
        text += f".. image:: /_generated/plots/{plot.name}\n   :alt: {name} benchmark plot\n\n"
    else:
        text += (
            ".. note::\n\n"
            f"   Not measured yet: ``{command}`` (or ``nox -s bench``) writes\n"
            f"   ``benchmarks/plots/{name}.png``.\n\n"
        )
    rows = read_csv(name)
    if rows:
        text += f"The numbers, from ``benchmarks/results/{name}.csv``:\n\n"
        text += _results_table(rows) + "\n"
    return text


def main() -> None:
    """Regenerate every ``docs/_generated/*.inc`` file and the copied plots."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    (OUT / "headline.inc").write_text(headline())
    (OUT / "constructors.inc").write_text(constructors())
    (OUT / "packages.inc").write_text(packages())
    (OUT / "benchmarks.inc").write_text(benchmarks(OUT / "plots"))


if __name__ == "__main__":
    main()
