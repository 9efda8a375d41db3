"""tsgu.distributed on 1, 2 and 4 gloo processes: the 3-D 7-point Poisson matrix.

For each world size the script starts that many processes on this machine (as torchrun
would, through tsgu.distributed.testing.run_workers); every rank builds only its own rows
of the ``m³ x m³`` matrix and measures, per iteration:

* ``matmul``: ``A @ x`` forward, and forward + backward (gradients for x and A's values);
* ``cg``: a differentiable :func:`tsgu.distributed.solve` with CG and Jacobi, forward +
  backward, run for a fixed number of iterations each way (the time per CG iteration is
  what is compared; the stopping point is not);

and the halo bytes each rank sends per exchange (one exchange per product, one per CG
iteration; the backward's reverse exchange moves the same bytes back). The slowest rank's
time is reported. The last table puts the same bytes on paper for 8 GPUs with NCCL:
assumed link bandwidths and latencies, no measured GPU speed.

    python benchmarks/distributed.py [--m 100] [--iters 20] [--worlds 1 2 4]

Writes ``benchmarks/results/distributed.csv`` and prints markdown tables. The machine's
load average is printed and recorded: the processes share its cores with whatever else runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

# On paper only (no measurement): NCCL point-to-point and all_reduce on 8 GPUs.
# NVLink 4 through NVSwitch (one DGX/HGX H100 node): 450 GB/s per GPU per direction (peak);
# NCCL reaches a large fraction of it for large messages. Between nodes: 400 Gb/s
# InfiniBand NDR per GPU = 50 GB/s. Small-message latency of one NCCL call: a few to a few
# tens of microseconds; we assume 10 µs within a node and 20 µs across nodes.
LINKS = [
    ("NVLink4/NVSwitch, 1 node", 450e9, 10e-6),
    ("InfiniBand NDR 400 Gb/s, 8 nodes", 50e9, 20e-6),
]


def seven_point_rows(m: int, start: int, stop: int):  # type: ignore[no-untyped-def]
    """Rows start:stop of the m³ 7-point Poisson matrix (6 on the diagonal, -1 off it), CSR
    with global columns, built without the whole matrix."""
    import torch

    rows = torch.arange(start, stop, dtype=torch.int64)
    i, j, k = rows % m, (rows // m) % m, rows // (m * m)
    cols = [rows]
    vals = [torch.full_like(rows, 6, dtype=torch.float64)]
    for step, coord in ((1, i), (m, j), (m * m, k)):
        for sign, ok in ((-1, coord > 0), (1, coord < m - 1)):
            c = torch.where(ok, rows + sign * step, -1)
            cols.append(c)
            vals.append(torch.where(ok, -1.0, 0.0).to(torch.float64))
    C = torch.stack(cols, 1)
    V = torch.stack(vals, 1)
    keep = C >= 0
    C = torch.where(keep, C, torch.iinfo(torch.int64).max)
    order = C.argsort(dim=1)
    C, V, keep = C.gather(1, order), V.gather(1, order), keep.gather(1, order)
    counts = keep.sum(1)
    crow = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    n = m**3
    return torch.sparse_csr_tensor(crow, C[keep], V[keep], (stop - start, n))


def halo_on_paper(m: int, world: int) -> list[int]:
    """Rows each rank receives per exchange for contiguous row blocks (exact when every
    block holds at least one plane of m² rows): the plane below and the plane above."""
    n, plane = m**3, m * m
    sizes = [n // world + (r < n % world) for r in range(world)]
    out, start = [], 0
    for s in sizes:
        stop = start + s
        out.append(min(plane, start) + min(plane, n - stop))
        start = stop
    return out


def worker(out_dir: str, m: int, iters: int) -> None:
    import torch
    import torch.distributed as dist

    from tsgu.distributed import DistributedSparseMatrix, RowPartition, solve

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    part = RowPartition.even(m**3, world)
    s = part.rows(rank)
    t0 = time.perf_counter()
    A = DistributedSparseMatrix.from_local_rows(seven_point_rows(m, s.start, s.stop), part)
    values = A.values.detach().clone().requires_grad_()
    A = A.with_values(values)
    build = time.perf_counter() - t0
    x = torch.ones(A.n_local, dtype=torch.float64)

    def timed(f, repeat):  # type: ignore[no-untyped-def]
        f()  # warm-up
        dist.barrier()
        t = time.perf_counter()
        for _ in range(repeat):
            f()
        dist.barrier()
        return (time.perf_counter() - t) / repeat

    def forward():  # type: ignore[no-untyped-def]
        with torch.no_grad():
            A @ x

    xg = x.clone().requires_grad_()

    def forward_backward():  # type: ignore[no-untyped-def]
        values.grad = xg.grad = None
        (A @ xg).sum().backward()

    def cg_forward_backward():  # type: ignore[no-untyped-def]
        values.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a fixed number of iterations, not convergence
            y = solve(A, x, "cg", M="jacobi", rtol=1e-30, maxiter=iters)
            y.sum().backward()

    matmul_f = timed(forward, 10)
    matmul_fb = timed(forward_backward, 5)
    # per CG iteration: forward and backward solves each run `iters` iterations, plus one
    # product each for the true residual
    cg_fb = timed(cg_forward_backward, 1) / (2 * (iters + 1))
    result = {
        "rank": rank,
        "world": world,
        "rows": A.n_local,
        "nnz": int(values.numel()),
        "build_s": build,
        "matmul_forward_s": matmul_f,
        "matmul_forward_backward_s": matmul_fb,
        "cg_iteration_s": cg_fb,
        "halo_rows_received": A.plan.halo_rows_received,
        **{f"halo_{k}_bytes": v for k, v in A.halo_bytes(1).items()},
    }
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=100, help="grid side: m³ rows (default 100)")
    parser.add_argument("--iters", type=int, default=20, help="CG iterations each way")
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        out_dir, m, iters = options.worker
        worker(out_dir, int(m), int(iters))
        return

    from tsgu.distributed.testing import run_workers

    load_before = os.getloadavg()
    rows = []
    for world in options.worlds:
        with tempfile.TemporaryDirectory() as out:
            args = ["--worker", out, str(options.m), str(options.iters)]
            run_workers(Path(__file__).resolve(), world, args=args, timeout=1800)
            ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world)]
        slowest = {k: max(r[k] for r in ranks) for k in ranks[0] if k.endswith("_s")}
        rows.append(
            {
                "m": options.m,
                "n": options.m**3,
                "world": world,
                "nnz": sum(r["nnz"] for r in ranks),
                **{k: f"{v:.4g}" for k, v in slowest.items()},
                "halo_bytes_sent_max": max(r["halo_sent_bytes"] for r in ranks),
                "halo_bytes_received_max": max(r["halo_received_bytes"] for r in ranks),
                "halo_rows_by_rank": " ".join(str(r["halo_rows_received"]) for r in ranks),
                "on_paper_rows_by_rank": " ".join(map(str, halo_on_paper(options.m, world))),
            }
        )
        print(f"world {world} done", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    for row in rows:
        row["loadavg_1min_before_after"] = f"{load_before[0]:.2f} {load_after[0]:.2f}"
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "distributed.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    base = rows[0]
    print(
        f"\n3-D 7-point Poisson, {options.m}³ = {options.m**3:,} rows, float64, gloo on this "
        f"machine ({os.cpu_count()} cores), load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after\n"
    )
    print(
        "| processes | matmul fwd (ms) | matmul fwd+bwd (ms) | CG fwd+bwd per iteration (ms) "
        "| halo bytes sent / received per rank per exchange (max) |"
    )
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['world']} | {1e3 * float(row['matmul_forward_s']):.1f} "
            f"| {1e3 * float(row['matmul_forward_backward_s']):.1f} "
            f"| {1e3 * float(row['cg_iteration_s']):.1f} "
            f"| {row['halo_bytes_sent_max']:,} / {row['halo_bytes_received_max']:,} |"
        )
    del base

    halo8 = max(halo_on_paper(options.m, 8)) * 8  # bytes, float64, one vector
    print(
        f"\nOn paper, 8 GPUs, contiguous row blocks of {options.m}³: at most "
        f"{halo8:,} bytes received per rank per exchange (two planes of float64)."
    )
    print(
        "Per CG iteration: one exchange (forward) and 2 all_reduce of 8-16 bytes; the "
        "backward solve does the same again.\n"
    )
    print(
        "| link (assumed) | exchange: bytes/bandwidth | + latency | per CG iteration "
        "(1 exchange + 2 all_reduce, latency-bound) |"
    )
    print("|---|---|---|---|")
    for name, bandwidth, latency in LINKS:
        transfer = halo8 / bandwidth
        print(
            f"| {name} | {1e6 * transfer:.2f} µs | {1e6 * (transfer + latency):.1f} µs "
            f"| {1e6 * (transfer + 3 * latency):.1f} µs |"
        )


if __name__ == "__main__":
    main()
