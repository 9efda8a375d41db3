"""The sparse triangular factor of a distribution: its pattern, values, diagonal and transpose.

A :class:`SparseFactor` does the index work once, when a distribution is built, on the
factor's :class:`tsgu.core.extend.Pattern`: the row, column and batch item of every stored
value, the diagonal, and the order that lists the values of the transpose in row-major
order. It also reads the factor's values once (:func:`tsgu.core.extend.values_of`); each
method of the distribution builds the sparse matrices it needs from that one values tensor
with tsgu's constructors. Every tsgu operation reads the values directly, so the gradients
of all uses meet on one dense vector and reach the user's factor as one sparse gradient
with its layout, indices and order.
"""

from __future__ import annotations

import torch

import tsgu.core as tc
from tsgu.core.extend import Pattern, from_values, stored_values, values_of
from tsgu.core.validation import COO


class Coordinates:
    """Batch item, row and column (int64) of every stored value of a sparse COO/CSR tensor."""

    def __init__(self, A: torch.Tensor) -> None:
        self.pattern = pattern = Pattern.of(A)
        self.n = n = A.shape[-1]
        self.b = A.shape[0] if A.dim() == 3 else 1
        # Position of each value's row in the folded (b * n) vector of rows.
        self.slots = pattern.rows.to(torch.int64)
        self.items = torch.div(self.slots, n, rounding_mode="floor")
        self.rows = self.slots - self.items * n
        self.cols = pattern.cols.to(torch.int64) - self.items * n
        self.raw_values = stored_values(A).detach().reshape(-1)

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
        return self.pattern.diagonal(values)

    def stored_diagonal(self) -> torch.Tensor:
        """Whether each folded row stores a diagonal entry, ``(b * n,)`` bool."""
        counts = torch.bincount(self.slots[self.rows == self.cols], minlength=self.b * self.n)
        return counts > 0


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
    Nothing here loops over rows, entries or batch items; the transpose's order is one
    stable sort of the entries, made the first time the transpose is asked for.
    """

    def __init__(self, A: torch.Tensor) -> None:
        self.shape = tuple(A.shape)
        self.n = A.shape[-1]
        self.batched = A.dim() == 3
        P, merge = A, None  # merge: uncoalesced entry -> coalesced entry
        if A.layout == COO and not A.is_coalesced():
            P, merge = _coalesced_pattern(A)
        self.coords = Coordinates(P)
        self.pattern = self.coords.pattern
        # Read once, when the factor is set up: every method's gradient then meets on this
        # one dense vector, and the user's factor receives one sparse gradient per backward
        # pass (torch 2.13 corrupts the sum of two batched CSR gradients).
        values = values_of(A)
        if merge is not None:
            values = values.new_zeros(P._nnz()).index_add(0, merge, values)
        self._values = values

    @property
    def nnz(self) -> int:
        """Stored values over the whole batch (after merging repeated COO entries)."""
        return self.coords.raw_values.numel()

    def values(self) -> torch.Tensor:
        """The factor's values, flat, differentiable back to the user's factor."""
        return self._values

    # ----------------------------------------------------------------- matrices
    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """A sparse tensor with the factor's layout and (coalesced) indices holding ``values``."""
        return from_values(self.pattern, values)

    def transpose(self, values: torch.Tensor) -> torch.Tensor:
        """The transposed factor (upper triangular), in row-major order, holding ``values``."""
        indices, perm = self.pattern.transposed_indices
        values_t = values.index_select(0, perm)
        if len(indices) == 1:
            return tc.sparse_coo_tensor(indices[0], values_t, self.shape, is_coalesced=True)
        crow, col = indices
        return tc.sparse_csr_tensor(crow, col, values_t.reshape(col.shape), self.shape)

    def diagonal(self, values: torch.Tensor) -> torch.Tensor:
        """The factor's diagonal, ``(n,)`` or ``(b, n)``."""
        diag = self.pattern.diagonal(values)
        return diag.reshape(self.coords.b, self.n) if self.batched else diag

    def row_sums(self, values: torch.Tensor) -> torch.Tensor:
        """Sums of the stored values of each row, ``(n,)`` or ``(b, n)``."""
        out = values.new_zeros(self.coords.b * self.n).index_add(0, self.coords.slots, values)
        return out.reshape(self.coords.b, self.n) if self.batched else out
