"""segment_mm and gather_mm: forward, backward and peak memory against what users do instead.

N = 100,000 rows, D1 = D2 = 64, R in {3, 64, 1024} relation types, float32, forward plus
backward (gradients for a and b). Segment lengths (and, for gather_mm, the type of each
row, shuffled) are drawn from a multinomial with equal type probabilities; ``--skew``
draws them with Zipf probabilities (p_r ~ 1/(r+1)), as relation frequencies in real
heterogeneous graphs tend to be.

Peers on the same inputs, in one run:

* ``loop (DGL reference)``: the per-segment Python loop of DGL's documentation
  (``a[s:e] @ b[r]`` per segment; for gather_mm a boolean mask per type, as
  torchsparsegradutils 0.2 does); the reference of the ratios;
* ``loop (split/unbind)``: the same loop written carefully (``torch.split`` and
  ``b.unbind``, whose backward is one cat/stack instead of a zero-filled buffer per segment);
* ``torch.bmm padded``: every segment zero-padded to the longest, one ``torch.bmm``;
* ``bmm on b[idx]`` (gather_mm only): ``torch.bmm(a[:, None], b[idx])``, an N x D1 x D2
  copy of the weights;
* ``torchsparsegradutils 0.2``: its ``segment_mm`` / ``gather_mm``, when installed
  (``pip install --no-deps torchsparsegradutils==0.2.2``);
* ``tsgu`` (automatic kernel choice) and ``tsgu padded`` (its fallback kernel pinned: what
  float64 and torch < 2.9 get).

Peak memory is the rise over what is live before the call (a, b and the incoming gradient);
``peak/operands`` adds those back and divides by a, b, the output, the incoming gradient and
both gradients.

    python benchmarks/indexed_mm.py                      # everything
    python benchmarks/indexed_mm.py --only "segment_mm R=64"
    python benchmarks/indexed_mm.py --device cuda --skew
    python benchmarks/indexed_mm.py --n 10000 --only "R=64"   # a quick smoke run
"""

from __future__ import annotations

import statistics
import sys
from typing import Any

from _runner import Case, Column, measuring_memory, nbytes, peak_memory, run, timed


def _option(name: str, default: str) -> str:
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


N, D1, D2 = int(_option("--n", "100000")), 64, 64  # the parent's N; children get it in spec
RELATIONS = (3, 64, 1024)


# ------------------------------------------------------------------------ inputs
def _inputs(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    dtype = getattr(torch, spec["dtype"])
    device, R, N = spec["device"], spec["R"], spec["n"]
    gen = torch.Generator().manual_seed(0)
    if spec["skew"]:
        probs = 1.0 / torch.arange(1, R + 1, dtype=torch.float64)
    else:
        probs = torch.ones(R, dtype=torch.float64)
    idx = torch.multinomial(probs, N, replacement=True, generator=gen)
    lengths = torch.bincount(idx, minlength=R)
    if spec["op"] == "segment_mm":
        idx = torch.repeat_interleave(torch.arange(R), lengths)  # rows sorted by type
    a = torch.randn(N, D1, generator=gen, dtype=dtype).to(device)
    b = (torch.randn(R, D1, D2, generator=gen, dtype=dtype) / D1**0.5).to(device)
    G = torch.randn(N, D2, generator=gen, dtype=dtype).to(device)
    return {"a": a, "b": b, "G": G, "lengths": lengths, "idx": idx.to(device)}


# ---------------------------------------------------------------- the methods
def _loop_reference(op: str, lengths: Any, idx: Any) -> Any:

    if op == "segment_mm":
        sizes = lengths.tolist()

        def call(a: Any, b: Any) -> Any:
            # DGL's documented loop: one slice of a and one b[i] per segment
            c = a.new_empty(a.shape[0], b.shape[2])
            off = 0
            for i, length in enumerate(sizes):
                c[off : off + length] = a[off : off + length] @ b[i]
                off += length
            return c

        return call
    R = lengths.numel()

    def call_gather(a: Any, b: Any) -> Any:
        # one boolean mask per type (torchsparsegradutils 0.2's fallback)
        out = a.new_zeros(a.shape[0], b.shape[2])
        for r in range(R):
            mask = idx == r
            out = out.index_put((mask,), a[mask] @ b[r])
        return out

    return call_gather


def _loop_split(op: str, lengths: Any, idx: Any) -> Any:
    import torch

    perm = None if op == "segment_mm" else torch.sort(idx, stable=True).indices
    inverse = None if perm is None else torch.argsort(perm)
    sizes = lengths.tolist()

    def call(a: Any, b: Any) -> Any:
        rows = a if perm is None else a.index_select(0, perm)
        parts = [x @ w for x, w in zip(rows.split(sizes), b.unbind(0), strict=True)]
        out = torch.cat(parts)
        return out if inverse is None else out.index_select(0, inverse)

    return call


def _bmm_padded(op: str, lengths: Any, idx: Any) -> Any:
    import torch

    device = idx.device
    R, longest = lengths.numel(), int(lengths.max())
    lengths = lengths.to(device)
    perm = None if op == "segment_mm" else torch.sort(idx, stable=True).indices
    inverse = None if perm is None else torch.argsort(perm)
    group = torch.repeat_interleave(torch.arange(R, device=device), lengths)
    position = (
        torch.arange(group.numel(), device=device) - (torch.cumsum(lengths, 0) - lengths)[group]
    )

    def call(a: Any, b: Any) -> Any:
        rows = a if perm is None else a.index_select(0, perm)
        padded = a.new_zeros(R, longest, a.shape[1]).index_put((group, position), rows)
        out = torch.bmm(padded, b)[group, position]
        return out if inverse is None else out.index_select(0, inverse)

    return call


def _method(spec: dict[str, Any], data: dict[str, Any]) -> Any:
    import torch

    op, method, lengths, idx = spec["op"], spec["method"], data["lengths"], data["idx"]
    if method in ("tsgu", "tsgu padded"):
        import tsgu.graph as tg
        from tsgu.graph import _paths

        fn = tg.segment_mm if op == "segment_mm" else tg.gather_mm
        index = lengths if op == "segment_mm" else idx
        pinned = "padded" if method == "tsgu padded" else None

        def call(a: Any, b: Any) -> Any:
            with _paths.force_path(pinned):
                return fn(a, b, index)

        return call
    if method == "torchsparsegradutils 0.2":
        import torchsparsegradutils as tsgu02  # installed: measure() checked

        if op == "segment_mm":
            return lambda a, b: tsgu02.segment_mm(a, b, lengths)
        return lambda a, b: tsgu02.gather_mm(a, b, idx)
    if method == "loop (DGL reference)":
        return _loop_reference(op, lengths, idx)
    if method == "loop (split/unbind)":
        return _loop_split(op, lengths, idx)
    if method == "torch.bmm padded":
        return _bmm_padded(op, lengths, idx)
    if method == "bmm on b[idx]":
        return lambda a, b: torch.bmm(a.unsqueeze(1), b[idx]).squeeze(1)
    raise ValueError(method)


# ------------------------------------------------------------------ measuring
def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    if spec["method"] == "torchsparsegradutils 0.2" and not _installed("torchsparsegradutils"):
        return {"status": "not installed (pip install --no-deps torchsparsegradutils==0.2.2)"}
    data = _inputs(spec)
    device = spec["device"]
    call = _method(spec, data)
    a = data["a"].detach().requires_grad_(True)
    b = data["b"].detach().requires_grad_(True)
    G = data["G"]

    def clear() -> None:
        a.grad = b.grad = None

    def forward() -> Any:
        with torch.no_grad():
            return call(a, b)

    # At least 3 runs, more for fast calls (the loop peers take seconds per call at R = 1024).
    fwd = timed(forward, device=device)
    bwd_times: list[float] = []
    if not measuring_memory():
        # backward alone: a fresh forward outside the timed region
        while len(bwd_times) < 3 or (sum(bwd_times) < 0.3 and len(bwd_times) < 20):
            out = call(a, b)

            def backward(out: Any = out) -> None:
                out.backward(G)

            bwd_times.append(timed(backward, repeat=1, warmup=0, min_seconds=0, device=device))
            clear()
    bwd = statistics.median(bwd_times) if bwd_times else float("nan")

    kept: dict[str, Any] = {}

    def both() -> None:
        kept["out"] = call(a, b)  # alive during backward in any case
        kept["out"].backward(G)

    if measuring_memory():
        both()  # one-time costs (kernel probes, autograd threads) out of the peak
        clear()
    peak = peak_memory(both, device=device)
    if not kept:  # the timing child: one more call for the checks below
        both()
    out = kept["out"]
    # correctness against the definition, in float64 (a benchmark of a wrong result is void)
    a64, b64 = a.detach().double(), b.detach().double()
    idx = data["idx"]
    expected = torch.bmm(a64[:2000].unsqueeze(1), b64[idx[:2000]]).squeeze(1)
    error = float((out[:2000].double() - expected).abs().max() / expected.abs().max())
    live = nbytes(a, b, G)
    operands = nbytes(out, G, a, b, a.grad, b.grad)
    return {
        "fwd_s": fwd,
        "bwd_s": bwd,
        "total_s": fwd + bwd,
        "peak_B": peak,
        "operands_B": operands,
        "peak_over_operands": (peak + live) / operands,
        "rel_error": error,
    }


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _longest(R: int, skew: bool) -> int:
    """The longest segment of the inputs (for the padded peers' memory estimate)."""
    spec = {"op": "segment_mm", "R": R, "n": N, "device": "cpu", "dtype": "float32", "skew": skew}
    return int(_inputs(spec)["lengths"].max())


def cases(device: str, dtype: str, skew: bool) -> tuple[list[Case], dict[str, str]]:
    out: list[Case] = []
    reference: dict[str, str] = {}
    itemsize = {"float64": 8, "float32": 4}.get(dtype, 2)
    for op in ("segment_mm", "gather_mm"):
        for R in RELATIONS:
            group = f"{op} R={R}"
            reference[group] = "loop (DGL reference)"
            spec = {"op": op, "R": R, "n": N, "device": device, "dtype": dtype, "skew": skew}
            # R x longest segment x (D1 + D2): the padded operands, output and their gradients
            padded = 3.0 * R * _longest(R, skew) * (D1 + D2) * itemsize
            methods: list[tuple[str, float | None]] = [
                ("tsgu", None),
                ("tsgu padded", None),
                ("loop (DGL reference)", None),
                ("loop (split/unbind)", None),
                ("torch.bmm padded", padded),
            ]
            if op == "gather_mm":  # b[idx] and its gradient: N x D1 x D2 each
                methods.append(("bmm on b[idx]", 3.0 * N * D1 * D2 * itemsize))
            methods.append(("torchsparsegradutils 0.2", None))
            for method, needs in methods:
                out.append(Case(group, method, {**spec, "method": method}, needs))
    return out, reference


if __name__ == "__main__":
    device = _option("--device", "cpu")
    dtype = _option("--dtype", "float32")
    skew = "--skew" in sys.argv
    selected, reference = cases(device, dtype, skew)
    time_cols = [
        Column("fwd_s", "forward", "s"),
        Column("bwd_s", "backward", "s"),
        Column("total_s", "fwd+bwd", "s"),
    ]
    suffix = ("-skew" if skew else "") + (f"-{device}" if device != "cpu" else "")
    suffix += f"-{dtype}" if dtype != "float32" else ""
    suffix += f"-n{N}" if N != 100_000 else ""
    run(
        "indexed_mm" + suffix,
        selected,
        measure,
        columns=[
            *time_cols,
            Column("peak_B", "peak mem", "B"),
            Column("peak_over_operands", "peak/operands", ""),
            Column("rel_error", "rel. error", ""),
        ],
        reference=reference,
        ratio_of=[*time_cols, Column("peak_B", "peak mem", "B")],
        title=f"segment_mm / gather_mm, N = {N:,}, D1 = D2 = {D1}, {dtype} on {device}"
        + (", Zipf type frequencies" if skew else "")
        + " (peak mem: rise over a, b, grad out during forward+backward)",
    )
