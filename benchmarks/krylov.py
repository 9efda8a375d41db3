"""Krylov solvers against SciPy on 3-D grids, warm and on the first call, and against the
memory-bandwidth floor.

float64, rtol 1e-8, on the CPU. Each case runs in one child process that times tsgu's
solver and SciPy's solver of the same name on the same matrix and right-hand side,
interleaved (first calls, then three rounds tsgu, SciPy, tsgu, SciPy, ...), so that the
ratio of the two is taken within one run on a machine whose load changes:
- CG and MINRES: the 7-point and the 27-point 3-D Laplacians (:func:`tsgu.core.poisson_3d`);
- BiCGSTAB and GMRES(20): a nonsymmetric convection-diffusion operator, the 7-point
  Laplacian plus a first-order upwind convection term of cell Péclet number 0.5 along each
  axis;
on grids of 32³, 40³, 63³ and 64³ (and 100³, 128³ with ``--large``; the machine is shared).

Same stopping test, same iterations: CG, BiCGSTAB and GMRES share SciPy's test at
rtol = 1e-8 and run the same iterations (both counts are reported). MINRES's stopping tests
differ between the two, so tsgu's MINRES is run to the true residual SciPy's MINRES
reached. GMRES(20) runs at most 10 restart cycles (200 inner iterations) in both: on
these grids it may not reach 1e-8 within them, and then both run exactly the same
iterations and the time per iteration is compared.

Columns: ``warm`` is the best of 3 calls after the first, ``first`` the first call in a
fresh process (after the imports and the matrix build, as in a script that solves once);
``vs SciPy`` is SciPy's time / tsgu's (above 1: tsgu is faster). ``floor share`` is the
time the bytes the iterations must move would take at the copy bandwidth measured in the
same child (a 128 MiB ``copy_``, read + write counted, best of 5), over the warm time. The
bytes of one iteration: the stored matrix once per product (values, column indices and row
pointers, as tsgu stores them) and the vector passes (one read or write of an ``n``-vector
each) that a fully fused implementation of the method still needs:
CG 11 (product 2; x, r and p updates 3 each, dots fused), MINRES 13, BiCGSTAB 20 with two
products, GMRES(m) 2j + 9 in inner step j (one Gram-Schmidt pass; m + 8 on average).
SciPy stores int32 indices (it downcasts), tsgu int64: tsgu's floor counts its own bytes.

Every timed call starts after a 0.3 s pause: the worker threads of the call before (SciPy's
OpenBLAS, torch's OpenMP) spin after their work, and without the pause they ran into the
next call's time (on 2 cores, tsgu's warm calls, each after a SciPy call, took up to 1.7x its
first call, which follows none).

Every row records the load average (``load1``) at its start: the machine is shared.

``--compare-to REF`` (a git commit) adds a row "tsgu REF" per problem: the Krylov solvers
of that commit (``tsgu/core/krylov`` only, on today's rest of tsgu.core), measured the
same way in their own child, beside "tsgu" (the working tree).

``--threads N`` sets torch's threads and every BLAS's and OpenMP's in the children
(SciPy's OpenBLAS included: its threads spin on a loaded machine); default: the libraries'
own.

    python benchmarks/krylov.py [--only cg] [--large] [--compare-to REF] [--threads N]
    python benchmarks/krylov.py --merge   # join the --only parts into results/krylov.csv
                                          # (rows no part measures again stay as they were)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _runner import Case, Column, measuring_memory, run

RTOL = 1e-8
GMRES_RESTART = 20
GMRES_CYCLES = 10
GRIDS = (32, 40, 63, 64)
LARGE_GRIDS = (100, 128)
PAUSE_S = 0.3  # before every timed call (see clock)
PASSES = {"cg": 11, "minres": 13, "bicgstab": 20}
PRODUCTS = {"cg": 1, "minres": 1, "bicgstab": 2, "gmres": 1}


def _matrix(kind: str, n: int) -> Any:
    import torch

    import tsgu.core as tc

    if kind == "lap7":
        return tc.poisson_3d(n, stencil=7)
    if kind == "lap27":
        return tc.poisson_3d(n, stencil=27)
    # convection-diffusion: -Δu + w·∇u, upwind, cell Péclet w h = 0.5 along each axis
    import scipy.sparse as sp

    peclet = 0.5
    one = sp.identity(n, format="csr")
    diag = [(2.0 + peclet) * one.diagonal(), -(1.0 + peclet) * one.diagonal()[1:]]
    T = sp.diags([diag[0], diag[1], -one.diagonal()[1:]], [0, -1, 1], format="csr")
    S = sp.kron(sp.kron(T, one), one) + sp.kron(sp.kron(one, T), one)
    S = (S + sp.kron(sp.kron(one, one), T)).tocsr()
    S.sort_indices()
    return torch.sparse_csr_tensor(
        torch.from_numpy(S.indptr.astype("int64")),
        torch.from_numpy(S.indices.astype("int64")),
        torch.from_numpy(S.data),
        S.shape,
    )


def _scipy_matrix(A: Any) -> Any:
    import scipy.sparse as sp

    return sp.csr_matrix(
        (A.values().numpy(), A.col_indices().numpy(), A.crow_indices().numpy()), shape=A.shape
    )


def _copy_bandwidth() -> float:
    """Bytes per second of a 128 MiB ``copy_`` (read + write), best of 5."""
    import torch

    src = torch.ones(2**24, dtype=torch.float64)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * src.element_size() / best


def _passes(solver: str, iterations: int) -> float:
    """Vector passes of ``iterations`` iterations (GMRES: its inner steps j = 0..m-1)."""
    if solver != "gmres":
        return PASSES[solver] * iterations
    return sum(2 * (i % GMRES_RESTART) + 9 for i in range(iterations))


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    if measuring_memory():  # this benchmark times only
        return {}
    load1 = os.getloadavg()[0]
    import warnings

    import numpy as np
    import scipy.sparse.linalg as spla
    import torch

    import tsgu.core as tc

    warnings.simplefilter("ignore")
    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    solver, n = spec["solver"], spec["grid"]
    A = _matrix(spec["matrix"], n)
    S = _scipy_matrix(A)
    rows = A.shape[0]
    b_np = np.random.default_rng(1).standard_normal(rows)
    b = torch.from_numpy(b_np)
    count = [0]

    def callback(*_: Any) -> None:
        count[0] += 1

    sp_kwargs: dict[str, Any] = {"rtol": RTOL, "callback": callback}
    ts_kwargs: dict[str, Any] = {"rtol": RTOL, "return_info": True}
    if solver == "gmres":
        sp_kwargs.update(restart=GMRES_RESTART, maxiter=GMRES_CYCLES, callback_type="pr_norm")
        ts_kwargs.update(restart=GMRES_RESTART, maxiter=GMRES_CYCLES)
    else:
        sp_kwargs["maxiter"] = ts_kwargs["maxiter"] = 100_000
    sp_fn, ts_fn = getattr(spla, solver), getattr(tc, solver)
    if spec.get("ref_dir"):  # another commit's solvers, as the package tsgu.core.krylov_ref
        import importlib

        tc.__path__.append(spec["ref_dir"])
        ts_fn = getattr(importlib.import_module("tsgu.core.krylov_ref"), solver)

    def scipy_call() -> Any:
        count[0] = 0
        return sp_fn(S, b_np, **sp_kwargs)[0]

    def tsgu_call() -> Any:
        return ts_fn(A, b, **ts_kwargs)

    def clock(fn: Any) -> tuple[float, Any]:
        # idle first: the worker threads of the call before (SciPy's OpenBLAS, torch's
        # OpenMP) spin for a while after their work and would run into this call's time
        time.sleep(PAUSE_S)
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    out: dict[str, Any] = {"load1": round(load1, 2), "rows": rows, "nnz": int(A.values().numel())}
    if solver == "minres":
        # SciPy's stopping test differs: run tsgu's MINRES to the true residual SciPy reached.
        out["scipy_first_s"], x = clock(scipy_call)
        target = float(np.linalg.norm(S @ x - b_np) / np.linalg.norm(b_np))
        ts_kwargs["rtol"] = target
        out["tsgu_first_s"], (x_t, info) = clock(tsgu_call)
    else:
        out["tsgu_first_s"], (x_t, info) = clock(tsgu_call)
        out["scipy_first_s"], x = clock(scipy_call)
    out["scipy_iterations"] = count[0]
    out["tsgu_iterations"] = info.iterations
    warm_t, warm_s = [], []
    for _ in range(3):  # interleaved: the load changes for both alike
        warm_t.append(clock(tsgu_call)[0])
        warm_s.append(clock(scipy_call)[0])
    out["tsgu_warm_s"], out["scipy_warm_s"] = min(warm_t), min(warm_s)
    out["warm_vs_scipy"] = out["scipy_warm_s"] / out["tsgu_warm_s"]
    out["first_vs_scipy"] = out["scipy_first_s"] / out["tsgu_first_s"]
    res = float(np.linalg.norm(S @ x_t.numpy() - b_np) / np.linalg.norm(b_np))
    out["tsgu_residual"] = res
    out["scipy_residual"] = float(np.linalg.norm(S @ x - b_np) / np.linalg.norm(b_np))
    bandwidth = _copy_bandwidth()
    its = info.iterations
    # as tsgu's kernel stores it: int32 indices where they fit (SciPy does the same)
    index_bytes = 4 if max(rows, A.values().numel()) < 2**31 else 8
    matrix_bytes = A.values().numel() * (8 + index_bytes) + (rows + 1) * index_bytes
    moved = its * PRODUCTS[solver] * matrix_bytes + _passes(solver, its) * rows * 8
    out["copy_GBps"] = bandwidth / 1e9
    out["floor_s"] = moved / bandwidth
    out["floor_share"] = out["floor_s"] / out["tsgu_warm_s"]
    out["scipy_floor_share"] = (
        out["floor_s"] * (out["scipy_iterations"] / its) / out["scipy_warm_s"] if its else None
    )
    out["threads"] = torch.get_num_threads()
    return out


def cases(
    large: bool, ref: str | None, ref_dir: str | None, threads: int | None = None
) -> list[Case]:
    plan = [
        ("cg", "lap7"),
        ("cg", "lap27"),
        ("minres", "lap7"),
        ("minres", "lap27"),
        ("bicgstab", "convdiff"),
        ("gmres", "convdiff"),
    ]
    grids = GRIDS + (LARGE_GRIDS if large else ())
    out = []
    for n in grids:
        for solver, matrix in plan:
            nnz_per_row = 27 if matrix == "lap27" else 7
            needs = n**3 * (nnz_per_row * 16 * 2 + 8 * 8 * (GMRES_RESTART + 10))
            spec = {"solver": solver, "matrix": matrix, "grid": n, "threads": threads}
            group = f"{solver} {matrix} {n}³"
            if ref is not None:
                out.append(
                    Case(group, f"tsgu {ref}", {**spec, "ref_dir": ref_dir}, needs_bytes=needs)
                )
            out.append(Case(group, "tsgu", spec, needs_bytes=needs))
    return out


def _extract_ref(ref: str) -> str:
    """``tsgu/core/krylov`` of commit ``ref`` as a package ``krylov_ref`` in a temp folder."""
    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="tsgu-krylov-ref-"))
    path = "packages/tsgu-core/src/tsgu/core/krylov"
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", ref, path], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    (tmp / path).rename(tmp / "krylov_ref")
    shutil.rmtree(tmp / "packages")
    return str(tmp)


def merge(name: str = "krylov") -> None:
    """Join the partial results of ``--only`` runs (``results/<name>-only-*.csv``, in the
    order they ran) into ``results/<name>.csv`` and plot the ratios to SciPy.

    A row of ``results/<name>.csv`` that no part measures again (same group and method)
    stays where it was; a part's rows replace those of their group and method, so
    re-running a few problems updates only their rows."""
    import csv

    from _runner import PLOTS, RESULTS

    parts = sorted(RESULTS.glob(f"{name}-only-*.csv"), key=lambda p: p.stat().st_mtime)
    fresh: list[dict[str, Any]] = []
    for part in parts:
        with open(part, newline="") as fh:
            fresh += list(csv.DictReader(fh))
    if not fresh:
        print("nothing to merge")
        return
    earlier: list[dict[str, Any]] = []
    if (RESULTS / f"{name}.csv").exists():
        with open(RESULTS / f"{name}.csv", newline="") as fh:
            earlier = list(csv.DictReader(fh))
    new = {(r["group"], r["method"]): r for r in fresh}
    rows = [new.pop((r["group"], r["method"]), r) for r in earlier] + list(new.values())
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(RESULTS / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    for part in parts:
        part.unlink()
        (PLOTS / (part.stem + ".png")).unlink(missing_ok=True)
    print(f"wrote {RESULTS / (name + '.csv')} from {len(parts)} parts")
    _plot_ratios(name, rows)


def _plot_ratios(name: str, rows: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    from _runner import PLOTS

    def value(row: dict[str, Any], key: str) -> float:
        try:
            return float(row.get(key) or "nan")
        except ValueError:
            return float("nan")

    groups = list(dict.fromkeys(r["group"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    panels = [
        ("warm_vs_scipy", "SciPy time / tsgu time, warm (best of 3)"),
        ("first_vs_scipy", "SciPy time / tsgu time, first call"),
        ("floor_share", "share of the bandwidth floor (warm)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.45 * len(groups) + 2.5), sharey=True)
    height = 0.8 / max(len(methods), 1)
    for ax, (key, label) in zip(axes, panels, strict=True):
        for j, method in enumerate(methods):
            ys, xs = [], []
            for i, group in enumerate(groups):
                match = [r for r in rows if r["group"] == group and r["method"] == method]
                if match and value(match[0], key) == value(match[0], key):
                    ys.append(i + j * height)
                    xs.append(value(match[0], key))
            ax.barh(ys, xs, height=height, label=method)
        if key != "floor_share":
            ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(groups))], groups, fontsize=8)
        ax.set_xlabel(label, fontsize=9)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8, loc="best")
    loads = [value(r, "load1") for r in rows]
    fig.suptitle(
        f"Krylov solvers vs SciPy, float64, rtol {RTOL}, CPU; load average "
        f"{min(loads):.1f}-{max(loads):.1f} (shared machine)",
        fontsize=10,
    )
    fig.tight_layout()
    PLOTS.mkdir(exist_ok=True)
    fig.savefig(PLOTS / f"{name}.png", dpi=110)
    plt.close(fig)
    print(f"wrote {PLOTS / (name + '.png')}")


def main() -> None:
    if "--merge" in sys.argv:
        merge("krylov-large" if "--large" in sys.argv else "krylov")
        return
    large = "--large" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--large"]
    ref = ref_dir = None
    if "--compare-to" in argv:
        i = argv.index("--compare-to")
        ref = argv[i + 1]
        del argv[i : i + 2]
        ref_dir = _extract_ref(ref)
    threads = None
    if "--threads" in argv:
        i = argv.index("--threads")
        threads = int(argv[i + 1])
        del argv[i : i + 2]
    if threads is not None:  # every child's BLAS and OpenMP too (SciPy's OpenBLAS included)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    selected = cases(large, ref, ref_dir, threads)
    warm = Column("tsgu_warm_s", "tsgu warm", "s")
    first = Column("tsgu_first_s", "tsgu first", "s")
    try:
        run(
            "krylov-large" if large else "krylov",
            selected,
            measure,
            columns=[
                Column("tsgu_iterations", "its"),
                Column("scipy_iterations", "scipy its"),
                warm,
                Column("scipy_warm_s", "scipy warm", "s"),
                Column("warm_vs_scipy", "warm vs SciPy", "x"),
                first,
                Column("scipy_first_s", "scipy first", "s"),
                Column("first_vs_scipy", "first vs SciPy", "x"),
                Column("floor_share", "floor share"),
                Column("scipy_floor_share", "scipy floor share"),
                Column("copy_GBps", "copy GB/s"),
                Column("load1", "load"),
            ],
            # with --compare-to: the speed-up over that commit (children apart: less exact
            # than the ratios to SciPy, which are taken within one child)
            reference={c.group: f"tsgu {ref}" for c in selected} if ref else {},
            ratio_of=[warm, first] if ref else [],
            argv=argv,
            timeout=1800,
            title=f"Krylov solvers vs SciPy, float64, rtol {RTOL}, CPU (shared machine: see load)",
        )
    finally:
        if ref_dir is not None:
            shutil.rmtree(ref_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
