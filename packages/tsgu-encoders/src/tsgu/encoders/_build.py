"""The sparsity pattern of a pairwise encoder, built once, in row-major (CSR) order.

Voxels are numbered in C order over ``(C, *spatial)``. Offset ``o`` pairs row voxel ``p``
with column voxel ``p - o`` wherever ``p - o`` lies inside the volume, and the entry
takes ``values[k][p]`` (k the offset's position). Inside the volume the linear index of
``p - o`` is ``lin(p) - lin(o)`` with ``lin(o) = sum_d o_d * stride_d``, so within one
row the columns ascend as ``lin(o)`` descends: visiting the offsets in that order makes
every row come out sorted, and the whole pattern is row-major and duplicate-free with no
sort at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._offsets import Offset

# Bound on (rows x offsets) cells per chunk of the build: the validity mask and the
# chunk's temporaries stay within a few tens of MB whatever the volume.
_CHUNK_CELLS = 1 << 22
INT32_MAX = 2**31 - 1


def strides(volume_shape: tuple[int, ...]) -> list[int]:
    """C-order strides (in voxels) of ``volume_shape``."""
    out = [1] * len(volume_shape)
    for d in range(len(volume_shape) - 2, -1, -1):
        out[d] = out[d + 1] * volume_shape[d + 1]
    return out


def pairs_of(offset: Offset, volume_shape: tuple[int, ...]) -> int:
    """How many voxels ``p`` have ``p - offset`` inside the volume."""
    return math.prod(max(n - abs(o), 0) for n, o in zip(volume_shape, offset, strict=True))


def count_pairs(offsets: list[Offset], volume_shape: tuple[int, ...]) -> int:
    """The number of stored entries of the encoder's matrix (known before any build)."""
    return sum(pairs_of(o, volume_shape) for o in offsets)


@dataclass
class RowMajorPattern:
    """The matrix pattern in row-major order.

    ``crow`` (V + 1) and ``cols`` (nnz) are the CSR indices; ``coo`` (only when asked
    for) the ``(2, nnz)`` int64 rows and columns, whose second row is ``cols``;
    ``value_index[e]`` is the position of entry ``e``'s value in ``values.reshape(K * V)``,
    i.e. ``k * V + row``.
    """

    crow: torch.Tensor
    cols: torch.Tensor
    value_index: torch.Tensor
    coo: torch.Tensor | None = None


def _row_classes(
    table: torch.Tensor, volume_shape: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows with the same valid offsets share a class: ``(class of each row, valid[class])``.

    Along dimension d, offset o is valid at coordinate x when ``o_d <= x < n_d + o_d``;
    only coordinates within ``max |o_d|`` of an edge differ from the interior, so each
    dimension has few distinct validity rows and the volume has at most their product of
    classes (never more than V). ``valid`` is ``(classes, K)`` bool.
    """
    nk = table.shape[0]
    classes = torch.zeros((), dtype=torch.int64, device=device)
    valid = torch.ones(1, nk, dtype=torch.bool, device=device)
    for d, n in enumerate(volume_shape):
        x = torch.arange(n, device=device)[:, None]
        along = (x >= table[:, d]) & (x < n + table[:, d])  # (n_d, K)
        distinct, which = torch.unique(along, dim=0, return_inverse=True)
        classes = classes[..., None] * distinct.shape[0] + which
        valid = (valid[:, None, :] & distinct[None, :, :]).reshape(-1, nk)
    return classes.reshape(-1), valid


def row_major_pattern(
    offsets: list[Offset],
    volume_shape: tuple[int, ...],
    *,
    index_dtype: torch.dtype,
    value_index_dtype: torch.dtype,
    device: torch.device,
    with_coo: bool = False,
) -> RowMajorPattern:
    """Build the pattern in O(V·K) elementwise work and O(nnz) memory, with no sort.

    ``crow`` and ``cols`` come in ``index_dtype``, ``value_index`` in ``value_index_dtype``
    (the caller checks that the sizes fit). ``with_coo`` also fills ``coo``, the int64
    ``(2, nnz)`` COO indices.
    """
    nvox = math.prod(volume_shape)
    nnz = count_pairs(offsets, volume_shape)
    crow = torch.zeros(nvox + 1, dtype=index_dtype, device=device)
    coo: torch.Tensor | None = None
    if with_coo:
        coo = torch.empty((2, nnz), dtype=torch.int64, device=device)
        cols = coo[1]
    else:
        cols = torch.empty(nnz, dtype=index_dtype, device=device)
    value_index = torch.empty(nnz, dtype=value_index_dtype, device=device)
    pattern = RowMajorPattern(crow, cols, value_index, coo)
    if nnz == 0:
        return pattern

    stride = strides(volume_shape)
    table = torch.tensor(offsets, dtype=torch.int64, device=device)  # (K, D)
    lin = table @ torch.tensor(stride, dtype=torch.int64, device=device)
    order = torch.argsort(lin, descending=True, stable=True)  # ascending columns in a row
    table, lin = table[order], lin[order]
    first_value = order * nvox  # where offset slice k starts in values.reshape(K * V)

    row_class, valid = _row_classes(table, volume_shape, device)
    ends = torch.cumsum(valid.sum(1).index_select(0, row_class), 0)
    crow[1:] = ends

    # A loop over memory-bounded chunks of rows, each one vectorised over rows x offsets.
    chunk = max(1, _CHUNK_CELLS // len(offsets))
    for start in range(0, nvox, chunk):
        stop = min(start + chunk, nvox)
        first = int(ends[start - 1]) if start else 0
        last = int(ends[stop - 1])
        mask = valid.index_select(0, row_class[start:stop])  # (rows, K), one gather
        local, kk = mask.nonzero(as_tuple=True)  # row-major: rows, then ascending columns
        del mask
        row = local.add_(start)
        torch.sub(row, lin.index_select(0, kk), out=cols[first:last])
        torch.add(row, first_value.index_select(0, kk), out=value_index[first:last])
        if coo is not None:
            coo[0, first:last] = row
    return pattern
