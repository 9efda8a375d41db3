"""Which kernel multiplies the row groups: torch's grouped GEMM, or a padded batched product.

``grouped``: ``torch.nn.functional.grouped_mm`` (torch >= 2.9; ``torch._grouped_mm`` on
2.8) multiplies every row group by its own matrix in one call, jagged groups given by
int32 offsets. torch 2.13 runs it on the CPU for float32, float16 and bfloat16 (not
float64) and on CUDA (bfloat16 through CUTLASS on sm90; other dtypes and devices as the
installed build allows). Its operands need 16-byte aligned row strides.

``padded``: the groups are cut into tiles of T rows, zero-padded, and multiplied with one
``torch.bmm``; any torch, device and dtype.

Whether the grouped kernel works for a (device, dtype) is probed once, on a tiny problem
with exact integer values, and cached: the supported set differs between torch releases
and builds, and a probe is the only reliable way to know. ``force_path`` pins the choice
(for tests and benchmarks; a :class:`tsgu.core.extend.KernelChoice`); it is internal.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tsgu.core.extend import KernelChoice

__all__ = [
    "GROUPED_MM_PATHS",
    "PATHS",
    "aligned_for_grouped",
    "force_path",
    "forced_path",
    "grouped_kernel",
    "grouped_supported",
]

PATHS = ("grouped", "padded")


def _find_grouped() -> Callable[..., torch.Tensor] | None:
    functional = getattr(torch.nn.functional, "grouped_mm", None)
    if functional is not None:
        return functional
    return getattr(torch, "_grouped_mm", None)


_GROUPED: Callable[..., torch.Tensor] | None = _find_grouped()
_SUPPORT: dict[tuple[str, int | None, torch.dtype], bool] = {}
# Pinned by tests and benchmarks: ``with force_path("padded"): ...``
GROUPED_MM_PATHS = KernelChoice("segment_mm and gather_mm", PATHS)
force_path = GROUPED_MM_PATHS.force
forced_path = GROUPED_MM_PATHS.forced


def grouped_kernel() -> Callable[..., torch.Tensor] | None:
    """torch's grouped GEMM, or None on a torch without one."""
    return _GROUPED


def _probe(device: torch.device, dtype: torch.dtype) -> bool:
    """True when the grouped kernel computes the three products we use exactly right."""
    kernel = _GROUPED
    if kernel is None:
        return False
    gen = torch.Generator().manual_seed(0)

    def ints(*shape: int) -> torch.Tensor:
        # Small integers: every product and sum below is exact in any float dtype.
        return torch.randint(-2, 3, shape, generator=gen).to(device=device, dtype=dtype)

    x, y, w = ints(12, 16), ints(12, 16), ints(3, 16, 16)
    offs = torch.tensor([4, 4, 12], dtype=torch.int32, device=device)
    bounds = [(0, 4), (4, 4), (4, 12)]
    try:
        out = kernel(x, w, offs=offs)
        out_t = kernel(x, w.mT.contiguous(), offs=offs)
        outer = kernel(x.t(), y, offs=offs)
        # A probe over three fixed groups, run once per (device, dtype): not a hot path.
        ref = torch.cat([x[s:e] @ w[r] for r, (s, e) in enumerate(bounds)])
        ref_t = torch.cat([x[s:e] @ w[r].mT for r, (s, e) in enumerate(bounds)])
        ref_outer = torch.stack([x[s:e].t() @ y[s:e] for s, e in bounds])
        return bool(
            torch.equal(out, ref)
            and torch.equal(out_t, ref_t)
            and torch.equal(outer[[0, 2]], ref_outer[[0, 2]])
        )
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False


def grouped_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the grouped kernel runs (and is right) on ``device`` for ``dtype``; cached."""
    key = (device.type, device.index, dtype)
    if key not in _SUPPORT:
        _SUPPORT[key] = _probe(device, dtype)
    return _SUPPORT[key]


def aligned_for_grouped(*dims: int, dtype: torch.dtype) -> bool:
    """Row strides of ``dims`` elements are multiples of 16 bytes (the kernel's TMA rule)."""
    size = torch.empty((), dtype=dtype).element_size()
    return all((d * size) % 16 == 0 for d in dims)
