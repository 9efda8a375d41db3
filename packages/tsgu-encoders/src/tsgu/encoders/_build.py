"""The sparsity pattern of a pairwise encoder, built once, in row-major (CSR) order.

Voxels are numbered in C order over ``(C, *spatial)``. Offset ``o`` pairs row voxel ``p``
with column voxel ``p - o`` wherever ``p - o`` lies inside the volume, and the entry
takes ``values[k][p]`` (k the offset's position). Inside the volume the linear index of
``p - o`` is ``lin(p) - lin(o)`` with ``lin(o) = sum_d o_d * stride_d``, so within one
row the columns ascend as ``lin(o)`` descends: visiting the offsets in that order makes
every row come out sorted, and the whole pattern is row-major and duplicate-free with no
sort at all.

Where each row's entries go needs no search either. Along dimension d, offset o is valid
at coordinate x when ``o_d <= x < n_d + o_d``: coordinates near an edge each have their
own set of valid offsets, the interior shares one. Cutting every dimension into runs of
equal validity cuts the volume into blocks whose rows all hold the same offsets; inside a
block, a row's first entry lies at an affine function of its coordinates (a step along
dimension d passes a slab of rows whose entry count does not depend on where the step
starts). So each block is written with one broadcast through a strided view of the
output, whose inner loop is a contiguous run: one pass over the output per array.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from ._offsets import Offset


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
    ``value_index[e]`` is where entry ``e``'s value (``values[k][row]``) lies in the
    gather's block scratch, ``k * width + row % rows`` (see ``_gather``).
    """

    crow: torch.Tensor
    cols: torch.Tensor
    value_index: torch.Tensor
    coo: torch.Tensor | None = None


def _runs(along: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
    """Maximal runs ``[a, b)`` of coordinates with equal validity rows ``along[a]`` (K,)."""
    change = (along[1:] != along[:-1]).any(1).nonzero().reshape(-1).tolist()
    bounds = [0, *(c + 1 for c in change), along.shape[0]]
    return [(a, b, along[a]) for a, b in itertools.pairwise(bounds)]


def row_major_pattern(
    offsets: list[Offset],
    volume_shape: tuple[int, ...],
    *,
    index_dtype: torch.dtype,
    value_index_dtype: torch.dtype,
    device: torch.device,
    block_rows: int,
    block_width: int,
    with_coo: bool = False,
) -> RowMajorPattern:
    """Build the pattern with no sort: one strided broadcast per block and array.

    ``crow`` and ``cols`` come in ``index_dtype``, ``value_index`` in ``value_index_dtype``
    (the caller checks that the sizes fit), for blocks of ``block_rows`` rows gathered
    from a scratch ``block_width`` wide (``block_rows`` a multiple or a divisor of the last
    dimension's length). ``with_coo`` also fills ``coo``, the int64
    ``(2, nnz)`` COO indices.

    Notes
    -----
    Entry j of row p, in a block with corner ``q``, sizes ``m_d``, offsets ``L`` (columns
    ascending) and row-start steps ``S_d``, sits at
    ``start(q) + sum_{d < D-1} (p_d - q_d) S_d + (p_last - q_last) |L| + j``.
    Blocks number at most ``prod_d min(n_d, 2 reach_d + 1)``, the loop below runs over
    them (a few hundred for a radius-2 3D volume), each step vectorised over its rows.
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

    # The offsets in column order (descending linear shift), on the CPU: small tables.
    stride = strides(volume_shape)
    table = torch.tensor(offsets, dtype=torch.int64)  # (K, D)
    shift = table @ torch.tensor(stride, dtype=torch.int64)
    order = torch.argsort(shift, descending=True, stable=True)
    table, shift = table[order], shift[order]
    runs = []
    for d, n in enumerate(volume_shape):
        x = torch.arange(n)[:, None]
        runs.append(_runs((x >= table[:, d]) & (x < n + table[:, d])))
    blocks = []
    for combo in itertools.product(*runs):
        valid = combo[0][2]
        for run in combo[1:]:
            valid = valid & run[2]
        listed = valid.nonzero().reshape(-1)
        if listed.numel():
            blocks.append(([(a, b) for a, b, _ in combo], listed))

    # Entries per row, block by block (a strided fill of the V-long counts; rows of a
    # block without a valid offset stay 0), then crow.
    counts = torch.zeros(nvox, dtype=torch.int64, device=device)
    for ranges, listed in blocks:
        corner = sum(a * st for (a, _), st in zip(ranges, stride, strict=True))
        counts.as_strided([b - a for a, b in ranges], stride, corner).fill_(listed.numel())
    ends = torch.cumsum(counts, 0)
    crow[1:] = ends
    # The row starts each block needs (its corner, and one step along each dimension),
    # fetched in one gather.
    corners = [sum(a * st for (a, _), st in zip(r, stride, strict=True)) for r, _ in blocks]
    wanted = sorted(
        {c for c in corners}
        | {
            c + st
            for (ranges, _), c in zip(blocks, corners, strict=True)
            for (a, b), st in zip(ranges[:-1], stride[:-1], strict=True)
            if b - a > 1
        }
    )
    at = torch.tensor(wanted, dtype=torch.int64, device=device)
    found = (ends - counts).index_select(0, at).tolist()
    start_of = dict(zip(wanted, found, strict=True))
    del counts, ends

    shift_dev = shift.to(device)
    first_value = (order * block_width).to(device)  # where slice k starts in the scratch
    targets = [(cols, "cols"), (value_index, "value_index")]
    if coo is not None:
        targets.append((coo[0], "rows"))
    for (ranges, listed), corner in zip(blocks, corners, strict=True):
        nk = listed.numel()
        base = start_of[corner]
        steps = [
            start_of[corner + st] - base if b - a > 1 else 0
            for (a, b), st in zip(ranges[:-1], stride[:-1], strict=True)
        ]
        (a_x, b_x) = ranges[-1]
        shape = (*(b - a for a, b in ranges[:-1]), (b_x - a_x) * nk)
        layout = (*steps, 1)
        # first voxel of every line of the block, shape ranges[:-1] + (1,)
        line = torch.zeros((), dtype=torch.int64, device=device)
        for (a, b), st in zip(ranges[:-1], stride[:-1], strict=True):
            line = line[..., None] + torch.arange(a, b, device=device) * st
        line = line[..., None]
        # a row's place in its gather block: line % rows + x % rows, as rows is a multiple
        # or a divisor of the last dimension's length
        line_in_block = line % block_rows
        x = torch.arange(a_x, b_x, device=device)[:, None]
        ks = listed.to(device)
        for out, what in targets:
            if what == "cols":
                template = x - shift_dev.index_select(0, ks)
            elif what == "value_index":
                template = x % block_rows + first_value.index_select(0, ks)
            else:
                template = x.expand(-1, nk)
            view = out.as_strided(shape, layout, out.storage_offset() + base)
            start = line_in_block if what == "value_index" else line
            if out.dtype != torch.int64:
                torch.add(start.to(out.dtype), template.reshape(-1).to(out.dtype), out=view)
            else:
                torch.add(start, template.reshape(-1), out=view)
    return pattern
