"""``sparse_mm(A, B)`` with both factors sparse: ``C = A @ B`` on the symbolic product's pattern.

Every value of C and of both sparse gradients is a sum over one set of *triples*
``(a, b, c)``: entry ``a = (i, k)`` of A, entry ``b = (k, j)`` of B and entry ``c = (i, j)`` of C
(the symbolic product). With ``x``, ``y``, ``z`` values at A's, B's and C's entries,

* ``C``:        ``z[c] = Σ x[a] y[b]``
* ``grad A``:   ``x[a] = Σ z[c] y[b]``   ((V Bᵀ) ⊙ mask(A))
* ``grad B``:   ``y[b] = Σ x[a] z[c]``   ((Aᵀ V) ⊙ mask(B))

and each of the three bilinear maps has the other two as its derivatives, so one operation
(:class:`_Bilinear`) gives every derivative to any order. The first product of a pattern
is torch's own sparse COO @ COO kernel, which also yields C's pattern, sorted; the others
walk the triples in chunks of rows, bounded in memory (about ``_TRIPLES_PER_CHUNK`` triples
and a lookup table of at most ``_TABLE_ENTRIES`` entries at a time, one buffer reused): the
triples are never all held at once, nor is anything of size n x p.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch

from ._assemble import assemble, build
from ._pattern import (
    INT32_MAX,
    Pattern,
    _compress,
    _expand,
    attach_values,
    index_dtype_for,
    values_of,
)
from .validation import (
    COO,
    CSC,
    CSR,
    check_operand,
    check_sparse,
)

__all__ = ["sparse_sparse_mm"]

_TRIPLES_PER_CHUNK = 2**20
_TABLE_ENTRIES = 2**23
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
        self.crow_A, self.col_A = crow_A.to(torch.int64), col_A.to(torch.int64)
        self.crow_B, self.col_B = crow_B.to(torch.int64), col_B.to(torch.int64)
        self.nrows, self.ncols = pattern_A.nrows, pattern_B.ncols
        # set by symbolic(): C's pattern, row-major with sorted columns
        self.crow_C = self.col_C = torch.empty(0, dtype=torch.int64)

    @property
    def sizes(self) -> tuple[int, int, int]:
        return self.patterns[0].nnz, self.patterns[1].nnz, self.col_C.numel()

    def first_product(self, values_A: torch.Tensor, values_B: torch.Tensor) -> torch.Tensor:
        """C's pattern (kept) and values, by torch's sparse COO @ COO kernel.

        Its result is coalesced: rows and, within each, columns sorted, structural zeros
        kept (measured on the 27-point 50³ A @ A: 1.8 s against 2.4 s for CSR @ CSR,
        whose columns then still need a 2 s sort).
        """
        factors = []
        for pattern, values in zip(self.patterns, (values_A, values_B), strict=True):
            crow, col, slot, nnz = pattern.canonical_form
            if slot is not None:  # duplicates summed, as every kernel counts them
                values = values.new_zeros(nnz).index_add(0, slot, values)
            rows = _expand(crow.to(torch.int64), nnz, torch.int64)
            indices = torch.stack([rows, col.to(torch.int64)])
            size = (pattern.nrows, pattern.ncols)
            factors.append(torch.sparse_coo_tensor(indices, values, size, is_coalesced=True))
        C = torch.sparse.mm(factors[0], factors[1])
        del factors
        if not C.is_coalesced():  # pragma: no cover - torch's kernel returns coalesced
            C = C.coalesce()
        indices, values = C._indices(), C._values()
        # C's columns in int32 where they fit (half the memory the backward keeps); its
        # rows are expanded per chunk, never kept whole
        self.crow_C = _compress(indices[0], self.nrows, torch.int64)
        narrow = self.ncols <= INT32_MAX
        self.col_C = indices[1].to(torch.int32) if narrow else indices[1].clone()
        del indices, C
        return values

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
        return _expand(self.crow_A, self.col_A.numel(), torch.int64)

    def rows_C(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """The row of each of C's entries c0..c1 (those of rows r0..r1)."""
        counts = self.crow_C[r0 + 1 : r1 + 1] - self.crow_C[r0:r1]
        rows = torch.arange(r0, r1, device=counts.device)
        return torch.repeat_interleave(rows, counts, output_size=c1 - c0)

    @cached_property
    def chunks(self) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """``(first, [(r0, r1), ...])``: the triples' offsets per A entry, and row chunks."""
        counts = (self.crow_B[1:] - self.crow_B[:-1]).index_select(0, self.col_A)
        first = torch.zeros(counts.numel() + 1, dtype=torch.int64, device=counts.device)
        torch.cumsum(counts, 0, out=first[1:])
        per_row_end = first.index_select(0, self.crow_A)  # triples before each row
        # each C row's smallest and largest column: the width of a chunk's lookup table
        big = torch.iinfo(torch.int64).max
        lo = torch.full((self.nrows,), big, dtype=torch.int64, device=counts.device)
        hi = torch.full((self.nrows,), -1, dtype=torch.int64, device=counts.device)
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
        marks = torch.arange(1, max(1, -(-total // step)), device=counts.device) * step
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
        return first, out

    def walk(
        self, jobs: list[tuple[int, int, torch.Tensor, int, torch.Tensor]]
    ) -> list[torch.Tensor]:
        """For each job ``(out_role, role1, x1, role2, x2)`` (row-major vectors), the vector
        at out_role's entries of ``Σ x1[role1] * x2[role2]`` over all triples."""
        sizes = self.sizes
        x = jobs[0][2]
        outs = [x.new_zeros(sizes[job[0]]) for job in jobs]
        first, chunks = self.chunks
        device = x.device
        # no chunk reads a table slot it did not write: a reused buffer needs no clearing
        buffer = torch.empty(0, dtype=self.table_dtype, device=device)
        for r0, r1 in chunks:
            e0, e1 = int(self.crow_A[r0]), int(self.crow_A[r1])  # two reads per chunk
            if e0 == e1:
                continue
            t0 = int(first[e0])
            count = int(first[e1]) - t0
            if count == 0:
                continue
            entries = torch.arange(e0, e1, device=device)
            a = torch.repeat_interleave(
                entries, first[e0 + 1 : e1 + 1] - first[e0:e1], output_size=count
            )
            b = torch.arange(t0, t0 + count, device=device) - first.index_select(0, a)
            b += self.crow_B.index_select(0, self.col_A.index_select(0, a))
            # C entry of each triple: a table over the chunk's rows and column range
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
            where = (self.rows_A.index_select(0, a) - r0) * width
            where += self.col_B.index_select(0, b) - lo
            c = table.index_select(0, where)
            del table, where, slots
            index = (a, b, c)
            for out, (role, role1, x1, role2, x2) in zip(outs, jobs, strict=True):
                product = x1.index_select(0, index[role1]) * x2.index_select(0, index[role2])
                out.index_add_(0, index[role], product)
        return outs


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
    out: torch.Tensor = _Bilinear.apply(plan, role, role1, x1, role2, x2)
    return out


class _Product(torch.autograd.Function):
    """C's values (sorted row-major) from A's and B's: torch's kernel, then the triples."""

    @staticmethod
    def forward(plan: _Plan, values_A: torch.Tensor, values_B: torch.Tensor) -> torch.Tensor:
        return plan.first_product(values_A, values_B)

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
    pattern_A, pattern_B = Pattern.of(A), Pattern.of(B)
    plan = _Plan(pattern_A, pattern_B)
    values_A, values_B = values_of(A, pattern_A), values_of(B, pattern_B)
    values: torch.Tensor = _Product.apply(plan, values_A, values_B)
    n, p = A.shape[-2], B.shape[-1]
    shape = (*A.shape[:-1], p)
    index_dtype = A.crow_indices().dtype if A.layout == CSR else torch.int64
    slot = None
    if A.dim() == 2 and A.layout == CSR:
        dtype = index_dtype_for(plan.col_C.numel(), n, p, preferred=index_dtype)
        index_tensors: tuple[torch.Tensor, ...] = (plan.crow_C.to(dtype), plan.col_C.to(dtype))
    else:
        rows = plan.rows_C(0, plan.nrows, 0, plan.col_C.numel())
        cols = plan.col_C.to(torch.int64)
        if A.dim() == 2:
            index_tensors = (torch.stack([rows, cols]),)
        else:
            # linear position batch*n*p + i*p + j of every entry, from folded coordinates
            keys = rows * p + (cols - torch.div(rows, n, rounding_mode="floor") * p)
            del rows, cols
            index_tensors, slot, nnz = assemble(keys, shape, A.layout, index_dtype)
            del keys
    if slot is not None:
        values = values.new_zeros(nnz).index_add(0, slot, values)
    raw = build(index_tensors, values.detach(), shape, A.layout)
    return attach_values(raw, values)
