"""The neighbour offsets of a pairwise encoder, in torchsparsegradutils 0.2's order.

An offset is a tuple ``(c, s1, ..., sN)``: the row voxel ``p`` is paired with the column
voxel ``p - offset``. The order defines which slice of the values tensor holds which
relation, so it is part of the public contract: a values tensor made for a 0.2 encoder
works for ours.
"""

from __future__ import annotations

import itertools
import math

Offset = tuple[int, ...]


def spatial_offsets(radius: float, ndim: int) -> list[Offset]:
    """The non-zero integer vectors ``s`` of length ``ndim`` with ``|s|^2 <= radius^2``.

    Compared squared, as 0.2 does (``sqrt(3)`` in 3D leaves ``(1, 1, 1)`` out, since
    ``sqrt(3)**2 < 3`` in floating point).
    """
    reach = math.floor(radius)
    bound = radius * radius
    return [
        s
        for s in itertools.product(range(-reach, reach + 1), repeat=ndim)
        if any(s) and sum(x * x for x in s) <= bound
    ]


def _first_nonzero(offset: Offset) -> int:
    return next((x for x in offset if x != 0), 0)


def _sort_key(offset: Offset) -> tuple[int, tuple[int, ...], tuple[bool, ...]]:
    # 0.2's order: distance with the channel step weighing 10 voxels, then the absolute
    # entries, then the signs (negative before positive).
    c, *s = offset
    return (
        (10 * c) ** 2 + sum(x * x for x in s),
        tuple(abs(x) for x in offset),
        tuple(x >= 0 for x in offset),
    )


def pairwise_offsets(
    radius: float,
    volume_shape: tuple[int, ...],
    diag: bool,
    upper: bool | None,
    relation: str,
) -> list[Offset]:
    """Every offset of an encoder, sorted; the zero offset first when ``diag``.

    ``indep`` pairs voxels of one channel, ``intra`` adds ``(c, 0, ..., 0)`` for
    ``c = 1..C-1`` (same position, other channel), ``inter`` adds ``(c, s)`` for those
    channels and every spatial ``s`` (zero included). ``upper=False`` keeps offsets whose
    first non-zero entry is positive (the strictly lower triangle, row > column),
    ``upper=True`` those whose first non-zero entry is negative (channel steps are never
    negative, so this keeps no channel relation, as in 0.2).
    """
    channels, ndim = volume_shape[0], len(volume_shape) - 1
    spatial = spatial_offsets(radius, ndim)
    zero = (0,) * ndim
    offsets: list[Offset] = [(0, *s) for s in spatial]
    if relation == "intra":
        offsets += [(c, *zero) for c in range(1, channels)]
    elif relation == "inter":
        offsets += [(c, *s) for c in range(1, channels) for s in [zero, *spatial]]
    if upper is not None:
        sign = -1 if upper else 1
        offsets = [o for o in offsets if _first_nonzero(o) * sign > 0]
    offsets.sort(key=_sort_key)
    if diag:
        offsets.insert(0, (0, *zero))
    return offsets
