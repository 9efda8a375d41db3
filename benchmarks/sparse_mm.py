"""sparse_mm: forward, backward and peak memory against what a user would use instead.

Peers on the same matrices, in one run: torch.sparse.mm (COO and CSR), ``A @ B`` (CSR),
dense torch.mm, and jax.experimental.sparse BCOO gradients when jax is installed.
Matrices: random n = 20,000 with 27 nnz per row; 2D 5-point Poisson on a 512 x 512 grid
(262,144 rows); 3D 27-point Poisson on 50³ (125,000 rows, 3.2M nnz); a batch of four random
n = 20,000 matrices. k = 16, float32.

"index check" rows time tsgu's index-structure validation of A alone, which every tsgu
entry point runs before any work: "uncached" is its cost on a tensor seen for the first
time (the verdict forgotten before each run), "cached" on one already checked (every later
call with the same, unchanged A). Compare them with the tsgu forward of the same group.

    python benchmarks/sparse_mm.py            # everything (several minutes)
    python benchmarks/sparse_mm.py --demo     # random n = 20,000 only: tsgu vs torch.sparse.mm
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from _runner import Case, Column, nbytes, peak_memory, run, timed

K = 16
NNZ_PER_ROW = 27


def _matrix(spec: dict[str, Any]) -> Any:
    import torch

    import tsgu.core as tc

    layout = torch.sparse_coo if spec["layout"] == "coo" else torch.sparse_csr
    kind, n = spec["matrix"], spec["n"]
    gen = torch.Generator().manual_seed(0)
    if kind == "random":
        size = (spec["batch"], n, n) if spec.get("batch") else (n, n)
        return tc.rand_sparse(size, n * NNZ_PER_ROW, layout, generator=gen)
    if kind == "poisson2d":
        return tc.poisson_2d(spec["grid"], layout=layout, dtype=torch.float32)
    return tc.poisson_3d(spec["grid"], stencil=27, layout=layout, dtype=torch.float32)


def _torch_case(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    import tsgu.core as tc

    A0 = _matrix(spec)
    gen = torch.Generator().manual_seed(1)
    b_shape = (*A0.shape[:-2], A0.shape[-1], K)
    B0 = torch.randn(b_shape, generator=gen)
    G = torch.randn((*A0.shape[:-1], K), generator=gen)
    method = spec["method"]
    if method == "tsgu":
        op = tc.sparse_mm
    elif method == "torch.sparse.mm":
        op = torch.sparse.mm
    elif method == "A @ B":
        op = torch.matmul
    elif method == "loop of torch.sparse.mm":
        # What a user writes without a batched kernel: one matrix per item, a Python loop.
        items = [torch.sparse_coo_tensor(*_item(A0, i)) for i in range(A0.shape[0])]
        if spec["layout"] == "csr":
            items = [t.to_sparse_csr() for t in items]
        leaves = [t.detach().requires_grad_(True) for t in items]
        B = B0.detach().requires_grad_(True)
        return _measure(
            lambda: torch.stack([torch.sparse.mm(a, B[i]) for i, a in enumerate(leaves)]),
            [*leaves, B],
            G,
        )
    elif method in ("index check uncached", "index check cached"):
        return _index_check(A0, cached=method == "index check cached")
    elif method == "dense torch.mm":
        A0 = A0.to_dense()
        op = torch.matmul
    else:
        raise ValueError(method)

    A = A0.detach().requires_grad_(True)
    B = B0.detach().requires_grad_(True)
    return _measure(lambda: op(A, B), [A, B], G)


def _index_check(A: Any, cached: bool) -> dict[str, Any]:
    from tsgu.core.validation import check_sparse_structure, forget_structure

    def check() -> None:
        check_sparse_structure("sparse_mm", "A", A)

    def forget() -> None:
        forget_structure(A)

    check()
    seconds = timed(check, setup=None if cached else forget, min_seconds=0.5)
    nan = float("nan")
    return {
        "fwd_s": seconds,
        "bwd_s": nan,
        "peak_B": nan,
        "operands_B": nan,
        "peak_over_operands": nan,
    }


def _item(A: Any, i: int) -> tuple[Any, Any, tuple[int, int]]:
    """Indices, values and shape of item ``i`` of a batched COO or CSR tensor."""
    coo = A.to_sparse_coo().coalesce()
    idx, vals = coo.indices(), coo.values()
    keep = idx[0] == i
    return idx[1:, keep], vals[keep], tuple(A.shape[1:])


def _measure(call: Any, leaves: list[Any], G: Any) -> dict[str, Any]:
    import torch

    def forward() -> Any:
        with torch.no_grad():
            return call()

    def clear() -> None:
        for leaf in leaves:
            leaf.grad = None

    fwd = timed(forward)
    bwd_times = []
    for _ in range(5):  # backward alone: a fresh forward outside the timed region
        C = call()
        bwd_times.append(timed(lambda C=C: C.backward(G), repeat=1, warmup=0, min_seconds=0))
        clear()
    bwd = statistics.median(bwd_times)

    def both() -> None:
        call().backward(G)

    peak = peak_memory(both)
    clear()
    C = call()
    C.backward(G)
    operands = nbytes(C, G, *leaves, *[leaf.grad for leaf in leaves])
    return {
        "fwd_s": fwd,
        "bwd_s": bwd,
        "peak_B": peak,
        "operands_B": operands,
        "peak_over_operands": peak / operands,
    }


def _jax_case(spec: dict[str, Any]) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import sparse as jsparse

    A0 = _matrix({**spec, "layout": "coo"}).coalesce()
    idx = jnp.asarray(A0.indices().T.numpy())
    data = jnp.asarray(A0.values().numpy())
    shape = tuple(A0.shape)
    rng = np.random.default_rng(1)
    B = jnp.asarray(rng.standard_normal((shape[-1], K), dtype=np.float32))
    G = jnp.asarray(rng.standard_normal((shape[-2], K), dtype=np.float32))

    fwd_fn = jax.jit(lambda d, b: jsparse.BCOO((d, idx), shape=shape) @ b)

    def loss(d: Any, b: Any) -> Any:
        return jnp.sum((jsparse.BCOO((d, idx), shape=shape) @ b) * G)

    grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    fwd = timed(lambda: fwd_fn(data, B).block_until_ready())
    both = timed(lambda: jax.block_until_ready(grad_fn(data, B)))
    peak = peak_memory(lambda: jax.block_until_ready(grad_fn(data, B)))
    return {"fwd_s": fwd, "bwd_s": max(both - fwd, 0.0), "peak_B": peak}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["method"] == "jax BCOO":
        return _jax_case(spec)
    return _torch_case(spec)


def _jax_installed() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def cases(demo: bool) -> tuple[list[Case], dict[str, str]]:
    problems: list[tuple[str, dict[str, Any], int]] = [
        ("random n=20k", {"matrix": "random", "n": 20_000}, 20_000),
    ]
    if not demo:
        problems += [
            ("poisson2d 512^2", {"matrix": "poisson2d", "n": 512**2, "grid": 512}, 512**2),
            ("poisson3d-27 50^3", {"matrix": "poisson3d", "n": 50**3, "grid": 50}, 50**3),
        ]
    out: list[Case] = []
    reference: dict[str, str] = {}
    for label, spec, n in problems:
        for layout in ("coo", "csr"):
            group = f"{label} {layout.upper()}"
            reference[group] = "torch.sparse.mm"
            base = {**spec, "layout": layout}
            out.append(Case(group, "tsgu", {**base, "method": "tsgu"}))
            for check in ("index check uncached", "index check cached"):
                out.append(Case(group, check, {**base, "method": check}))
            # torch's COO backward forms a dense n x n gradient
            dense_grad = 2.5 * n * n * 4 if layout == "coo" else None
            out.append(
                Case(group, "torch.sparse.mm", {**base, "method": "torch.sparse.mm"}, dense_grad)
            )
            if demo:
                continue
            if layout == "csr":  # its backward forms a dense n x n gradient
                out.append(Case(group, "A @ B", {**base, "method": "A @ B"}, 2.5 * n * n * 4))
            out.append(
                Case(group, "dense torch.mm", {**base, "method": "dense torch.mm"}, 3.5 * n * n * 4)
            )
            if layout == "coo" and _jax_installed():
                out.append(Case(group, "jax BCOO", {**base, "method": "jax BCOO"}))
    if not demo:
        for layout in ("coo", "csr"):
            group = f"batched 4 x random n=20k {layout.upper()}"
            reference[group] = "loop of torch.sparse.mm"
            base = {"matrix": "random", "n": 20_000, "batch": 4, "layout": layout}
            out.append(Case(group, "tsgu", {**base, "method": "tsgu"}))
            needs = 4 * 2.5 * 20_000**2 * 4 if layout == "coo" else None
            out.append(
                Case(
                    group,
                    "loop of torch.sparse.mm",
                    {**base, "method": "loop of torch.sparse.mm"},
                    needs,
                )
            )
    return out, reference


if __name__ == "__main__":
    demo = "--demo" in sys.argv
    selected, reference = cases(demo)
    time_cols = [Column("fwd_s", "forward", "s"), Column("bwd_s", "backward", "s")]
    run(
        "sparse_mm_demo" if demo else "sparse_mm",
        selected,
        measure,
        columns=[
            *time_cols,
            Column("peak_B", "peak mem", "B"),
            Column("peak_over_operands", "peak/operands", ""),
        ],
        reference=reference,
        ratio_of=[*time_cols, Column("peak_B", "peak mem", "B")],
        title=f"sparse_mm, float32, k = {K} (peak mem: rise over the inputs during "
        "forward+backward; "
        "operands: A, B, C, grad C and the gradients)",
    )
