"""The one gather of a call, done block by block of rows so that it reads the cache well.

Entry ``e`` of the pattern (row ``p``, offset ``k``) takes ``values[k][p]``. In row-major
order the gather reads the K slices of ``values`` side by side, K streams ``V`` elements
apart. When ``V`` is a multiple of 1024 (a 64³ volume) those streams start at the same
offset modulo 4 KiB, land in the same cache sets and evict each other on every read: a
plain ``index_select`` at radius 2 (K = 32) runs about three times slower than the same
gather from a layout whose slices are staggered.

So the gather walks the rows in blocks of ``rows``: it copies the block's K slices (one
sequential copy) into a small scratch whose slices are ``width`` apart (``width`` is 16
elements past a multiple of 1024, which staggers them), and gathers the block's entries
from there. The scratch is a few MiB, reused by every block and stays in cache; the index
stored per entry is its position in that scratch, ``k * width + p % rows``. The backward
is the mirror image (a scatter into a zeroed scratch, then a copy back), and each one's
derivative is the other, so double backward works.

No value is used twice (each lands in at most one entry), so the backward is a plain copy
(``index_copy_``) rather than the summing ``index_add_`` of ``index_select``'s gradient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

# Rows per block aim at a scratch of about this many elements. On the CPU 2 MiB in
# float32: it and the block's slice of the output fit in L2/L3 together. On a GPU, where
# the side-by-side reads do not conflict and every block costs kernel launches, 64 MiB: a
# volume takes a few blocks.
_SCRATCH_ELEMENTS = 2**19
_SCRATCH_ELEMENTS_GPU = 2**24


@dataclass(frozen=True)
class RowBlocks:
    """How the gather cuts the volume's rows into blocks.

    Block ``c`` holds rows ``[c * rows, min((c + 1) * rows, voxels))`` and the pattern's
    entries ``[bounds[c], bounds[c + 1])``; its values are gathered from a ``(K, width)``
    scratch.
    """

    num_offsets: int
    voxels: int
    rows: int
    width: int
    bounds: tuple[int, ...]


def _largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (pairs up to sqrt(n))."""
    best = 1
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            best = max([best, *(c for c in (d, n // d) if c <= limit)])
    return best


def block_shape(
    num_offsets: int, volume_shape: tuple[int, ...], device_type: str = "cpu"
) -> tuple[int, int]:
    """``(rows, width)`` of the blocks for K offsets over ``volume_shape``.

    ``rows`` is a multiple of the last dimension's length ``n`` or a divisor of it, so
    that a row's position in its block is ``line % rows + x % rows`` (``line`` the start
    of its line along the last dimension, ``x`` its coordinate there), which the pattern
    build computes per line, not per entry. Blocks are larger off the CPU
    (``device_type``).
    """
    last = volume_shape[-1]
    elements = _SCRATCH_ELEMENTS if device_type == "cpu" else _SCRATCH_ELEMENTS_GPU
    target = max(1, elements // max(num_offsets, 1))
    if last <= target:
        rows = last * (target // last)
    else:
        divisor = _largest_divisor(last, target)
        # a long prime-ish line: one line per block (a bigger scratch) beats tiny blocks
        rows = divisor if divisor * 8 >= target else last
    rows = min(rows, max(1, math.prod(volume_shape)))
    width = rows + (16 - rows) % 1024
    return rows, width


def row_blocks(
    num_offsets: int, volume_shape: tuple[int, ...], crow_indices: torch.Tensor
) -> RowBlocks:
    """The blocks of a pattern whose row pointers are ``crow_indices`` (on the device the
    blocks are sized for)."""
    rows, width = block_shape(num_offsets, volume_shape, crow_indices.device.type)
    voxels = crow_indices.numel() - 1
    starts = torch.arange(0, voxels + rows, rows, device=crow_indices.device).clamp_(max=voxels)
    bounds = crow_indices.index_select(0, starts).tolist()
    return RowBlocks(num_offsets, voxels, rows, width, tuple(bounds))


def _blocks(blocks: RowBlocks) -> Iterator[tuple[int, int, int, int]]:
    """``(first row, row count, first entry, end entry)`` per block."""
    for c, (a, b) in enumerate(itertools.pairwise(blocks.bounds)):
        first = c * blocks.rows
        yield first, min(blocks.rows, blocks.voxels - first), a, b


def _gather_blocks(values: torch.Tensor, index: torch.Tensor, blocks: RowBlocks) -> torch.Tensor:
    """``(B, K * V) -> (B, nnz)``, block by block."""
    batch = values.shape[0]
    src = values.view(batch, blocks.num_offsets, blocks.voxels)
    # Zeroed first: faulting the fresh pages in one parallel memset costs less than
    # faulting them inside the gather (radius 2 on 4 x 64³: forward 97 -> 58 ms).
    out = values.new_zeros((batch, index.numel()))
    scratch = values.new_empty((batch, blocks.num_offsets, blocks.width))
    flat_scratch = scratch.view(batch, -1)
    for first, count, a, b in _blocks(blocks):
        if a == b:
            continue
        scratch[:, :, :count].copy_(src[:, :, first : first + count])
        if batch == 1:
            torch.index_select(flat_scratch[0], 0, index[a:b], out=out[0, a:b])
        else:
            out[:, a:b] = flat_scratch.index_select(1, index[a:b])
    return out


def _scatter_blocks(grad: torch.Tensor, index: torch.Tensor, blocks: RowBlocks) -> torch.Tensor:
    """``(B, nnz) -> (B, K * V)``, the transpose of :func:`_gather_blocks`; unused values
    get zero."""
    batch = grad.shape[0]
    out = grad.new_empty((batch, blocks.num_offsets, blocks.voxels))
    scratch = grad.new_empty((batch, blocks.num_offsets, blocks.width))
    flat_scratch = scratch.view(batch, -1)
    for first, count, a, b in _blocks(blocks):
        scratch.zero_()
        flat_scratch.index_copy_(1, index[a:b].long(), grad[:, a:b])  # needs int64
        out[:, :, first : first + count].copy_(scratch[:, :, :count])
    return out.view(batch, -1)


_BlockFn = Callable[[torch.Tensor, torch.Tensor, RowBlocks], torch.Tensor]


def _batched(fn: _BlockFn, x: torch.Tensor, index: torch.Tensor, blocks: RowBlocks) -> torch.Tensor:
    """Apply a ``(B, n) -> (B, m)`` block function to ``(n,)`` or ``(B, n)``."""
    with torch.no_grad():
        if x.dim() == 1:
            return fn(x.unsqueeze(0).contiguous(), index, blocks)[0]
        return fn(x.contiguous(), index, blocks)


class _BlockMap(torch.autograd.Function):
    """The gather (``transpose=False``) or its transpose, the scatter; each one's derivative
    is the other."""

    @staticmethod
    def forward(
        x: torch.Tensor, index: torch.Tensor, blocks: RowBlocks, transpose: bool
    ) -> torch.Tensor:
        return _batched(_scatter_blocks if transpose else _gather_blocks, x, index, blocks)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        _, index, ctx.blocks, ctx.transpose = inputs
        ctx.save_for_backward(index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (index,) = ctx.saved_tensors
        out: torch.Tensor = _BlockMap.apply(grad, index, ctx.blocks, not ctx.transpose)
        return out, None, None, None


def gather(values: torch.Tensor, index: torch.Tensor, blocks: RowBlocks) -> torch.Tensor:
    """The pattern's values from ``values`` of shape ``(K * V,)`` or ``(B, K * V)``.

    ``index`` (int32 or int64) holds each entry's position in its block's scratch (see the module
    docstring); the result is ``(nnz,)`` or ``(B, nnz)``, with an O(nnz) backward.
    """
    if not values.requires_grad:
        return _batched(_gather_blocks, values, index, blocks)
    out: torch.Tensor = _BlockMap.apply(values, index, blocks, False)
    return out
