"""Input checks of segment_mm and gather_mm, built on tsgu.core.validation.

Every check runs before any work. Wrong types and layouts raise TypeError; ranks, sizes,
dtypes, devices and index values raise ValueError, naming the function and the argument.
The value checks (lengths summing to N, indices in range) read the index tensor once on
the host: one device synchronisation when it lives on a GPU.
"""

from __future__ import annotations

import torch

from tsgu.core.validation import check_dense, check_index_dtype, check_same_device

__all__ = ["VALUE_DTYPES", "check_gather", "check_operands", "check_segment"]

# float16/bfloat16 are meant for CUDA; they are accepted on the CPU too (both paths run there).
VALUE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_operands(fn: str, a: object, b: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` dense ``(N, D1)`` and ``b`` dense ``(R, D1, D2)``, same float dtype and device."""
    a = check_dense(fn, "a", a, dims=(2,))
    b = check_dense(fn, "b", b, dims=(3,))
    if a.dtype not in VALUE_DTYPES:
        raise ValueError(
            f"{fn}: a must have dtype float32, float64, float16 or bfloat16, got {a.dtype}"
        )
    if b.dtype != a.dtype:
        raise ValueError(
            f"{fn}: b must have the dtype of a ({a.dtype}), got {b.dtype}; "
            f"cast it with b.to({a.dtype})"
        )
    check_same_device(fn, ("a", "b"), a, b)
    if b.shape[1] != a.shape[1]:
        raise ValueError(
            f"{fn}: b must have shape (R, D1, D2) with D1 = a.shape[1] = {a.shape[1]}, "
            f"got b of shape {tuple(b.shape)}"
        )
    return a, b


def _check_index(
    fn: str, name: str, value: object, length: int, what: str, device: torch.device
) -> torch.Tensor:
    t = check_dense(fn, name, value, dims=(1,))
    check_index_dtype(fn, name, t)
    if t.shape[0] != length:
        raise ValueError(f"{fn}: {name} must have {what}, got shape {tuple(t.shape)}")
    if t.device.type != "cpu" and t.device != device:
        raise ValueError(
            f"{fn}: {name} must be on the CPU or on a's device ({device}), got {t.device}"
        )
    return t


def check_segment(
    a: object, b: object, seglen_a: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checks of ``segment_mm``; returns ``a``, ``b`` and the lengths as int64 on the CPU."""
    fn = "segment_mm"
    a, b = check_operands(fn, a, b)
    R, N = b.shape[0], a.shape[0]
    seglen = _check_index(fn, "seglen_a", seglen_a, R, f"R = b.shape[0] = {R} entries", a.device)
    host = seglen.detach().to("cpu", torch.int64)  # the one host read of the lengths
    if R and bool((host < 0).any()):
        first = int(torch.nonzero(host < 0)[0, 0])
        raise ValueError(
            f"{fn}: seglen_a must hold non-negative lengths, "
            f"got {int(host[first])} at index {first}"
        )
    total = int(host.sum())
    if total != N:
        raise ValueError(f"{fn}: seglen_a must sum to N = a.shape[0] = {N}, got a sum of {total}")
    return a, b, host


def check_gather(
    a: object, b: object, idx_b: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Checks of ``gather_mm``; returns ``a``, ``b``, the indices as int64 on a's device, and
    whether they are already sorted (then no permutation is needed)."""
    fn = "gather_mm"
    a, b = check_operands(fn, a, b)
    R, N = b.shape[0], a.shape[0]
    idx = _check_index(fn, "idx_b", idx_b, N, f"N = a.shape[0] = {N} entries", a.device)
    idx = idx.detach().to(a.device, torch.int64)
    if N == 0:
        return a, b, idx, True
    # min, max and sortedness in one host read
    lo, hi, unsorted = torch.stack(
        [idx.min(), idx.max(), (idx[1:] < idx[:-1]).any().to(torch.int64)]
    ).tolist()
    if lo < 0 or hi >= R:
        raise ValueError(
            f"{fn}: idx_b must hold indices in [0, R) = [0, {R}) with R = b.shape[0], "
            f"got values from {lo} to {hi}"
        )
    return a, b, idx, not unsorted
