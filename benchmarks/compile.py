"""A training step of a two-layer GCN with ``sparse_mm``, eager against ``torch.compile``.

The model holds a row-normalised random adjacency (``n`` nodes, ``degree`` neighbours each
plus a self loop) as a :class:`tsgu.core.SparseParameter` (its edge weights are trained) and
two dense weight matrices: ``Â relu(Â X W1) W2``. One step is the forward, the backward and
an Adam step. "compiled" wraps the model in ``torch.compile(model, fullgraph=True)`` (the
sparse products are the custom op ``tsgu::spmm``; inductor fuses the dense rest); the
optimizer runs eagerly in both. Reported: the median time of a step after warm-up, and the
one-off compile time (the first compiled step, less a steady step). float32, CPU.

``python benchmarks/compile.py`` (100,000 nodes) or ``--demo`` (20,000 nodes).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from _runner import Case, Column, measuring_memory, run, timed

FEATURES, HIDDEN, CLASSES = 32, 64, 16


def _model(spec: dict[str, Any]) -> Any:
    import torch

    import tsgu.core as tc

    n, degree = spec["n"], spec["degree"]
    gen = torch.Generator().manual_seed(0)
    rows = torch.arange(n).repeat_interleave(degree + 1)
    cols = torch.randint(0, n, (n, degree + 1), generator=gen)
    cols[:, 0] = torch.arange(n)  # self loops
    A = torch.sparse_coo_tensor(
        torch.stack([rows, cols.reshape(-1)]),
        torch.full((rows.numel(),), 1.0 / (degree + 1)),
        (n, n),
    ).coalesce()
    if spec["layout"] == "csr":
        A = A.to_sparse_csr()

    class GCN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.adjacency = tc.SparseParameter(A)
            self.w1 = torch.nn.Linear(FEATURES, HIDDEN)
            self.w2 = torch.nn.Linear(HIDDEN, CLASSES)

        def forward(self, X: torch.Tensor) -> torch.Tensor:
            adjacency = self.adjacency()
            hidden = torch.relu(tc.sparse_mm(adjacency, self.w1(X)))
            return tc.sparse_mm(adjacency, self.w2(hidden))

    torch.manual_seed(0)
    X = torch.randn(n, FEATURES, generator=gen)
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    return GCN(), X, y, A._nnz() if A.layout == torch.sparse_coo else A.values().numel()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    if measuring_memory():  # compile time and step time only: no second compile for memory
        return {}
    torch.set_num_threads(spec["threads"])
    model, X, y, nnz = _model(spec)
    run_model = model
    if spec["method"] == "compiled":
        run_model = torch.compile(model, fullgraph=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def step() -> None:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(run_model(X), y)
        loss.backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step_s = timed(step, repeat=5, warmup=1, min_seconds=1.0, max_repeat=10)
    return {"step_s": step_s, "first_s": first, "compile_s": max(first - step_s, 0.0), "nnz": nnz}


def cases(demo: bool) -> tuple[list[Case], dict[str, str]]:
    n = 20_000 if demo else 100_000
    out, reference = [], {}
    for layout in ("coo", "csr"):
        group = f"GCN n={n:,} degree 10 {layout.upper()}"
        reference[group] = "eager"
        for method in ("eager", "compiled"):
            params = {"n": n, "degree": 10, "layout": layout, "method": method, "threads": 2}
            out.append(Case(group, method, params))
    return out, reference


if __name__ == "__main__":
    demo = "--demo" in sys.argv
    selected, reference = cases(demo)
    run(
        "compile_demo" if demo else "compile",
        selected,
        measure,
        columns=[
            Column("step_s", "step", "s"),
            Column("compile_s", "compile (once)", "s"),
        ],
        reference=reference,
        ratio_of=[Column("step_s", "step", "s")],
        title="Two-layer GCN training step (forward, backward, Adam), float32, CPU, "
        "eager vs torch.compile(model, fullgraph=True)",
        timeout=1800,
    )
