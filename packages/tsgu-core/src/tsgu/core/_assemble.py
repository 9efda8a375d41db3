"""A sparse COO or CSR tensor from the sorted linear positions of its entries.

Operations whose result has a new pattern (``sparse_add``'s union, ``sparse_mm``'s symbolic
product) compute that pattern as sorted, unique linear positions ``batch*n*m + row*m + col``
and hand them here: the index tensors of the requested layout and index dtype come back,
with where each position's value goes.

A batched CSR tensor stores the same nnz for every batch item (torch's rule). When the items'
patterns differ in size, every item gets the union of the items' patterns, the entries absent
from an item stored as explicit zeros (which no gradient reaches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._pattern import Pattern, _compress, from_values, index_dtype_for
from .validation import COO


def assemble(
    keys: torch.Tensor,
    shape: tuple[int, ...],
    layout: torch.layout,
    index_dtype: torch.dtype,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None, int]:
    """``(index_tensors, slot, nnz)`` of the tensor with entries at sorted unique ``keys``.

    The value of ``keys[k]`` goes to position ``slot[k]`` of the flat values (``slot`` is
    ``None`` when it is ``k`` itself); ``nnz`` is the number of stored values over the batch.
    COO indices are int64 (torch's rule) and coalesced; CSR ones have ``index_dtype`` (int64
    where int32 would not hold them).
    """
    n, m = shape[-2], shape[-1]
    batched = len(shape) == 3
    b = shape[0] if batched else 1
    nnz = keys.numel()
    if layout == COO:
        local = keys % (n * m)
        parts = [local // m, local % m]
        if batched:
            parts.insert(0, keys // (n * m))
        return (torch.stack(parts),), None, nnz
    if not batched:
        dtype = index_dtype_for(nnz, m, n, preferred=index_dtype)
        crow = _compress(keys // m, n, dtype)
        return (crow, (keys % m).to(dtype)), None, nnz
    batch = keys // (n * m)
    counts = torch.bincount(batch, minlength=b)
    slot: torch.Tensor | None = None
    if nnz and not bool((counts == counts[0]).all()):
        # items of different sizes: every item stores the union of the items' patterns
        local = keys % (n * m)
        union = torch.unique(local, sorted=True)
        slot = batch * union.numel() + torch.searchsorted(union, local)
        keys = (torch.arange(b, device=keys.device)[:, None] * (n * m) + union).reshape(-1)
        nnz = keys.numel()
    per_item = nnz // b if b else 0
    dtype = index_dtype_for(per_item, m, n, preferred=index_dtype)
    folded_rows = keys // m  # batch*n + row
    crow = _compress(folded_rows, b * n, torch.int64)
    heads = crow[:-1].reshape(b, n) - torch.arange(b, device=keys.device)[:, None] * per_item
    tails = torch.full((b, 1), per_item, dtype=torch.int64, device=keys.device)
    crow = torch.cat([heads, tails], dim=1).to(dtype)
    col = (keys % m).reshape(b, per_item).to(dtype)
    return (crow, col), slot, nnz


def build(
    index_tensors: tuple[torch.Tensor, ...],
    values: torch.Tensor,
    shape: tuple[int, ...],
    layout: torch.layout,
) -> torch.Tensor:
    """The sparse tensor (no autograd link) holding ``values`` at ``index_tensors``."""
    if layout == COO:
        (indices,) = index_tensors
        return torch.sparse_coo_tensor(indices, values, shape, is_coalesced=True)
    crow, col = index_tensors
    return torch.sparse_csr_tensor(
        crow, col, values.reshape(col.shape), shape, check_invariants=False
    )


@dataclass
class Output:
    """A result pattern kept between calls: its index tensors, where its values go
    (``slot``, or None when they arrive in order), and its :class:`Pattern`."""

    index_tensors: tuple[torch.Tensor, ...]
    slot: torch.Tensor | None
    nnz: int
    shape: tuple[int, ...]
    layout: torch.layout
    pattern: Pattern | None = None  # made from the first result that needs it

    def attach(self, values: torch.Tensor) -> torch.Tensor:
        """The sparse tensor holding ``values`` (at the slots), wired to them for autograd."""
        if self.slot is not None:
            values = values.new_zeros(self.nnz).index_add(0, self.slot, values)
        raw = build(self.index_tensors, values.detach(), self.shape, self.layout)
        if not values.requires_grad:
            return raw
        if self.pattern is None:
            self.pattern = Pattern.of(raw)
        return from_values(self.pattern, values)
