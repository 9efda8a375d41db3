"""The sparse triangular factor of a distribution: its pattern, values, diagonal and transpose.

A :class:`SparseFactor` does the index work once, when a distribution is built: the row,
column and batch item of every stored value, where the diagonal entries sit, and the
permutation that lists the values of the transpose in row-major order. It also reads the
factor's values once, through one autograd bridge (:meth:`SparseFactor.values`); each
method of the distribution builds the sparse matrices it needs from that one values tensor
with tsgu's constructors. Every tsgu operation reads the values directly, so the gradients
of all uses meet on one dense vector and reach the user's factor as one sparse gradient
with its layout, indices and order.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

import tsgu.core as tc
from tsgu.core.validation import COO


class Coordinates:
    """Batch item, row and column (int64) of every stored value of a sparse COO/CSR tensor."""

    def __init__(self, A: torch.Tensor) -> None:
        n = A.shape[-1]
        b = A.shape[0] if A.dim() == 3 else 1
        device = A.device
        if A.layout == COO:
            indices = A._indices()
            self.rows = indices[-2].to(torch.int64)
            self.cols = indices[-1].to(torch.int64)
            if A.dim() == 3:
                self.items = indices[0].to(torch.int64)
            else:
                self.items = torch.zeros_like(self.rows)
            self.raw_values = A._values().detach()
        else:
            crow, col = A.crow_indices(), A.col_indices()
            counts = crow.diff(dim=-1).reshape(-1).to(torch.int64)  # entries of each (item, row)
            nnz = col.numel()
            row_ids = torch.arange(n, device=device, dtype=torch.int64).repeat(b)
            self.rows = torch.repeat_interleave(row_ids, counts, output_size=nnz)
            self.cols = col.reshape(-1).to(torch.int64)
            item_ids = torch.arange(b, device=device, dtype=torch.int64)
            self.items = torch.repeat_interleave(item_ids, col.shape[-1], output_size=nnz)
            self.raw_values = A.values().detach()
        self.raw_values = self.raw_values.reshape(-1)
        self.n = n
        self.b = b
        # Position of each value's row in the folded (b * n) vector of rows.
        self.slots = self.items * n + self.rows

    def first(self, mask: torch.Tensor) -> int | None:
        """Index (into the values) of the first entry where ``mask`` holds, or None."""
        hits = torch.nonzero(mask)
        return int(hits[0, 0]) if hits.numel() else None

    def where(self, k: int, batched: bool) -> str:
        """``"(i, j)"`` or ``"(i, j) of batch item t"`` for stored entry ``k``."""
        text = f"({int(self.rows[k])}, {int(self.cols[k])})"
        return text + (f" of batch item {int(self.items[k])}" if batched else "")

    def diagonal(self, values: torch.Tensor) -> torch.Tensor:
        """The folded ``(b * n,)`` diagonal: stored duplicates summed, absent entries zero."""
        on_diag = torch.nonzero(self.rows == self.cols).squeeze(1)
        out = values.new_zeros(self.b * self.n)
        return out.index_add(0, self.slots[on_diag], values.index_select(0, on_diag))

    def stored_diagonal(self) -> torch.Tensor:
        """Whether each folded row stores a diagonal entry, ``(b * n,)`` bool."""
        counts = torch.bincount(self.slots[self.rows == self.cols], minlength=self.b * self.n)
        return counts > 0


class _ValuesOf(torch.autograd.Function):
    """The factor's stored values as one flat vector; its gradient is a sparse tensor.

    The backward builds the gradient with tsgu's constructors on the factor's own index
    tensors, so it has the factor's layout, indices, index dtype and value order, and it
    is differentiable again (second derivatives).
    """

    @staticmethod
    def forward(A: torch.Tensor, factor: SparseFactor) -> torch.Tensor:
        raw = A._values() if A.layout == COO else A.values()
        return raw.reshape(-1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.factor = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return ctx.factor.source_matrix(grad), None


def _coalesced_pattern(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An uncoalesced COO ``A`` coalesced (values summed, no grad), and where each entry went."""
    indices = A._indices()
    n, m = A.shape[-2], A.shape[-1]
    keys = indices[-2] * m + indices[-1]
    if A.dim() == 3:
        keys = keys + indices[0] * (n * m)
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    parts = [torch.div(unique % (n * m), m, rounding_mode="floor"), unique % m]
    if A.dim() == 3:
        parts.insert(0, torch.div(unique, n * m, rounding_mode="floor"))
    values = A._values().detach()
    summed = values.new_zeros(unique.numel()).index_add(0, inverse, values)
    P = torch.sparse_coo_tensor(torch.stack(parts), summed, A.shape, is_coalesced=True)
    return P, inverse


class SparseFactor:
    """Index bookkeeping of a sparse ``(n, n)`` or ``(b, n, n)`` COO/CSR factor, done once.

    An uncoalesced COO factor is used in coalesced form (its repeated entries summed, as
    torch's meaning of such a tensor is); its gradient still reaches every stored entry.
    Nothing here loops over rows, entries or batch items; the transpose permutation is one
    stable sort of the entries, done the first time the transpose is asked for.
    """

    def __init__(self, A: torch.Tensor) -> None:
        self.source = A
        self.layout = A.layout
        self.shape = tuple(A.shape)
        self.n = A.shape[-1]
        self.batched = A.dim() == 3
        self.merge: torch.Tensor | None = None  # uncoalesced entry -> coalesced entry
        if A.layout == COO:
            self.source_index: tuple[torch.Tensor, ...] = (A._indices(),)
            self.source_coalesced = A.is_coalesced()
            P = A
            if not A.is_coalesced():
                P, self.merge = _coalesced_pattern(A)
            self.index_tensors: tuple[torch.Tensor, ...] = (P._indices(),)
            self.values_shape: tuple[int, ...] = (P._nnz(),)
        else:
            P = A
            self.source_index = self.index_tensors = (A.crow_indices(), A.col_indices())
            self.source_coalesced = False
            self.values_shape = tuple(A.values().shape)
        self.coords = Coordinates(P)
        self._values = self._read_values()

    @functools.cached_property
    def _transposed(self) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The permutation listing the values of the transpose in row-major order, and the
        transpose's index tensors. Found on first use: only the precision density needs
        it, and its sort is most of a small factor's set-up cost."""
        coords, b, n = self.coords, self.coords.b, self.n
        # The transpose in row-major order: sort entries by (item, col, row).
        keys = (coords.items * n + coords.cols) * n + coords.rows
        t_perm = torch.sort(keys, stable=True).indices
        rows_t = coords.cols.index_select(0, t_perm)
        cols_t = coords.rows.index_select(0, t_perm)
        if self.layout == COO:
            parts = [rows_t, cols_t]
            if self.batched:
                parts.insert(0, coords.items.index_select(0, t_perm))
            return t_perm, (torch.stack(parts),)
        index_dtype = self.index_tensors[0].dtype
        counts = torch.bincount(coords.items * n + coords.cols, minlength=b * n).reshape(b, n)
        crow_t = torch.cat([counts.new_zeros(b, 1), torch.cumsum(counts, dim=1)], dim=1)
        cols_t = cols_t.reshape(self.values_shape)
        if not self.batched:
            crow_t = crow_t.reshape(-1)
        return t_perm, (crow_t.to(index_dtype), cols_t.to(index_dtype))

    @property
    def nnz(self) -> int:
        """Stored values over the whole batch (after merging repeated COO entries)."""
        return self.coords.raw_values.numel()

    # ------------------------------------------------------------------ values
    def values(self) -> torch.Tensor:
        """The factor's values, flat, differentiable back to the user's factor.

        Read once, when the factor is set up: every method's gradient then meets on this
        one dense vector, and the user's factor receives one sparse gradient per backward
        pass (torch 2.13 corrupts the sum of two batched CSR gradients).
        """
        return self._values

    def _read_values(self) -> torch.Tensor:
        if not self.source.requires_grad:
            return self.coords.raw_values
        out: torch.Tensor = _ValuesOf.apply(self.source, self)
        if self.merge is not None:
            out = out.new_zeros(self.values_shape).index_add(0, self.merge, out)
        return out

    def source_matrix(self, values: torch.Tensor) -> torch.Tensor:
        """A sparse tensor with the user's factor's own layout and indices holding ``values``."""
        if self.layout == COO:
            (indices,) = self.source_index
            return tc.sparse_coo_tensor(
                indices, values.reshape(-1), self.shape, is_coalesced=self.source_coalesced
            )
        crow, col = self.source_index
        return tc.sparse_csr_tensor(crow, col, values.reshape(self.values_shape), self.shape)

    # ----------------------------------------------------------------- matrices
    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """A sparse tensor with the factor's layout and (coalesced) indices holding ``values``."""
        if self.layout == COO:
            (indices,) = self.index_tensors
            return tc.sparse_coo_tensor(indices, values.reshape(-1), self.shape, is_coalesced=True)
        crow, col = self.index_tensors
        return tc.sparse_csr_tensor(crow, col, values.reshape(self.values_shape), self.shape)

    def transpose(self, values: torch.Tensor) -> torch.Tensor:
        """The transposed factor (upper triangular), in row-major order, holding ``values``."""
        t_perm, t_index_tensors = self._transposed
        values_t = values.index_select(0, t_perm)
        if self.layout == COO:
            (indices,) = t_index_tensors
            return tc.sparse_coo_tensor(indices, values_t, self.shape, is_coalesced=True)
        crow, col = t_index_tensors
        return tc.sparse_csr_tensor(crow, col, values_t.reshape(self.values_shape), self.shape)

    def diagonal(self, values: torch.Tensor) -> torch.Tensor:
        """The factor's diagonal, ``(n,)`` or ``(b, n)``."""
        diag = self.coords.diagonal(values)
        return diag.reshape(self.coords.b, self.n) if self.batched else diag

    def row_sums(self, values: torch.Tensor) -> torch.Tensor:
        """Sums of the stored values of each row, ``(n,)`` or ``(b, n)``."""
        out = values.new_zeros(self.coords.b * self.n).index_add(0, self.coords.slots, values)
        return out.reshape(self.coords.b, self.n) if self.batched else out
