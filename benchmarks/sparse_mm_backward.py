"""sparse_mm forward and forward+backward (gradient for X) against torch.sparse.mm.

The backward multiplies by Aᵀ, whose row-major order is a sort of A's column indices; tsgu
keeps it between calls (per tensor object, and per index content for a new tensor on the
same indices). Matrices: the 7-point and 27-point Laplacians on 50³ (125,000 rows; 0.86M and
3.4M nnz), float32, k = 1, 16, 64; COO (int64) and CSR (int64, int32). One thread. Each
time is the best of ``--reps`` calls after one warm-up call (so tsgu's cached order is
reused: the steady state of a training loop); ``--scenarios`` adds, at k = 16 on the
27-point matrix, a cold cache (first call), a new torch tensor per call, and tsgu's
constructor per call with the values requiring grad.

    python benchmarks/sparse_mm_backward.py > results.csv
    python benchmarks/sparse_mm_backward.py --scenarios
    python benchmarks/sparse_mm_backward.py --gcn     # a GCN epoch, COO vs CSR
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any


def _best(fn: Callable[[], Any], reps: int, setup: Callable[[], None] | None = None) -> float:
    if setup is None:
        fn()
    times = []
    for _ in range(reps):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def _layouts(A0: Any) -> list[tuple[str, str, Any]]:
    import torch

    C = A0.to_sparse_csr()
    C32 = torch.sparse_csr_tensor(
        C.crow_indices().int(), C.col_indices().int(), C.values(), C.shape
    )
    return [("coo", "int64", A0), ("csr", "int64", C), ("csr", "int32", C32)]


def products(stencils: list[int], ks: list[int], reps: int) -> None:
    import torch

    import tsgu.core as tc

    print("stencil,layout,index,k,method,fwd_ms,fwd_bwd_ms", flush=True)
    for stencil in stencils:
        A0 = tc.poisson_3d(50, stencil=stencil, layout=torch.sparse_coo, dtype=torch.float32)
        for layout, index, A in _layouts(A0.coalesce()):
            for k in ks:
                X = torch.randn(A.shape[1], k, requires_grad=True)
                G = torch.randn(A.shape[0], k)
                methods = [("tsgu", tc.sparse_mm)]
                if index == "int64":
                    methods.append(("torch.sparse.mm", torch.sparse.mm))
                for name, op in methods:

                    def forward(op: Any = op, A: Any = A, X: Any = X) -> None:
                        with torch.no_grad():
                            op(A, X)

                    def both(op: Any = op, A: Any = A, X: Any = X, G: Any = G) -> None:
                        X.grad = None
                        op(A, X).backward(G)

                    fwd, fb = _best(forward, reps), _best(both, reps)
                    print(f"{stencil},{layout},{index},{k},{name},{fwd:.1f},{fb:.1f}", flush=True)


def _builders(A: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any], Any]:
    """Build a new tensor on A's very index tensors: with torch's constructor, with tsgu's."""
    import torch

    import tsgu.core as tc

    if A.layout == torch.sparse_coo:
        ind = A._indices()
        return (
            lambda v: torch.sparse_coo_tensor(ind, v, A.shape, is_coalesced=True),
            lambda v: tc.sparse_coo_tensor(ind, v, A.shape, is_coalesced=True),
            A._values(),
        )
    crow, col = A.crow_indices(), A.col_indices()
    return (
        lambda v: torch.sparse_csr_tensor(crow, col, v, A.shape),
        lambda v: tc.sparse_csr_tensor(crow, col, v, A.shape),
        A.values(),
    )


def scenarios(reps: int) -> None:
    import torch

    import tsgu.core as tc
    from tsgu.core._pattern_cache import clear_pattern_cache

    k = 16
    A0 = tc.poisson_3d(50, stencil=27, layout=torch.sparse_coo, dtype=torch.float32)
    print("case,layout,index,fwd_bwd_ms", flush=True)
    for layout, index, A in _layouts(A0.coalesce()):
        X = torch.randn(A.shape[1], k, requires_grad=True)
        G = torch.randn(A.shape[0], k)
        make, tsgu_make, vals = _builders(A)
        leaf = vals.clone().requires_grad_(True)

        def same(A: Any = A, X: Any = X, G: Any = G) -> None:
            X.grad = None
            tc.sparse_mm(A, X).backward(G)

        def new(X: Any = X, G: Any = G, make: Any = make, vals: Any = vals) -> None:
            X.grad = None
            tc.sparse_mm(make(vals), X).backward(G)

        def constructor(X: Any = X, G: Any = G, make: Any = tsgu_make, leaf: Any = leaf) -> None:
            X.grad = leaf.grad = None
            tc.sparse_mm(make(leaf), X).backward(G)

        rows = [
            ("same A, cold cache (first call)", _best(same, reps, clear_pattern_cache)),
            ("same A", _best(same, reps)),
            ("new torch tensor per call", _best(new, reps)),
            ("tsgu constructor per call, values require grad", _best(constructor, reps)),
        ]
        for case, ms in rows:
            print(f"{case},{layout},{index},{ms:.1f}", flush=True)


def gcn(reps: int) -> None:
    """A two-layer GCN epoch (64 features, Adam): A random graph of 10⁵ nodes, 2.1M edges.

    "pattern per call" replaces the cache in ``sparse_mm`` by ``Pattern.of`` (the behaviour
    before the cache), on the same build, so both rows run the same kernels otherwise.
    """
    import torch

    import tsgu.core as tc
    import tsgu.core.matmul as matmul
    from tsgu.core._pattern_cache import cached_pattern
    from tsgu.core.extend import Pattern

    n, degree, features = 100_000, 21, 64
    gen = torch.Generator().manual_seed(0)
    index = torch.randint(0, n, (2, n * degree), generator=gen)
    weights = torch.rand(n * degree, generator=gen)
    A = torch.sparse_coo_tensor(index, weights, (n, n)).coalesce()
    X = torch.randn(n, features, generator=gen)
    labels = torch.randint(0, 8, (n,), generator=gen)
    print("mode,layout,epoch_ms", flush=True)
    for mode, patterns in (("pattern per call", Pattern.of), ("pattern kept", cached_pattern)):
        matmul.cached_pattern = patterns  # type: ignore[assignment]
        for layout, M in (("coo", A), ("csr", A.to_sparse_csr())):
            torch.manual_seed(0)
            first, second = torch.nn.Linear(features, features), torch.nn.Linear(features, 8)
            opt = torch.optim.Adam([*first.parameters(), *second.parameters()])

            def epoch(M: Any = M, first: Any = first, second: Any = second, opt: Any = opt) -> None:
                opt.zero_grad()
                h = torch.relu(tc.sparse_mm(M, first(X)))
                logits = tc.sparse_mm(M, second(h))
                torch.nn.functional.cross_entropy(logits, labels).backward()
                opt.step()

            print(f"{mode},{layout},{_best(epoch, reps):.0f}", flush=True)
    matmul.cached_pattern = cached_pattern


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stencils", default="7,27")
    parser.add_argument("--k", default="1,16,64")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scenarios", action="store_true")
    parser.add_argument("--gcn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.scenarios:
        scenarios(args.reps)
    elif args.gcn:
        gcn(args.reps)
    else:
        stencils = [int(s) for s in args.stencils.split(",")]
        products(stencils, [int(s) for s in args.k.split(",")], args.reps)


if __name__ == "__main__":
    main()
