"""``calc_pairwise_coo_indices_nd``: the voxel pairs of every offset, one tensor each."""

from __future__ import annotations

import math

import torch

from tsgu.core.extend import INT32_MAX

from ._build import strides
from ._offsets import Offset, pairwise_offsets
from ._validate import (
    check_device,
    check_index_dtype_arg,
    check_options,
    check_radius,
    check_volume_shape,
)

__all__ = ["calc_pairwise_coo_indices_nd"]


def _pairs(
    offset: Offset,
    volume_shape: tuple[int, ...],
    stride: list[int],
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor:
    """``(2, M)``: rows ``p`` (ascending) and columns ``p - offset`` inside the volume."""
    rows = torch.zeros((), dtype=torch.int64, device=device)
    # The valid p form a box: p_d in [max(0, o_d), n_d + min(0, o_d)) in every dimension;
    # its C-order enumeration is the broadcast sum of one range per dimension.
    for n, o, st in zip(volume_shape, offset, stride, strict=True):
        lo, hi = max(0, o), n + min(0, o)
        axis = torch.arange(lo, max(lo, hi), device=device) * st
        rows = rows[..., None] + axis
    rows = rows.reshape(-1)
    shift = sum(o * st for o, st in zip(offset, stride, strict=True))
    return torch.stack([rows, rows - shift]).to(dtype)


def calc_pairwise_coo_indices_nd(
    radius: float,
    volume_shape: tuple[int, ...],
    diag: bool = False,
    upper: bool | None = None,
    channel_voxel_relation: str = "indep",
    dtype: torch.dtype = torch.int64,
    device: torch.device | str | None = torch.device("cpu"),  # noqa: B008 (0.2's default)
) -> dict[tuple[int, ...], torch.Tensor]:
    """The ``(row, column)`` voxel pairs of every offset of a pairwise encoder.

    Same signature, offsets, order and contents as torchsparsegradutils 0.2's function of
    this name.

    Parameters
    ----------
    radius : float
        Spatial neighbourhood radius, ``>= 1``: the spatial offsets are the non-zero
        integer vectors ``s`` with ``s1² + ... + sN² <= radius²``.
    volume_shape : tuple of int
        ``(C, *spatial)`` with one or more spatial dimensions.
    diag : bool
        Include the zero offset (the diagonal), first.
    upper : bool or None
        ``False``: offsets whose first non-zero entry is positive (strictly lower
        triangle); ``True``: first non-zero entry negative (strictly upper triangle, no
        channel offsets); ``None``: all.
    channel_voxel_relation : {"indep", "intra", "inter"}
        ``indep``: only ``(0, *s)``; ``intra``: also ``(c, 0, ..., 0)`` for
        ``c = 1..C-1``; ``inter``: also ``(c, *s)`` for those ``c`` and every ``s``
        (zero included).
    dtype : torch.dtype
        ``torch.int64`` or ``torch.int32``.
    device : torch.device, str or None
        Where the index tensors live (``None``: torch's default device).

    Returns
    -------
    dict of tuple to torch.Tensor
        ``{offset: indices}`` in the encoder's offset order; ``indices`` is ``(2, M)``,
        rows ``p`` ascending and columns ``p - offset``, for every voxel ``p`` with
        ``p - offset`` inside the volume (voxels numbered in C order over
        ``volume_shape``).

    Raises
    ------
    TypeError
        A radius that is not a number; a volume_shape that is not a sequence of ints; a
        non-bool ``diag`` or ``upper``; a device of the wrong type.
    ValueError
        ``radius < 1``; a volume_shape without spatial dimensions or with a size below 1;
        an unknown relation, or a relation other than ``indep`` for one channel; an index
        dtype other than int32/int64; sizes that do not fit int32.

    Notes
    -----
    Offsets are sorted by ``((10 c)² + |s|², |offset| entries, signs)``, with the zero
    offset first when ``diag``. Offset ``o`` holds ``prod_d max(n_d - |o_d|, 0)`` pairs.

    Examples
    --------
    >>> import torch
    >>> from tsgu.encoders import calc_pairwise_coo_indices_nd
    >>> pairs = calc_pairwise_coo_indices_nd(1, (1, 3), upper=False)
    >>> pairs
    {(0, 1): tensor([[1, 2],
            [0, 1]])}
    """
    fn = "calc_pairwise_coo_indices_nd"
    radius = check_radius(fn, radius)
    volume_shape = check_volume_shape(fn, volume_shape)
    check_options(fn, volume_shape, diag, upper, channel_voxel_relation)
    dtype = check_index_dtype_arg(fn, "dtype", dtype)
    where = check_device(fn, device)
    offsets = pairwise_offsets(radius, volume_shape, diag, upper, str(channel_voxel_relation))
    if dtype == torch.int32 and math.prod(volume_shape) > INT32_MAX:
        raise ValueError(
            f"{fn}: dtype torch.int32 cannot index a volume of {volume_shape} voxels; "
            "use dtype=torch.int64"
        )
    stride = strides(volume_shape)
    # One tensor per offset is the return contract; each is built vectorised.
    return {o: _pairs(o, volume_shape, stride, dtype, where) for o in offsets}
