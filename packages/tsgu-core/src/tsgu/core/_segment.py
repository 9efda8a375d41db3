"""Segment reductions over the stored values of a sparse matrix (private).

A reduction of a sparse matrix along a dimension combines the stored values of each row (or
column, or batch item) into one number. Here such a group of values is a *segment*:
:class:`Cells` lists the distinct stored positions of a sparse input (merging the duplicates
an uncoalesced COO tensor may hold), and :meth:`Cells.segments` groups them by folded row,
folded column or batch item. Every kernel is one vectorised call over all groups at once:
``segment_reduce`` when the values are ordered by group (CSR rows, CSC columns, coalesced
COO rows), ``index_add`` / ``scatter_reduce`` over the group ids otherwise.

:func:`segment_sum` and :func:`gather` are each other's adjoint and are written as autograd
Functions whose backward calls the other, so a backward built from them is differentiable to
any order. :func:`global_shift` decides when one shift for all groups is as stable as a
per-group max (it spares a max pass and a gather, the larger half of a logsumexp's cost).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import torch

from ._kernel_paths import KernelChoice
from ._pattern import Pattern, _compress
from .validation import COO, CSC, CSR, check_float_dtype, check_sparse

# Widest range of exponents (max - min, zeros included) for which one shift serves every
# group: every term exp(x - max) then lies in [exp(-RANGE), 1], far from underflow (float32
# underflows below exp(-87), float64 below exp(-708)), a sum of them cannot overflow, and the
# backward's factor exp(max - out) <= exp(RANGE) leaves room for large incoming gradients.
# Within that range a per-group shift gives the same terms up to rounding.
_SAFE_RANGE = {torch.float32: 40.0, torch.float64: 300.0}
# "global": one shift for every group where the values allow it (global_shift);
# "per-group": each group's own maximum. Tests pin "per-group" to exercise it with ordinary values.
SHIFT_PATHS = KernelChoice("sparse log-sum-exp and softmax", ("global", "per-group"))


# ----------------------------------------------------------------------- segments
class Segments:
    """How ``nvalues`` values fall into ``ngroups`` groups.

    ``offsets`` ``(ngroups + 1,)`` is given when the values are ordered by group (group g
    holding ``values[offsets[g]:offsets[g + 1]]``), ``index`` (the group of each value) when
    it is at hand; at least one of them. Reductions prefer ``offsets`` (``segment_reduce``),
    gathers prefer ``index`` (``index_select`` beats ``repeat_interleave``). ``size`` is how
    many entries a group has in the dense matrix (a row's length for a row), so that
    ``size - counts`` entries of a group are absent.
    """

    def __init__(
        self,
        ngroups: int,
        nvalues: int,
        size: int,
        *,
        index: torch.Tensor | None = None,
        offsets: torch.Tensor | None = None,
    ) -> None:
        if index is None and offsets is None:  # pragma: no cover - internal misuse
            raise ValueError("Segments needs index or offsets")
        self.ngroups = ngroups
        self.nvalues = nvalues
        self.size = size
        self.index = index
        self.offsets = None if offsets is None else offsets.to(torch.int64)

    @property
    def single(self) -> bool:
        """One group holding every value (a whole-matrix reduction)."""
        return self.ngroups == 1 and self.offsets is not None

    @cached_property
    def index64(self) -> torch.Tensor:
        """int64 group ids (``scatter_reduce`` takes no other dtype)."""
        assert self.index is not None
        return self.index.to(torch.int64)

    @cached_property
    def counts(self) -> torch.Tensor:
        """Number of values in each group (int64)."""
        if self.offsets is not None:
            return self.offsets.diff()
        assert self.index is not None
        ones = torch.ones((), dtype=torch.int64, device=self.index.device).expand(self.nvalues)
        return torch.zeros(self.ngroups, dtype=torch.int64, device=self.index.device).index_add_(
            0, self.index, ones
        )

    def absent(self, dtype: torch.dtype) -> torch.Tensor:
        """How many entries of each group are not stored, as ``dtype``."""
        return (self.size - self.counts).to(dtype)


# -------------------------------------------------------------- kernels (no autograd)
def sum_kernel(seg: Segments, x: torch.Tensor) -> torch.Tensor:
    if seg.single:
        return x.sum().reshape(1)
    if seg.offsets is not None:
        return torch.segment_reduce(x, "sum", offsets=seg.offsets)
    assert seg.index is not None
    return x.new_zeros(seg.ngroups).index_add_(0, seg.index, x)


def segment_max(seg: Segments, x: torch.Tensor) -> torch.Tensor:
    """The largest value of each group, ``-inf`` for an empty one, NaN propagated."""
    if seg.single:
        if x.numel() == 0:
            return x.new_full((1,), float("-inf"))
        return x.amax().reshape(1)
    if seg.offsets is not None:
        return torch.segment_reduce(x, "max", offsets=seg.offsets)
    out = x.new_full((seg.ngroups,), float("-inf"))
    return out.scatter_reduce_(0, seg.index64, x, reduce="amax", include_self=True)


def gather_kernel(seg: Segments, y: torch.Tensor) -> torch.Tensor:
    if seg.single:
        return y.expand(seg.nvalues).clone()
    if seg.index is not None:
        return y.index_select(0, seg.index)
    return torch.repeat_interleave(y, seg.counts, output_size=seg.nvalues)


# ------------------------------------------------------ the differentiable pair
class _SegmentSum(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, seg: Segments) -> torch.Tensor:
        return sum_kernel(seg, x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.seg = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return (gather(ctx.seg, grad) if ctx.needs_input_grad[0] else None), None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(y: torch.Tensor, seg: Segments) -> torch.Tensor:
        return gather_kernel(seg, y)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.seg = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        return (segment_sum(ctx.seg, grad) if ctx.needs_input_grad[0] else None), None


def segment_sum(seg: Segments, x: torch.Tensor) -> torch.Tensor:
    """Sum of the values of each group ``(ngroups,)``; differentiable to any order."""
    if not (x.requires_grad and torch.is_grad_enabled()):
        return sum_kernel(seg, x)
    out: torch.Tensor = _SegmentSum.apply(x, seg)
    return out


def gather(seg: Segments, y: torch.Tensor) -> torch.Tensor:
    """``y[group of each value]`` ``(nvalues,)``; differentiable to any order."""
    if not (y.requires_grad and torch.is_grad_enabled()):
        return gather_kernel(seg, y)
    out: torch.Tensor = _Gather.apply(y, seg)
    return out


def global_shift(values: torch.Tensor, with_zero: bool) -> float | None:
    """One shift that keeps ``exp(x - shift)`` stable for every group, or ``None``.

    It exists when the values (and 0, if absent entries count as zeros) are finite and span
    at most ``_SAFE_RANGE``: the maximum then serves every group. Only on the CPU: on CUDA the
    check would cost a device sync and the per-group max is cheap.
    """
    if SHIFT_PATHS.forced() == "per-group" or values.device.type != "cpu" or not values.numel():
        return None
    lo, hi = (float(t) for t in torch.aminmax(values))
    if with_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    # NaN and infinities fail this comparison (inf - inf is NaN, NaN <= x is False).
    if not hi - lo <= _SAFE_RANGE.get(values.dtype, 0.0):
        return None
    return hi


# --------------------------------------------------------------------- cells
def _row_offsets(sorted_rows: torch.Tensor, nrows: int) -> torch.Tensor:
    """Compressed row pointers (int64) of a sorted row-index vector, in one O(nnz) pass."""
    # torch's own COO -> CSR index kernel: half the time of a searchsorted over the rows
    convert = getattr(torch, "_convert_indices_from_coo_to_csr", None)
    if convert is None:  # pragma: no cover - present in every torch >= 1.10
        return _compress(sorted_rows, nrows, torch.int64)
    return convert(sorted_rows, nrows, out_int32=False)


class Cells:
    """The distinct stored positions of a sparse input, and its values mapped onto them.

    For CSR, CSC and coalesced (or row-major, duplicate-free) COO the cells are the stored
    entries themselves, in their order. An uncoalesced COO tensor is first reduced to its
    sorted distinct positions: a cell's value is the sum of its duplicates (the value the
    tensor represents), and :meth:`spread` puts a per-cell result back on the entries.
    """

    def __init__(self, A: torch.Tensor, pattern: Pattern) -> None:
        shape = tuple(A.shape)
        self.batch = shape[0] if len(shape) == 3 else 1
        self.n, self.m = shape[-2], shape[-1]
        self.pattern = pattern
        self.inverse: torch.Tensor | None = None  # entry -> cell when entries were remapped
        self.first: torch.Tensor | None = None  # entry holds its cell's first occurrence
        self._rows: torch.Tensor | None = None
        self._cols: torch.Tensor | None = None
        self.row_offsets: torch.Tensor | None = None
        self.col_offsets: torch.Tensor | None = None
        self.ncells = pattern.nnz
        nrows = self.batch * self.n
        if A.layout == CSR:
            self.row_offsets = pattern.crow
        elif A.layout == CSC:
            self.col_offsets = pattern.t.crow
        elif A.is_coalesced():
            self.row_offsets = _row_offsets(pattern.rows, nrows)
        else:
            indices = A._indices()
            key = indices[-2] * self.m + indices[-1]  # row-major position (int64)
            if indices.shape[0] == 3:
                key = key + indices[0] * (self.n * self.m)
            if key.numel() < 2 or bool((key[1:] > key[:-1]).all()):
                # row-major without duplicates: as good as coalesced, without the sort
                self.row_offsets = _row_offsets(pattern.rows, nrows)
            else:
                keys, inverse = torch.unique(key, sorted=True, return_inverse=True)
                rows = torch.div(keys, self.m, rounding_mode="floor")
                self._rows = rows
                self._cols = torch.div(rows, self.n, rounding_mode="floor") * self.m + (
                    keys - rows * self.m
                )
                self.inverse = inverse
                self.ncells = keys.numel()
                self.row_offsets = _row_offsets(rows, nrows)
                if keys.numel() < key.numel():  # duplicates: mark first occurrences
                    position = torch.arange(key.numel(), device=key.device)
                    first = torch.full_like(keys, key.numel()).scatter_reduce_(
                        0, inverse, position, reduce="amin", include_self=True
                    )
                    self.first = first.index_select(0, inverse) == position

    @property
    def rows(self) -> torch.Tensor:
        return self._rows if self._rows is not None else self.pattern.rows

    @property
    def cols(self) -> torch.Tensor:
        return self._cols if self._cols is not None else self.pattern.cols

    def _rows_cost(self) -> bool:
        """Whether the row ids would have to be expanded from compressed pointers (CSR)."""
        return self._rows is None and self.pattern._rows is None

    def _cols_cost(self) -> bool:
        """Whether the column ids would have to be expanded (CSC)."""
        return self._cols is None and self.pattern.t._rows is None

    def merge(self, values: torch.Tensor) -> torch.Tensor:
        """The value of every cell (duplicates summed), differentiable."""
        if self.inverse is None:
            return values
        return torch.zeros(self.ncells, dtype=values.dtype, device=values.device).index_add(
            0, self.inverse, values
        )

    def spread(self, cell_values: torch.Tensor) -> torch.Tensor:
        """Per-entry values from per-cell ones: each cell's on its first entry, 0 on repeats.

        Coalescing the result (which sums duplicates) gives back the per-cell values.
        """
        if self.inverse is None:
            return cell_values
        out = cell_values.index_select(0, self.inverse)
        if self.first is not None:
            out = torch.where(self.first, out, out.new_zeros(()))
        return out

    def segments(self, axis: str) -> Segments:
        """Groups by ``"rows"`` (one per folded row), ``"cols"`` or ``"all"`` (per batch item)."""
        b, n, m, ncells = self.batch, self.n, self.m, self.ncells
        if axis == "rows":
            # the row ids are at hand for COO (its indices) and CSC, not for CSR
            rows = None if self.row_offsets is not None and self._rows_cost() else self.rows
            return Segments(b * n, ncells, m, index=rows, offsets=self.row_offsets)
        if axis == "cols":
            cols = None if self.col_offsets is not None and self._cols_cost() else self.cols
            return Segments(b * m, ncells, n, index=cols, offsets=self.col_offsets)
        # the cells are batch-major in every layout: one contiguous segment per batch item
        if self.row_offsets is not None:
            offsets = self.row_offsets[::n] if n > 0 else self.row_offsets.new_zeros(b + 1)
        else:
            assert self.col_offsets is not None
            offsets = self.col_offsets[::m] if m > 0 else self.col_offsets.new_zeros(b + 1)
        return Segments(b, ncells, n * m, offsets=offsets)


# -------------------------------------------------------------------- arguments
def check_input(fn: str, input: object) -> torch.Tensor:
    """A sparse COO/CSR/CSC tensor, 2D or batched 3D, scalar float32/float64 values."""
    A = check_sparse(fn, "input", input, layouts=(COO, CSR, CSC), dims=(2, 3))
    check_float_dtype(fn, "input", A)
    return A


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is an integer (numpy and 0-d tensors too), not a bool."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _as_dims(fn: str, dim: object, single: bool) -> list[int]:
    one = _as_int(dim)
    if one is not None:
        return [one]
    if not single and isinstance(dim, Sequence) and not isinstance(dim, str):
        items = [_as_int(d) for d in dim]
        if all(d is not None for d in items):
            return [d for d in items if d is not None]
    expected = "an int" if single else "an int or a sequence of ints"
    raise TypeError(f"{fn}: dim must be {expected}, got {dim!r}")


def reduced_axis(fn: str, A: torch.Tensor, dim: object, *, single: bool = False) -> str:
    """``"rows"``, ``"cols"`` or ``"all"``: the groups that reducing ``dim`` of ``A`` forms.

    Reducing the last dimension leaves one value per row (``"rows"``), reducing the
    second-to-last one value per column, reducing both one value per matrix.
    """
    ndim = A.dim()
    dims = _as_dims(fn, dim, single)
    if not dims:
        raise ValueError(f"{fn}: dim must name at least one dimension, got {dim!r}")
    for d in dims:
        if not -ndim <= d < ndim:
            raise ValueError(
                f"{fn}: dim must be in [{-ndim}, {ndim - 1}] for a {ndim}D input, got {dim!r}"
            )
    normalised = sorted(d % ndim for d in dims)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{fn}: dim must not repeat a dimension, got {dim!r}")
    if ndim == 3 and 0 in normalised:
        raise ValueError(
            f"{fn}: dim must not include the batch dimension 0 of a batched (b, n, m) input, "
            f"got {dim!r}; reduce dim 1, 2 or [1, 2] (each matrix on its own)"
        )
    last, second = ndim - 1, ndim - 2
    if normalised == [last]:
        return "rows"
    if normalised == [second]:
        return "cols"
    return "all"


def output_shape(A: torch.Tensor, axis: str, keepdim: bool) -> tuple[int, ...]:
    """Shape of a reduction of ``A`` over ``axis``, as :func:`torch.logsumexp` gives it."""
    batch = tuple(A.shape[:-2])
    n, m = A.shape[-2], A.shape[-1]
    if axis == "rows":
        return (*batch, n, 1) if keepdim else (*batch, n)
    if axis == "cols":
        return (*batch, 1, m) if keepdim else (*batch, m)
    return (*batch, 1, 1) if keepdim else batch
