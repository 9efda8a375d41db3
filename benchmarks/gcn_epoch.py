"""A two-layer GCN training epoch: tsgu.core.sparse_mm with CSR and COO against torch.sparse.mm.

The epoch is what a graph network trains with: ``H = relu(A (X W1 + b1))``,
``logits = A (H W2 + b2)``, cross entropy against random labels, backward, an Adam step.
``A`` is a random graph (``--nodes`` nodes, ``--degree`` edges per node, uniform random ends,
coalesced, random weights), X has 64 features, 8 classes. A's values do not require grad (a
fixed normalised adjacency), so the backward multiplies by Aᵀ. Methods:

* ``tsgu CSR`` / ``tsgu COO``: ``tsgu.core.sparse_mm`` on A converted to CSR (int64 indices,
  as ``to_sparse_csr`` makes them) or on the COO tensor itself;
* ``... zero-filled output``: the same, with the product written by ``A @ X`` (torch fills
  and copies an n x k zero matrix before MKL overwrites it), the path before this benchmark's
  commit, pinned through ``tsgu.core._pattern._MKL_CPU`` on the same build;
* ``torch.sparse.mm COO``: what a user writes without tsgu (the reference of the ratios).

Each case runs in its own process (``_runner``); the time is the median of 7 epochs (1 with
``--large``) after one warm-up epoch (tsgu keeps A's pattern and its transposed order between
calls, as in a training loop). Torch's default thread count.

    python benchmarks/gcn_epoch.py             # 10⁵ nodes, 2.1M edges (about a minute)
    python benchmarks/gcn_epoch.py --large     # 10⁶ nodes, 21M edges, as in issue 25
"""

from __future__ import annotations

import sys
from typing import Any

from _runner import Case, Column, measuring_memory, peak_memory, run, timed

FEATURES = 64
CLASSES = 8


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    import tsgu.core as tc
    import tsgu.core._pattern as pattern_module

    n, degree = spec["nodes"], spec["degree"]
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(0, n, (2, n * degree), generator=gen)
    weights = torch.rand(n * degree, generator=gen)
    A = torch.sparse_coo_tensor(index, weights, (n, n)).coalesce()
    if spec["layout"] == "csr":
        A = A.to_sparse_csr()
    X = torch.randn(n, FEATURES, generator=gen)
    labels = torch.randint(0, CLASSES, (n,), generator=gen)
    method = spec["method"]
    op = torch.sparse.mm if method.startswith("torch") else tc.sparse_mm
    if "zero-filled" in method:
        pattern_module._MKL_CPU = False  # type: ignore[attr-defined]  # the path before

    torch.manual_seed(0)
    first = torch.nn.Linear(FEATURES, FEATURES)
    second = torch.nn.Linear(FEATURES, CLASSES)
    opt = torch.optim.Adam([*first.parameters(), *second.parameters()])

    def epoch() -> None:
        opt.zero_grad()
        h = torch.relu(op(A, first(X)))
        logits = op(A, second(h))
        torch.nn.functional.cross_entropy(logits, labels).backward()
        opt.step()

    if measuring_memory():
        epoch()  # warm-up: tsgu's cached orders are made once, not per epoch
        return {"epoch_s": float("nan"), "peak_B": peak_memory(epoch)}
    seconds = timed(epoch, repeat=spec["repeat"], warmup=1, min_seconds=0)
    return {
        "epoch_s": seconds,
        "peak_B": float("nan"),
        "nnz": A._nnz() if A.layout == torch.sparse_coo else A.values().numel(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    large = "--large" in sys.argv
    argv = [a for a in sys.argv[1:] if a != "--large"]
    nodes, degree, repeat = (1_000_000, 21, 1) if large else (100_000, 21, 7)
    group = f"GCN epoch, {nodes:,} nodes, {nodes * degree:,} edges"
    methods = [
        ("torch.sparse.mm COO", "coo"),
        ("tsgu COO", "coo"),
        ("tsgu CSR", "csr"),
        ("tsgu COO, zero-filled output", "coo"),
        ("tsgu CSR, zero-filled output", "csr"),
    ]
    cases = [
        Case(
            group,
            method,
            {"method": method, "layout": layout, "nodes": nodes, "degree": degree}
            | {"repeat": repeat},
        )
        for method, layout in methods
    ]
    time_col = Column("epoch_s", "epoch", "s")
    run(
        "gcn_epoch-large" if large else "gcn_epoch",
        cases,
        _measure,
        columns=[time_col, Column("peak_B", "peak memory", "B")],
        reference={group: "torch.sparse.mm COO"},
        ratio_of=[time_col],
        argv=argv,
        timeout=1800.0,
        title="Two-layer GCN training epoch (64 features, Adam)",
    )


if __name__ == "__main__":
    main()
