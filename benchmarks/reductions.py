"""Reductions and trainable sparse values: forward + backward against what users write instead.

Each library builds the trainable matrix its own way, from a values leaf, every step:
tsgu with its constructors (``tsgu.core.sparse_coo_tensor`` / ``sparse_csr_tensor``), the
others with torch's. Peers on the same matrices, in one run:

* logsumexp (dim=1, absent entries as zeros): tsgu, tsgu fed by torch's constructors, and
  torchsparsegradutils 0.2.5's ``sparse_logsumexp`` when it is installed
  (``uv pip install --no-deps torchsparsegradutils==0.2.5``; skipped otherwise);
* softmax (dim=1, support mask): tsgu against ``torch.sparse.softmax`` (COO only: torch 2.13
  raises NotImplementedError on CSR, which the table shows);
* the training step that motivates the constructors: values -> CSR -> ``sparse_mm`` -> loss ->
  backward, with tsgu's CSR constructor against torch's (whose backward densifies the
  gradient: skipped, with its memory need, where it cannot fit).

Matrices: random n x n with ``nnz`` distinct uniformly placed entries, float32;
n = 200,000 with 4M nnz (the issue's size), and the training step also at n = 20,000 with
400,000 nnz. ``--small`` runs everything at n = 2,000 (a check that the script works).

    python benchmarks/reductions.py                  # everything (minutes)
    python benchmarks/reductions.py --only softmax   # the groups whose name contains "softmax"
    python benchmarks/reductions.py --small          # a quick check at n = 2,000
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from _runner import Case, Column, nbytes, peak_memory, run, timed

K = 16  # columns of the dense factor in the training step
SIZES = {"large": (200_000, 4_000_000), "medium": (20_000, 400_000), "small": (2_000, 40_000)}


# ---------------------------------------------------------------------------- child side
def _parts(spec: dict[str, Any]) -> dict[str, Any]:
    """Indices and values of the problem, as a user holds them between steps."""
    import torch

    import tsgu.core as tc

    n, nnz = spec["n"], spec["nnz"]
    gen = torch.Generator().manual_seed(0)
    layout = torch.sparse_csr if spec["layout"] == "csr" else torch.sparse_coo
    A = tc.rand_sparse((n, n), nnz, layout, indices_dtype=torch.int32, generator=gen)
    values = torch.randn(nnz, generator=gen)
    if layout == torch.sparse_coo:
        return {"indices": A.indices(), "values": values, "size": (n, n)}
    return {"crow": A.crow_indices(), "col": A.col_indices(), "values": values, "size": (n, n)}


def _builder(spec: dict[str, Any], p: dict[str, Any]) -> Any:
    """``build(values) -> sparse matrix`` with the constructor the method uses."""
    import torch

    import tsgu.core as tc

    method = spec["method"]
    torch_ctor = method not in ("tsgu", "tsgu, is_coalesced unset")
    if spec["layout"] == "coo":
        flag = None if method == "tsgu, is_coalesced unset" else True
        if torch_ctor:
            return lambda v: torch.sparse_coo_tensor(p["indices"], v, p["size"])
        return lambda v: tc.sparse_coo_tensor(p["indices"], v, p["size"], is_coalesced=flag)
    if torch_ctor:
        return lambda v: torch.sparse_csr_tensor(p["crow"], p["col"], v, p["size"])
    return lambda v: tc.sparse_csr_tensor(p["crow"], p["col"], v, p["size"])


def _operation(spec: dict[str, Any], p: dict[str, Any]) -> Any:
    """``op(A) -> (output, gradient to feed its backward)``."""
    import torch

    import tsgu.core as tc

    op, method = spec["op"], spec["method"]
    n = p["size"][0]
    gen = torch.Generator().manual_seed(1)
    if op == "logsumexp":
        G = torch.randn(n, generator=gen)
        if method.startswith("torchsparsegradutils"):
            if not _tsgu025_installed():
                raise SystemExit(
                    "not installed: torchsparsegradutils 0.2.5 "
                    "(uv pip install --no-deps torchsparsegradutils==0.2.5)"
                )
            import torchsparsegradutils as t

            return lambda A: (t.sparse_logsumexp(A, 1), G)
        return lambda A: (tc.sparse_logsumexp(A, 1), G)
    if op == "softmax":
        weights = torch.randn(p["values"].shape, generator=gen)

        def same_pattern(S: Any) -> Any:
            # a gradient with the output's own pattern, as the next sparse op would send
            if S.layout == torch.sparse_coo:
                return torch.sparse_coo_tensor(
                    S._indices(), weights, S.shape, is_coalesced=S.is_coalesced()
                )
            return torch.sparse_csr_tensor(S.crow_indices(), S.col_indices(), weights, S.shape)

        if method.startswith("torch.sparse.softmax"):
            return lambda A: (lambda S: (S, same_pattern(S)))(torch.sparse.softmax(A, 1))
        return lambda A: (lambda S: (S, same_pattern(S)))(tc.sparse_softmax(A, 1))
    # the training step: C = A @ X, loss = <C, W>
    X = torch.randn(n, K, generator=gen)
    W = torch.randn(n, K, generator=gen)
    return lambda A: (tc.sparse_mm(A, X), W)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    p = _parts(spec)
    build, op = _builder(spec, p), _operation(spec, p)
    values = p["values"].clone().requires_grad_(True)

    def forward() -> Any:
        with torch.no_grad():
            return op(build(values))[0]

    def step() -> None:
        out, grad = op(build(values))
        out.backward(grad)
        values.grad = None

    try:
        fwd = timed(forward)
    except NotImplementedError as exc:  # torch.sparse.softmax on CSR (torch 2.13)
        raise SystemExit(f"NotImplementedError: {str(exc).splitlines()[0][:120]}") from None
    steps = [timed(step, repeat=1, warmup=1 if i == 0 else 0, min_seconds=0) for i in range(5)]
    peak = peak_memory(step)
    out, grad = op(build(values))
    out.backward(grad)
    operands = nbytes(values, values.grad, *[t for k, t in p.items() if k != "size"])
    return {
        "fwd_s": fwd,
        "fwd_bwd_s": statistics.median(steps),
        "peak_B": peak,
        "peak_over_operands": peak / operands,
    }


# --------------------------------------------------------------------------- parent side
def _tsgu025_installed() -> bool:
    try:
        import torchsparsegradutils as t
    except ImportError:
        return False
    return hasattr(t, "sparse_logsumexp")


def _dense_grad_bytes(n: int) -> float:
    """What a densifying CSR backward needs: a dense n x n float32 gradient and a copy."""
    return 2.0 * n * n * 4


def cases(scale: str) -> tuple[list[Case], dict[str, str]]:
    big = "small" if scale == "small" else "large"
    mid = "small" if scale == "small" else "medium"
    n, nnz = SIZES[big]
    base = {"n": n, "nnz": nnz}
    label = f"n={n:,} nnz={nnz:,}"
    out: list[Case] = []
    reference: dict[str, str] = {}

    def add(group: str, method: str, spec: dict[str, Any], needs: float | None = None) -> None:
        # a peer that is not installed ends its child with "not installed: ..." (its status)
        out.append(Case(group, method, {**spec, "method": method}, needs_bytes=needs))

    # logsumexp, COO and CSR
    group = f"logsumexp COO {label}"
    reference[group] = "torchsparsegradutils 0.2.5"
    spec = {**base, "op": "logsumexp", "layout": "coo"}
    add(group, "tsgu", spec)
    add(group, "tsgu, is_coalesced unset", spec)
    add(group, "tsgu on torch.sparse_coo_tensor", spec)
    add(group, "torchsparsegradutils 0.2.5", spec)

    group = f"logsumexp CSR {label}"
    reference[group] = "tsgu"
    spec = {**base, "op": "logsumexp", "layout": "csr"}
    add(group, "tsgu", spec)
    add(group, "tsgu on torch.sparse_csr_tensor", spec, _dense_grad_bytes(n))
    add(group, "torchsparsegradutils 0.2.5", spec, _dense_grad_bytes(n))

    # softmax
    group = f"softmax COO {label}"
    reference[group] = "torch.sparse.softmax"
    spec = {**base, "op": "softmax", "layout": "coo"}
    add(group, "tsgu", spec)
    add(group, "tsgu on torch.sparse_coo_tensor", spec)
    add(group, "torch.sparse.softmax", spec)

    group = f"softmax CSR {label}"
    reference[group] = "tsgu"
    spec = {**base, "op": "softmax", "layout": "csr"}
    add(group, "tsgu", spec)
    add(group, "torch.sparse.softmax", spec)  # torch 2.13: NotImplementedError
    add(group, "tsgu on torch.sparse_csr_tensor", spec, _dense_grad_bytes(n))

    # the training step, at two sizes
    for size in dict.fromkeys((mid, big)):
        n2, nnz2 = SIZES[size]
        group = f"train step CSR sparse_mm n={n2:,} nnz={nnz2:,}"
        reference[group] = "tsgu on torch.sparse_csr_tensor"
        spec = {"n": n2, "nnz": nnz2, "op": "train", "layout": "csr"}
        add(group, "tsgu", spec)
        add(group, "tsgu on torch.sparse_csr_tensor", spec, _dense_grad_bytes(n2))
    return out, reference


if __name__ == "__main__":
    scale = "small" if "--small" in sys.argv else "full"
    argv = [a for a in sys.argv[1:] if a != "--small"]
    selected, reference = cases(scale)
    time_cols = [Column("fwd_s", "forward", "s"), Column("fwd_bwd_s", "fwd+bwd", "s")]
    run(
        "reductions_small" if scale == "small" else "reductions",
        selected,
        measure,
        columns=[
            *time_cols,
            Column("peak_B", "peak mem", "B"),
            Column("peak_over_operands", "peak/operands", ""),
        ],
        reference=reference,
        ratio_of=[*time_cols, Column("peak_B", "peak mem", "B")],
        argv=argv,
        title="reductions and trainable values, float32, forward + backward from a values leaf "
        "(peak mem: rise during forward+backward; operands: values, their gradient, indices)",
    )
