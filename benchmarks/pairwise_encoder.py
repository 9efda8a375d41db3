"""PairwiseEncoder: index build, forward, backward and peak memory against torchsparsegradutils 0.2.

Volume 4 x 64 x 64 x 64 (V = 1,048,576), radius 1 (6 offsets, 6.2M nnz) and 2 (32 offsets,
32M nnz), ``channel_voxel_relation="indep"``, ``upper=None``, float32 values; COO and CSR,
int32 and int64 indices; tsgu.encoders next to torchsparsegradutils 0.2.2's encoder (skipped,
"not installed", without it: ``pip install --no-deps torchsparsegradutils==0.2.2``).

Phases, each in its own column:

* build: constructing the encoder (the pattern; 0.2 also builds its CSR permutation), cold;
* forward: ``enc(values)`` with values that require grad (the training path), timed in two
  allocator states, the same for both methods (see ``_runner``): "cold", the free memory
  given back before each call, so the output's pages are touched fresh as in a new process;
  and "warm heap", glibc keeping freed memory, so the output reuses resident pages as in a
  long-running one. Without this, 0.2's forward ran in a heap its own CSR build (10 GB peak)
  had left resident and ours in a fresh one: a page-fault difference, not the encoders';
* backward (cold): ``A.backward(G)`` with G a sparse gradient with A's pattern and layout, what a
  downstream sparse op (``tsgu.core.sparse_mm``) hands back: the encoder's backward alone;
* peak mem: the rise of peak memory during forward + backward (the encoder already built);
  build peak: the same during the build.

0.2's CSR backward goes through ``torch.sparse_csr_tensor``'s backward, which makes the V x V
gradient dense (4 TiB here in float32): it is not run when that exceeds the memory budget,
and the row says so. After the table, the script prints tsgu's CSR / COO peak-memory ratio
per radius and index dtype (target: at most 1.2).

    python benchmarks/pairwise_encoder.py                      # everything (slow: 0.2's CSR
                                                               # build takes minutes)
    python benchmarks/pairwise_encoder.py --only "r=1 COO"     # groups containing the text
    python benchmarks/pairwise_encoder.py --volume 4x16x16x16  # a smaller volume (a check)
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _runner import (
    Case,
    Column,
    available_bytes,
    keep_freed_memory,
    measuring_memory,
    peak_memory,
    return_free_memory,
    run,
    timed,
)

NAN = float("nan")
TSGU = "tsgu"
OLD = "torchsparsegradutils 0.2.2"
DEFAULT_VOLUME = (4, 64, 64, 64)


def _encoder_class(method: str) -> Any:
    if method == TSGU:
        from tsgu.encoders import PairwiseEncoder
    else:
        from torchsparsegradutils.encoders import PairwiseEncoder
    return PairwiseEncoder


def _timed_once_or_more(fn: Any) -> float:
    """Median seconds of ``fn()``: once when slow (0.2's CSR build takes minutes), else 3.

    Each run starts cold (free memory given back first), as the one build of a model's
    set-up does: a later build would otherwise reuse the pages its predecessor freed, which
    helps a build made of many medium blocks (0.2's per-offset pieces, served again from
    glibc's heap) and not one of a few large ones (ours, fresh mappings every time).
    """
    times: list[float] = []
    while not times or (len(times) < 3 and times[0] <= 5.0):
        return_free_memory()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _gradient_like(A: Any) -> Any:
    """A sparse gradient with A's pattern and layout (random values)."""
    import torch

    gen = torch.Generator().manual_seed(2)
    if A.layout == torch.sparse_coo:
        values = torch.randn(A._nnz(), generator=gen, dtype=A.dtype)
        return torch.sparse_coo_tensor(A._indices(), values, A.shape, is_coalesced=True)
    values = torch.randn(A.values().shape, generator=gen, dtype=A.dtype)
    return torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), values, A.shape)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import torch

    warnings.simplefilter("ignore")
    if spec["method"] == OLD and importlib.util.find_spec("torchsparsegradutils") is None:
        return {"status": "skipped: torchsparsegradutils 0.2.2 not installed"}

    encoder_class = _encoder_class(spec["method"])  # imported outside the timed build
    layout = torch.sparse_coo if spec["layout"] == "COO" else torch.sparse_csr
    index_dtype = torch.int32 if spec["index"] == "int32" else torch.int64
    holder: dict[str, Any] = {}

    def build() -> None:
        holder["enc"] = None  # free the previous one first
        holder["enc"] = encoder_class(
            spec["radius"], tuple(spec["volume"]), layout=layout, indices_dtype=index_dtype
        )

    build_peak = peak_memory(build)
    build_s = NAN if measuring_memory() else _timed_once_or_more(build)
    enc = holder["enc"]

    gen = torch.Generator().manual_seed(1)
    values = torch.randn(len(enc.offsets), *spec["volume"], generator=gen)
    values.requires_grad_(True)

    def forward_s(setup: Callable[[], None] | None) -> float:
        return timed(lambda: enc(values), repeat=5, min_seconds=1.0, max_repeat=40, setup=setup)

    def with_warm_forward(result: dict[str, Any]) -> dict[str, Any]:
        # last: the allocator change cannot be undone
        if not measuring_memory() and keep_freed_memory():
            result["fwd_warm_s"] = forward_s(None)
        return result

    fwd = forward_s(return_free_memory)

    A = enc(values)
    G = _gradient_like(A.detach())
    nvox = math.prod(spec["volume"])
    dense_grad = nvox * nvox * values.element_size()
    densifies = spec["method"] == OLD and spec["layout"] == "CSR"
    result: dict[str, Any] = {"build_s": build_s, "build_peak_B": build_peak, "fwd_s": fwd}
    result["nnz"] = int(A._nnz()) if A.layout == torch.sparse_coo else int(A.values().numel())
    if densifies and dense_grad > 0.7 * available_bytes():
        result.update({"bwd_s": NAN, "peak_B": NAN})
        result["note"] = (
            f"backward not run: torch.sparse_csr_tensor's backward densifies the "
            f"V x V gradient ({dense_grad / 2**40:.1f} TiB)"
        )
        return with_warm_forward(result)
    A.backward(G)  # warm-up: the first backward of a process pays one-time set-up costs
    values.grad = None
    del A

    bwd_times = []
    for _ in range(3):  # backward alone: a fresh forward outside the timed region
        A = enc(values)
        bwd = timed(
            lambda A=A: A.backward(G), repeat=1, warmup=0, min_seconds=0, setup=return_free_memory
        )
        bwd_times.append(bwd)
        values.grad = None
        del A
    result["bwd_s"] = statistics.median(bwd_times)

    def both() -> None:
        enc(values).backward(G)

    result["peak_B"] = peak_memory(both)
    return with_warm_forward(result)


def _volume(argv: list[str]) -> tuple[int, ...]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--volume", default="x".join(map(str, DEFAULT_VOLUME)))
    args, _ = parser.parse_known_args(argv)
    return tuple(int(n) for n in args.volume.lower().split("x"))


def cases(volume: tuple[int, ...]) -> tuple[list[Case], dict[str, str]]:
    out: list[Case] = []
    reference: dict[str, str] = {}
    for radius in (1, 2):
        for layout in ("COO", "CSR"):
            for index in ("int32", "int64"):
                group = f"r={radius} {layout} {index}"
                reference[group] = OLD
                base = {"radius": radius, "layout": layout, "index": index, "volume": volume}
                for method in (TSGU, OLD):
                    out.append(Case(group, method, {**base, "method": method}))
    return out, reference


def _summary(rows: list[dict[str, Any]]) -> None:
    """Notes, then tsgu's CSR / COO peak memory and backward time per radius and index."""
    for row in rows:
        if row.get("note"):
            print(f"{row['group']} / {row['method']}: {row['note']}")
    by = {(r["group"], r["method"]): r for r in rows}
    lines = []
    for radius in (1, 2):
        for index in ("int32", "int64"):
            coo = by.get((f"r={radius} COO {index}", TSGU), {})
            csr = by.get((f"r={radius} CSR {index}", TSGU), {})
            cells = []
            for key in ("peak_B", "bwd_s"):
                a, b = coo.get(key), csr.get(key)
                ok = isinstance(a, float) and isinstance(b, float) and a > 0 and b == b
                cells.append(f"{b / a:.2f}x" if ok else "-")
            lines.append(f"r={radius} {index}: peak mem {cells[0]}, backward time {cells[1]}")
    print("\ntsgu CSR / tsgu COO (target: peak mem at most 1.2x)\n" + "\n".join(lines))


if __name__ == "__main__":
    volume = _volume(sys.argv[1:])
    selected, reference = cases(volume)
    suffix = "" if volume == DEFAULT_VOLUME else "-" + "x".join(map(str, volume))
    time_cols = [
        Column("build_s", "build", "s"),
        Column("fwd_s", "forward", "s"),
        Column("fwd_warm_s", "fwd warm heap", "s"),
        Column("bwd_s", "backward", "s"),
    ]
    rows = run(
        "pairwise_encoder" + suffix,
        selected,
        measure,
        columns=[
            *time_cols,
            Column("peak_B", "peak mem", "B"),
            Column("build_peak_B", "build peak", "B"),
            Column("nnz", "nnz"),
        ],
        reference=reference,
        ratio_of=[*time_cols, Column("peak_B", "peak mem", "B")],
        timeout=1800.0,
        title=f"PairwiseEncoder, volume {'x'.join(map(str, volume))}, indep, float32 "
        "(peak mem: rise during forward + backward after the build)",
    )
    if "--child" not in sys.argv:
        _summary(rows)
