"""Input checks of tsgu.encoders, built on :mod:`tsgu.core.validation`.

Every check raises before any work, with a message of the form
``"<function>: <argument> must be <expected>, got <actual>[; <fix>]"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from tsgu.core.validation import (
    INDEX_DTYPES,
    check_choice,
    check_dense,
    check_float_dtype,
    check_tensor,
    layout_name,
)

RELATIONS = ("indep", "intra", "inter")
LAYOUTS = (torch.sparse_coo, torch.sparse_csr)


def check_radius(fn: str, radius: object) -> float:
    """A real radius of at least 1 (0.2 refuses smaller ones: they hold no neighbour)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, float)):
        raise TypeError(f"{fn}: radius must be a real number, got {type(radius).__name__}")
    if not math.isfinite(radius) or radius < 1:
        raise ValueError(
            f"{fn}: radius must be a finite number >= 1 (a radius below 1 holds no "
            f"neighbour), got {radius!r}"
        )
    return float(radius)


def check_volume_shape(fn: str, volume_shape: object) -> tuple[int, ...]:
    """``(C, *spatial)``: at least two positive ints."""
    if isinstance(volume_shape, torch.Size):
        volume_shape = tuple(volume_shape)
    if not isinstance(volume_shape, Sequence) or isinstance(volume_shape, str):
        raise TypeError(
            f"{fn}: volume_shape must be a tuple of ints (C, *spatial), "
            f"got {type(volume_shape).__name__}"
        )
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in volume_shape):
        raise TypeError(f"{fn}: volume_shape must hold ints, got {tuple(volume_shape)!r}")
    if len(volume_shape) < 2 or min(volume_shape) < 1:
        raise ValueError(
            f"{fn}: volume_shape must be (C, *spatial) with at least one spatial dimension "
            f"and every size >= 1, got {tuple(volume_shape)!r}; e.g. (1, 64, 64) for one "
            "channel of a 64 x 64 image"
        )
    return tuple(volume_shape)


def check_options(
    fn: str,
    volume_shape: tuple[int, ...],
    diag: object,
    upper: object,
    channel_voxel_relation: object,
) -> None:
    """``diag`` a bool, ``upper`` None or a bool, a known relation that fits the channels."""
    if not isinstance(diag, bool):
        raise TypeError(f"{fn}: diag must be a bool, got {type(diag).__name__}")
    if upper is not None and not isinstance(upper, bool):
        raise TypeError(f"{fn}: upper must be None, True or False, got {type(upper).__name__}")
    check_choice(fn, "channel_voxel_relation", channel_voxel_relation, RELATIONS)
    if channel_voxel_relation != "indep" and volume_shape[0] == 1:
        raise ValueError(
            f"{fn}: channel_voxel_relation must be 'indep' for a single channel, "
            f"got {channel_voxel_relation!r} with volume_shape {volume_shape!r}"
        )


def check_layout(fn: str, layout: object) -> torch.layout:
    """``torch.sparse_coo`` or ``torch.sparse_csr``."""
    if layout not in LAYOUTS:
        got = layout_name(layout) if isinstance(layout, torch.layout) else repr(layout)
        raise ValueError(f"{fn}: layout must be torch.sparse_coo or torch.sparse_csr, got {got}")
    assert isinstance(layout, torch.layout)
    return layout


def check_index_dtype_arg(fn: str, name: str, dtype: object) -> torch.dtype:
    """``torch.int32`` or ``torch.int64``."""
    if dtype not in INDEX_DTYPES:
        raise ValueError(f"{fn}: {name} must be torch.int32 or torch.int64, got {dtype!r}")
    assert isinstance(dtype, torch.dtype)
    return dtype


def check_device(fn: str, device: object) -> torch.device:
    """Anything ``torch.device`` takes: a string, an int or a device."""
    if device is None:
        return torch.empty(0).device  # torch's default device, as torch.arange(device=None)
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise TypeError(
            f"{fn}: device must be a str, int or torch.device, got {type(device).__name__}"
        )
    try:
        return torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{fn}: device must name a torch device, got {device!r}") from err


def check_values(
    fn: str,
    values: object,
    expected: tuple[int, ...],
    device: torch.device,
) -> torch.Tensor:
    """``values`` dense float ``expected`` or ``(B, *expected)`` on ``device``."""
    check_tensor(fn, "values", values)
    ndim = len(expected)
    t = check_dense(fn, "values", values, dims=(ndim, ndim + 1))
    if tuple(t.shape[-ndim:]) != expected:
        raise ValueError(
            f"{fn}: values must have shape (N_offsets, C, *spatial) = {expected} or "
            f"(B, {', '.join(map(str, expected))}), got {tuple(t.shape)}; "
            f"N_offsets = len(encoder.offsets) = {expected[0]}"
        )
    if t.dim() == ndim + 1 and t.shape[0] == 0:
        raise ValueError(
            f"{fn}: values must have a batch of at least one item, got shape {tuple(t.shape)}; "
            "a batch of none makes no sparse tensor (torch's batched layouts need b >= 1)"
        )
    check_float_dtype(fn, "values", t)
    if t.device != device:
        raise ValueError(
            f"{fn}: values must be on the encoder's device {device}, got {t.device}; "
            f"move one with encoder.to({t.device}) or values.to({device})"
        )
    return t
