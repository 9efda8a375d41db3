"""``sparse_mm(A, B)`` with both factors sparse: ``C = A @ B`` on the symbolic product's pattern.

Every value of C and of both sparse gradients is a sum over one set of *triples*
``(a, b, c)``: entry ``a = (i, k)`` of A, entry ``b = (k, j)`` of B and entry ``c = (i, j)`` of C
(the symbolic product). With ``x``, ``y``, ``z`` values at A's, B's and C's entries,

* ``C``:        ``z[c] = Σ x[a] y[b]``
* ``grad A``:   ``x[a] = Σ z[c] y[b]``   ((V Bᵀ) ⊙ mask(A))
* ``grad B``:   ``y[b] = Σ x[a] z[c]``   ((Aᵀ V) ⊙ mask(B))

and each of the three bilinear maps has the other two as its derivatives, so one operation
(:class:`_Bilinear`) gives every derivative to any order. The symbolic work (C's pattern, the
chunks, the map from triples to C's entries) is a :class:`_Plan`, kept per pair of patterns
(:func:`cached_derived`), so a training loop's later calls do none of it. C's values come
from torch's sparse COO @ COO kernel (the first call also takes C's pattern from it, sorted),
or, where every entry of A meets exactly one entry of B (an aggregation P), from the walk;
the gradients walk the triples. Where padding every row of B to the longest one at most
doubles the triples, the walk runs over ``(entries of A) x width`` blocks with C's entry
stored as a 1-4 byte rank in its row (:attr:`_Plan.ranks`): no per-triple index arithmetic
for A, a row sum for A's gradient. Otherwise it walks the triples in chunks of rows, looking
C's entries up in a table (about ``_TRIPLES_PER_CHUNK`` triples and at most
``_TABLE_ENTRIES`` table entries at a time, one buffer reused). Nothing of size n x p is
formed, and the triples are never all held at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import torch

from ._assemble import Output, assemble
from ._pattern import (
    INT32_MAX,
    Pattern,
    _compress,
    _expand,
    _tracks_grad,
    apply_function,
    index_dtype_for,
    values_of,
)
from ._pattern_cache import cached_derived, cached_patterns
from .validation import (
    COO,
    CSC,
    CSR,
    check_operand,
    check_sparse,
)

__all__ = ["sparse_sparse_mm"]

_TRIPLES_PER_CHUNK = 2**20
_PADDED_TRIPLES = 2**18  # triples per block of the padded walk
_TABLE_ENTRIES = 2**23
_PAD_WASTE = 2  # the padded walk runs when padding at most doubles the triples
_A, _B, _C = 0, 1, 2
_FN = "sparse_mm"


def _check(A: object, B: object) -> tuple[torch.Tensor, torch.Tensor]:
    A = check_sparse(_FN, "A", A, layouts=(COO, CSR), dims=(2, 3))
    B = check_sparse(_FN, "B", B, layouts=(COO, CSR, CSC), dims=(2, 3))
    if A.dim() != B.dim():
        raise ValueError(
            f"{_FN}: B must have {A.dim()} dimensions like A (sparse A @ sparse B), "
            f"got shape {tuple(B.shape)}; batch both or neither"
        )
    check_operand(_FN, A, B, A.shape[-1])  # B has A's dims: its rows are axis -2
    return A, B


class _Plan:
    """The three patterns (folded, row-major) and how to walk their triples in chunks."""

    def __init__(self, pattern_A: Pattern, pattern_B: Pattern) -> None:
        self.patterns = (pattern_A, pattern_B)
        crow_A, col_A, self.perm_A = pattern_A.kernel_form
        crow_B, col_B, self.perm_B = pattern_B.kernel_form
        # A's columns only ever index (B's rows): the pattern's own tensor, int32 where it
        # fits, no copy (an int64 copy was 25 MiB of the plan on the 27-point 50³)
        self.crow_A, self.col_A = crow_A.to(torch.int64), col_A
        self.crow_B, self.col_B = crow_B.to(torch.int64), col_B.to(torch.int64)
        self.nrows, self.ncols = pattern_A.nrows, pattern_B.ncols
        # set by the first product: C's pattern, row-major with sorted columns
        self.crow_C = self.col_C = torch.empty(0, dtype=torch.int64)
        self.symbolic_done = False

    @property
    def sizes(self) -> tuple[int, int, int]:
        return self.patterns[0].nnz, self.patterns[1].nnz, self.col_C.numel()

    def torch_product(self, values_A: torch.Tensor, values_B: torch.Tensor) -> torch.Tensor:
        """``A @ B`` by torch's sparse COO @ COO kernel: coalesced, structural zeros kept.

        Measured on the 27-point 50³ A @ A, one thread: 0.6 s, against 1.1 s for the
        padded walk and 0.55 s for CSR @ CSR, whose columns then still need sorting.
        """
        factors = []
        for pattern, values, indices in zip(
            self.patterns, (values_A, values_B), self.coo_indices, strict=True
        ):
            _, _, slot, nnz = pattern.canonical_form
            if slot is not None:  # duplicates summed, as every kernel counts them
                values = values.new_zeros(nnz).index_add(0, slot, values)
            size = (pattern.nrows, pattern.ncols)
            factors.append(torch.sparse_coo_tensor(indices, values, size, is_coalesced=True))
        C = torch.sparse.mm(factors[0], factors[1])
        del factors
        if not C.is_coalesced():  # pragma: no cover - torch's kernel returns coalesced
            C = C.coalesce()
        return C

    @cached_property
    def coo_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each factor's canonical (coalesced) COO indices, made once (once for both factors
        of ``A @ A``): building them is a tenth of a product's time on the 27-point 50³."""
        made: dict[int, torch.Tensor] = {}
        for pattern in self.patterns:
            if id(pattern) not in made:
                crow, col, _, nnz = pattern.canonical_form
                rows = _expand(crow.to(torch.int64), nnz, torch.int64)
                made[id(pattern)] = torch.stack([rows, col.to(torch.int64)])
        return made[id(self.patterns[0])], made[id(self.patterns[1])]

    def first_product(self, values_A: torch.Tensor, values_B: torch.Tensor) -> torch.Tensor:
        """C's pattern (kept) and values, by :meth:`torch_product`."""
        C = self.torch_product(values_A, values_B)
        indices, values = C._indices(), C._values()
        # C's columns in int32 where they fit (half the memory the backward keeps); its
        # rows are expanded per chunk, never kept whole
        self.crow_C = _compress(indices[0], self.nrows, torch.int64)
        narrow = self.ncols <= INT32_MAX
        self.col_C = indices[1].to(torch.int32) if narrow else indices[1].clone()
        self.symbolic_done = True
        del indices, C
        _ = self.one_triple_each  # symbolic work of the first call, not the second's forward
        return values

    def product(self, values_A: torch.Tensor, values_B: torch.Tensor) -> torch.Tensor:
        """C's values (sorted row-major): the first call also finds C's pattern."""
        if not self.symbolic_done:
            return self.first_product(values_A, values_B)
        if self.one_triple_each is not None:  # a gather, a product, a scatter: faster
            x, y = self.to_row_major(_A, values_A), self.to_row_major(_B, values_B)
            return self.walk([(_C, _A, x, _B, y)])[0]
        C = self.torch_product(values_A, values_B)
        if C._nnz() == self.col_C.numel():  # the pattern it was first found with
            return C._values()
        x, y = self.to_row_major(_A, values_A), self.to_row_major(_B, values_B)
        (out,) = self.walk([(_C, _A, x, _B, y)])  # pragma: no cover - torch keeps its pattern
        return out

    @cached_property
    def output(self) -> Output:
        """How C is stored: index tensors (made once, shared by every call), slots, pattern."""
        assert self.symbolic_done
        pattern_A, pattern_B = self.patterns
        layout, batched = pattern_A.layout, len(pattern_A.shape) == 3
        assert layout is not None  # a pattern made by Pattern.of
        n, p = pattern_A.shape[-2], pattern_B.shape[-1]
        shape = (*pattern_A.shape[:-1], p)
        index_dtype = pattern_A.index_tensors[0].dtype if layout == CSR else torch.int64
        slot, nnz = None, self.col_C.numel()
        if not batched and layout == CSR:
            dtype = index_dtype_for(nnz, n, p, preferred=index_dtype)
            index_tensors: tuple[torch.Tensor, ...] = (
                self.crow_C.to(dtype),
                self.col_C.to(dtype),
            )
        else:
            rows = self.rows_C(0, self.nrows, 0, nnz)
            cols = self.col_C.to(torch.int64)
            if not batched:
                index_tensors = (torch.stack([rows, cols]),)
            else:
                # linear position batch*n*p + i*p + j of every entry, from folded coordinates
                keys = rows * p + (cols - torch.div(rows, n, rounding_mode="floor") * p)
                del rows, cols
                index_tensors, slot, nnz = assemble(keys, shape, layout, index_dtype)
                del keys
        return Output(index_tensors, slot, nnz, shape, layout)

    def to_row_major(self, role: int, values: torch.Tensor) -> torch.Tensor:
        perm = (self.perm_A, self.perm_B, None)[role]
        return values if perm is None else values.index_select(0, perm)

    def from_row_major(self, role: int, values: torch.Tensor) -> torch.Tensor:
        perm = (self.perm_A, self.perm_B, None)[role]
        if perm is None:
            return values
        return torch.empty_like(values).index_copy_(0, perm, values)

    @property
    def table_dtype(self) -> torch.dtype:
        return torch.int32 if self.col_C.numel() <= INT32_MAX else torch.int64

    @cached_property
    def rows_A(self) -> torch.Tensor:
        """The row of each of A's entries in row-major order: the pattern's own row index
        when its order is row-major (kept by the pattern anyway), else an expansion in
        A's column dtype. Index it, or convert a slice, before arithmetic."""
        pattern_A = self.patterns[0]
        if self.perm_A is None:
            return pattern_A.rows
        return _expand(self.crow_A, self.col_A.numel(), self.col_A.dtype)

    def rows_C(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """The row of each of C's entries c0..c1 (those of rows r0..r1)."""
        counts = self.crow_C[r0 + 1 : r1 + 1] - self.crow_C[r0:r1]
        rows = torch.arange(r0, r1, device=counts.device)
        return torch.repeat_interleave(rows, counts, output_size=c1 - c0)

    @cached_property
    def chunks(self) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """``(before, [(r0, r1), ...])``: the number of triples before each row of A (and
        their total, last), and chunks of rows. Nothing per entry of A is kept (the offsets
        per entry were 25 MiB on the 27-point 50³: each walk finds its chunk's own)."""
        device = self.crow_A.device
        counts = self.row_lengths_B.index_select(0, self.col_A)
        per_row_end = torch.zeros(self.nrows + 1, dtype=torch.int64, device=device)
        per_row_end[1:].index_add_(0, self.rows_A, counts)
        del counts
        per_row_end = torch.cumsum(per_row_end, 0)  # triples before each row
        # each C row's smallest and largest column: the width of a chunk's lookup table
        big = torch.iinfo(torch.int64).max
        lo = torch.full((self.nrows,), big, dtype=torch.int64, device=device)
        hi = torch.full((self.nrows,), -1, dtype=torch.int64, device=device)
        # C's columns are sorted within each row: its first and last entries bound it
        full = self.crow_C[1:] > self.crow_C[:-1]
        first_C = self.crow_C[:-1].clamp(max=max(self.col_C.numel() - 1, 0))
        last_C = (self.crow_C[1:] - 1).clamp(min=0)
        if self.col_C.numel():
            lo = torch.where(full, self.col_C.index_select(0, first_C).to(torch.int64), lo)
            hi = torch.where(full, self.col_C.index_select(0, last_C).to(torch.int64), hi)
        total = int(per_row_end[-1])
        # candidate ends by the triple budget, then cut further for the table budget
        step = _TRIPLES_PER_CHUNK
        marks = torch.arange(1, max(1, -(-total // step)), device=device) * step
        cuts = [*torch.searchsorted(per_row_end, marks).tolist(), self.nrows]
        out: list[tuple[int, int]] = []
        r0 = 0
        # a loop over memory-bounded chunks, not over rows
        for cut in cuts:
            while r0 < min(cut, self.nrows):
                # the most rows from r0 (up to cut) whose lookup table fits the budget: the
                # table of rows r0..r0+R spans the widest column range of those rows
                widths = hi[r0:cut].cummax(0).values - lo[r0:cut].cummin(0).values + 1
                rows = torch.arange(1, cut - r0 + 1, device=widths.device)
                fits = int((rows * widths.clamp(min=1) <= _TABLE_ENTRIES).sum())
                r1 = r0 + max(1, fits)
                out.append((r0, r1))
                r0 = r1
        return per_row_end, out

    def triples(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The triples ``(a, b, c)`` (row-major entries of A, B, C), a chunk of rows at a time.

        C's entry of each triple is looked up in a table over the chunk's rows and column
        range, one buffer reused for every chunk.
        """
        before, chunks = self.chunks
        device = self.col_A.device
        # no chunk reads a table slot it did not write: a reused buffer needs no clearing
        buffer = torch.empty(0, dtype=self.table_dtype, device=device)
        for r0, r1 in chunks:
            e0, e1 = int(self.crow_A[r0]), int(self.crow_A[r1])  # two reads per chunk
            if e0 == e1:
                continue
            count = int(before[r1]) - int(before[r0])
            if count == 0:
                continue
            # the triples of entries e0..e1: B's row col_A[a] in full for each entry a
            counts = self.row_lengths_B.index_select(0, self.col_A[e0:e1])
            first = torch.cumsum(counts, 0) - counts  # triples of the chunk before each entry
            entries = torch.arange(e0, e1, device=device)
            a = torch.repeat_interleave(entries, counts, output_size=count)
            b = torch.arange(count, device=device) - first.index_select(0, a - e0)
            b += self.crow_B.index_select(0, self.col_A.index_select(0, a))
            del counts, first
            c0, c1 = int(self.crow_C[r0]), int(self.crow_C[r1])
            cols = self.col_C[c0:c1]
            lo = int(cols.min())
            width = int(cols.max()) - lo + 1
            need = (r1 - r0) * width
            if buffer.numel() < need:  # one buffer for every chunk's table
                size = max(need, min(_TABLE_ENTRIES, self.nrows * self.ncols))
                buffer = torch.empty(size, dtype=self.table_dtype, device=device)
            table = buffer[:need]
            slots = torch.arange(c0, c1, device=device, dtype=self.table_dtype)
            table.index_copy_(0, (self.rows_C(r0, r1, c0, c1) - r0) * width + (cols - lo), slots)
            where = (self.rows_A.index_select(0, a).to(torch.int64) - r0) * width
            where += self.col_B.index_select(0, b) - lo
            c = table.index_select(0, where).to(torch.int64)
            del table, where, slots
            yield a, b, c

    @cached_property
    def width(self) -> int:
        """The longest row of B that an entry of A reaches (the padded walk's row width)."""
        # the rows of B that A's columns name (a flag per row of B, not a length per entry)
        named = torch.zeros(self.row_lengths_B.numel(), dtype=torch.bool, device=self.col_A.device)
        named.index_put_((self.col_A,), torch.ones((), dtype=torch.bool, device=named.device))
        lengths = self.row_lengths_B[named]
        return int(lengths.max()) if lengths.numel() else 0

    @cached_property
    def row_lengths_B(self) -> torch.Tensor:
        """The number of entries in each row of B."""
        return self.crow_B[1:] - self.crow_B[:-1]

    @cached_property
    def ranks(self) -> torch.Tensor | None:
        """C's entry of every triple, as its rank in its row of C, padded to ``width`` per
        entry of A (``None`` when padding would more than double the triples).

        Entry ``a * width + r`` is for A's entry ``a`` and the ``r``-th entry of B's row
        ``col_A[a]``; the smallest integer dtype that holds C's longest row (uint8 for a
        27-point stencil squared), so the map costs one to four bytes per triple. Made once
        per plan by one table walk; every later walk reads it instead of a table.
        """
        before, chunks = self.chunks
        total, width, n_A = int(before[-1]), self.width, self.col_A.numel()
        if total == 0 or n_A * width > _PAD_WASTE * total:
            return None
        longest = int((self.crow_C[1:] - self.crow_C[:-1]).max())
        dtype = torch.uint8 if longest <= 256 else torch.int16 if longest <= 2**15 else torch.int32
        device = self.col_A.device
        ranks = torch.zeros(n_A * width, dtype=dtype, device=device)
        offsets = torch.arange(width, device=device)
        lengths = self.row_lengths_B
        last_B = self.col_B.numel() - 1
        buffer = torch.empty(0, dtype=dtype, device=device)
        # a loop over memory-bounded chunks of rows: a table of the chunk's rows of C (rank
        # of each entry in its row, at row x column), read at every padded triple
        for r0, r1 in chunks:
            e0, e1 = int(self.crow_A[r0]), int(self.crow_A[r1])
            c0, c1 = int(self.crow_C[r0]), int(self.crow_C[r1])
            if e0 == e1 or c0 == c1:
                continue
            cols = self.col_C[c0:c1].to(torch.int64)
            lo = int(cols.min())
            span = int(cols.max()) - lo + 1
            need = (r1 - r0) * span
            if buffer.numel() < need:
                buffer = torch.empty(need, dtype=dtype, device=device)
            table = buffer[:need]
            rows = self.rows_C(r0, r1, c0, c1)
            rank = torch.arange(c0, c1, device=device) - self.crow_C.index_select(0, rows)
            table.index_copy_(0, (rows - r0) * span + (cols - lo), rank.to(dtype))
            k = self.col_A[e0:e1]
            b = (self.crow_B.index_select(0, k)[:, None] + offsets).clamp_(max=last_B)
            where = (self.rows_A[e0:e1, None].to(torch.int64) - r0) * span + (
                self.col_B.index_select(0, b.view(-1)).view(b.shape) - lo
            )
            valid = offsets < lengths.index_select(0, k)[:, None]
            where = torch.where(valid, where, 0)  # padding reads slot 0 and is zeroed below
            found = table.index_select(0, where.view(-1)).view(where.shape)
            ranks[e0 * width : e1 * width] = torch.where(valid, found, 0).view(-1)
        return ranks

    @cached_property
    def one_triple_each(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """B's and C's entry of each entry of A, when every entry of A meets exactly one
        entry of B (the rows of B that A reaches have one entry each, as an aggregation
        prolongator's do), else ``None``.

        Then the triples are the entries of A themselves and two stored indices (4 bytes
        each where they fit) replace the padded walk's per-call index arithmetic: A @ P on
        the 27-point 50³ with a 2x2x2 aggregation P went from 26 ms (torch's kernel) to
        17 ms, one thread.
        """
        if self.width != 1:  # before the ranks: a forward-only loop never makes those
            return None
        ranks = self.ranks
        n_A, n_B, n_C = self.sizes
        if ranks is None or int(self.chunks[0][-1]) != n_A:
            return None
        b = self.crow_B.index_select(0, self.col_A)
        c = self.crow_C.index_select(0, self.rows_A) + ranks
        return (
            b.to(torch.int32) if n_B <= INT32_MAX else b,
            c.to(torch.int32) if n_C <= INT32_MAX else c,
        )

    def walk(
        self, jobs: list[tuple[int, int, torch.Tensor, int, torch.Tensor]]
    ) -> list[torch.Tensor]:
        """For each job ``(out_role, role1, x1, role2, x2)`` (row-major vectors), the vector
        at out_role's entries of ``Σ x1[role1] * x2[role2]`` over all triples."""
        if self.one_triple_each is not None:
            return self._walk_one_each(jobs, *self.one_triple_each)
        if self.ranks is not None:
            return self._walk_padded(jobs, self.ranks)
        sizes = self.sizes
        outs = [jobs[0][2].new_zeros(sizes[job[0]]) for job in jobs]
        for index in self.triples():
            for out, (role, role1, x1, role2, x2) in zip(outs, jobs, strict=True):
                product = x1.index_select(0, index[role1]) * x2.index_select(0, index[role2])
                out.index_add_(0, index[role], product)
        return outs

    def _walk_padded(
        self, jobs: list[tuple[int, int, torch.Tensor, int, torch.Tensor]], ranks: torch.Tensor
    ) -> list[torch.Tensor]:
        """:meth:`walk` over the entries of A, each with ``width`` triples (B's row padded).

        A's entry of a triple is the row of a ``(entries, width)`` block: A's values enter
        by broadcasting and A's output is a row sum, with no index at all; B's entries are
        ``start + r``; C's are ``crow_C[row] + rank``. Padding triples point at an extra zero
        slot of B's vectors (every job has B's role as its output or as a factor), so they
        add nothing.
        """
        n_A, n_B, n_C = self.sizes
        width = self.width
        padded = n_A * width != int(self.chunks[0][-1])
        device = jobs[0][2].device
        sizes = (n_A, n_B + 1, n_C)  # B's output has the padding slot too
        outs = [jobs[0][2].new_zeros(sizes[job[0]]) for job in jobs]
        if padded:  # a zero at slot n_B of B's vectors
            jobs = [
                (
                    role,
                    role1,
                    _pad(x1) if role1 == _B else x1,
                    role2,
                    _pad(x2) if role2 == _B else x2,
                )
                for role, role1, x1, role2, x2 in jobs
            ]
        offsets = torch.arange(width, device=device)
        lengths = self.row_lengths_B
        # smaller blocks than the table walk's: their five or so (entries x width) temporaries
        # are the walk's memory, and a block of 2^18 triples costs no measurable time more
        step = max(1, _PADDED_TRIPLES // max(width, 1))
        # a loop over memory-bounded chunks of A's entries, not over rows or entries
        for e0 in range(0, n_A, step):
            e1 = min(n_A, e0 + step)
            k = self.col_A[e0:e1]
            b = self.crow_B.index_select(0, k)[:, None] + offsets
            if padded:
                b = torch.where(offsets < lengths.index_select(0, k)[:, None], b, n_B)
            c = self.crow_C.index_select(0, self.rows_A[e0:e1])[:, None]
            c = c + ranks[e0 * width : e1 * width].view(-1, width)
            if padded:
                c.clamp_(max=n_C - 1)  # a padding triple's rank points past a short row
            flat_b, flat_c = b.view(-1), c.view(-1)
            index = (flat_b, flat_b, flat_c)  # A's role is never indexed
            for out, (role, role1, x1, role2, x2) in zip(outs, jobs, strict=True):
                f1 = (
                    x1[e0:e1, None]
                    if role1 == _A
                    else x1.index_select(0, index[role1]).view(-1, width)
                )
                f2 = (
                    x2[e0:e1, None]
                    if role2 == _A
                    else x2.index_select(0, index[role2]).view(-1, width)
                )
                product = f1 * f2
                if role == _A:
                    torch.sum(product, 1, out=out[e0:e1])
                else:
                    out.index_add_(0, index[role], product.view(-1))
        return [out[:n_B] if job[0] == _B else out for out, job in zip(outs, jobs, strict=True)]

    def _walk_one_each(
        self,
        jobs: list[tuple[int, int, torch.Tensor, int, torch.Tensor]],
        b: torch.Tensor,
        c: torch.Tensor,
    ) -> list[torch.Tensor]:
        """:meth:`walk` when the triples are ``(a, b[a], c[a])``, one per entry of A."""
        n_A = self.sizes[0]
        outs = [jobs[0][2].new_zeros(self.sizes[job[0]]) for job in jobs]
        # blocks of A's entries bound the temporaries, as in the padded walk
        for e0 in range(0, n_A, _PADDED_TRIPLES):
            e1 = min(n_A, e0 + _PADDED_TRIPLES)
            index = (None, b[e0:e1], c[e0:e1])
            for out, (role, role1, x1, role2, x2) in zip(outs, jobs, strict=True):
                i1, i2 = index[role1], index[role2]
                f1 = x1[e0:e1] if i1 is None else x1.index_select(0, i1)
                f2 = x2[e0:e1] if i2 is None else x2.index_select(0, i2)
                target = index[role]
                if target is None:
                    torch.mul(f1, f2, out=out[e0:e1])
                else:
                    out.index_add_(0, target, f1 * f2)
        return outs


def _pad(x: torch.Tensor) -> torch.Tensor:
    """``x`` with one zero appended."""
    return torch.cat([x, x.new_zeros(1)])


class _Bilinear(torch.autograd.Function):
    """``out[out_role] = Σ over triples of x1[role1] * x2[role2]``, in natural orders."""

    @staticmethod
    def forward(
        plan: _Plan, role: int, role1: int, x1: torch.Tensor, role2: int, x2: torch.Tensor
    ) -> torch.Tensor:
        (out,) = plan.walk(
            [(role, role1, plan.to_row_major(role1, x1), role2, plan.to_row_major(role2, x2))]
        )
        return plan.from_row_major(role, out)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        plan, role, role1, x1, role2, x2 = inputs
        ctx.plan, ctx.roles = plan, (role, role1, role2)
        ctx.save_for_backward(x1, x2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x1, x2 = ctx.saved_tensors
        role, role1, role2 = ctx.roles
        g1 = g2 = None
        if ctx.needs_input_grad[3]:
            g1 = bilinear(ctx.plan, role1, role, grad, role2, x2)
        if ctx.needs_input_grad[5]:
            g2 = bilinear(ctx.plan, role2, role1, x1, role, grad)
        return None, None, None, g1, None, g2


def bilinear(
    plan: _Plan, role: int, role1: int, x1: torch.Tensor, role2: int, x2: torch.Tensor
) -> torch.Tensor:
    if not _tracks_grad(x1, x2):  # nothing to record: the walk, without autograd's cost
        return _Bilinear.forward(plan, role, role1, x1, role2, x2)
    out: torch.Tensor = apply_function(_Bilinear, plan, role, role1, x1, role2, x2)
    return out


class _Product(torch.autograd.Function):
    """C's values (sorted row-major) from A's and B's: torch's kernel, then the triples."""

    @staticmethod
    def forward(plan: _Plan, values_A: torch.Tensor, values_B: torch.Tensor) -> torch.Tensor:
        return plan.product(values_A, values_B)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        plan, values_A, values_B = inputs
        ctx.plan = plan
        ctx.save_for_backward(values_A, values_B)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        values_A, values_B = ctx.saved_tensors
        plan: _Plan = ctx.plan
        need_A, need_B = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if torch.is_grad_enabled():  # create_graph: each gradient its own differentiable op
            g_A = bilinear(plan, _A, _C, grad, _B, values_B) if need_A else None
            g_B = bilinear(plan, _B, _A, values_A, _C, grad) if need_B else None
            return None, g_A, g_B
        # one walk over the triples for both gradients
        jobs = []
        grad_rm = grad.contiguous()
        if need_A:
            jobs.append((_A, _C, grad_rm, _B, plan.to_row_major(_B, values_B)))
        if need_B:
            jobs.append((_B, _A, plan.to_row_major(_A, values_A), _C, grad_rm))
        outs = iter(plan.walk(jobs)) if jobs else iter(())
        g_A = plan.from_row_major(_A, next(outs)) if need_A else None
        g_B = plan.from_row_major(_B, next(outs)) if need_B else None
        return None, g_A, g_B


def sparse_sparse_mm(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` for sparse A (COO, CSR) and sparse B (COO, CSR, CSC); see :func:`sparse_mm`."""
    A, B = _check(A, B)
    # kept between calls: the second call with the same patterns does no symbolic work
    pattern_A, pattern_B = cached_patterns(A, B)
    plan = cached_derived("sparse_mm", (pattern_A, pattern_B), lambda: _Plan(pattern_A, pattern_B))
    values_A, values_B = values_of(A, pattern_A), values_of(B, pattern_B)
    if _tracks_grad(values_A, values_B):
        values: torch.Tensor = apply_function(_Product, plan, values_A, values_B)
    else:  # nothing to record: torch's kernel, without autograd's cost
        values = plan.product(values_A, values_B)
    return plan.output.attach(values)
