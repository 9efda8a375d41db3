"""``sparse_triangular_solve``: a sparse triangular solve with a sparse gradient."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from ._levels import LevelSchedule
from ._pattern import Pattern, sampled_product, values_of
from .validation import (
    COO,
    CSR,
    check_bools,
    check_dense,
    check_operand,
    check_sparse,
    check_square,
)

__all__ = ["sparse_triangular_solve"]

# Tests set this to exercise the level-scheduled solve on machines that have the kernel.
_FORCE_LEVEL_SCHEDULING = False


def _torch_kernel_available(B: torch.Tensor) -> bool:
    """Whether torch's sparse triangular kernel runs here (MKL on the CPU, cuSPARSE on CUDA)."""
    if _FORCE_LEVEL_SCHEDULING or B.dtype not in (torch.float32, torch.float64):
        return False
    if B.device.type == "cuda":
        return True
    return B.device.type == "cpu" and torch.backends.mkl.is_available()


def _used_entries(pattern: Pattern, upper: bool, unitriangular: bool) -> torch.Tensor | None:
    """Mask of the stored entries the solve reads (its triangle, the diagonal unless unit),
    or None when it reads them all. Cached on the pattern: a backward may run many times."""
    cache: dict[tuple[bool, bool], torch.Tensor | None] = pattern.__dict__.setdefault(
        "_triangular_used", {}
    )
    key = (upper, unitriangular)
    if key not in cache:
        rows, cols = pattern.rows, pattern.cols
        used = cols > rows if upper else cols < rows
        if not unitriangular:
            used = used | (cols == rows)
        cache[key] = None if bool(used.all()) else used
    return cache[key]


def _diagonal(pattern: Pattern, values: torch.Tensor) -> torch.Tensor:
    """The diagonal of the folded matrix (stored duplicates summed, absent entries zero)."""
    on_diag = pattern.rows == pattern.cols
    # one pass, no boolean indexing (whose nonzero() would dominate the cost)
    return values.new_zeros(pattern.nrows).index_add_(
        0, pattern.rows, torch.where(on_diag, values, 0.0)
    )


def _level_solve(
    pattern: Pattern,
    values: torch.Tensor,
    B: torch.Tensor,
    upper: bool,
    unitriangular: bool,
    transpose: bool,
) -> torch.Tensor:
    rows, cols = pattern.rows, pattern.cols
    strict = cols > rows if upper else cols < rows
    # Row i of the solved matrix reads entry (r, c) as (r, c), or as (c, r) when transposed.
    dst, src = (cols, rows) if transpose else (rows, cols)
    schedule = LevelSchedule(dst[strict], src[strict], pattern.nrows)
    diag = B.new_ones(pattern.nrows) if unitriangular else _diagonal(pattern, values)
    return schedule.solve(values[strict], diag, B)


def _solve_kernel(
    pattern: Pattern,
    values: torch.Tensor,
    B: torch.Tensor,
    upper: bool,
    unitriangular: bool,
    transpose: bool,
) -> torch.Tensor:
    if not _torch_kernel_available(B):
        return _level_solve(pattern, values, B, upper, unitriangular, transpose)
    crow, col, slot, nnz = pattern.canonical_form
    if slot is not None:
        values = values.new_zeros(nnz).index_add_(0, slot, values)
    A = torch.sparse_csr_tensor(
        crow, col, values, (pattern.nrows, pattern.ncols), check_invariants=False
    )
    with warnings.catch_warnings():
        # The sparse overload has no replacement yet (torch.linalg.solve_triangular is dense only).
        warnings.simplefilter("ignore")
        return torch.triangular_solve(
            B.contiguous(), A, upper=upper, transpose=transpose, unitriangular=unitriangular
        ).solution


class _TriangularSolve(torch.autograd.Function):
    @staticmethod
    def forward(
        pattern: Pattern,
        values: torch.Tensor,
        B: torch.Tensor,
        upper: bool,
        unitriangular: bool,
        transpose: bool,
    ) -> torch.Tensor:
        return _solve_kernel(pattern, values, B, upper, unitriangular, transpose)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, values, _, upper, unitriangular, transpose = inputs
        ctx.pattern = pattern
        ctx.flags = (upper, unitriangular, transpose)
        ctx.save_for_backward(values, output)

    @staticmethod
    def backward(ctx: Any, grad_X: torch.Tensor) -> tuple[Any, ...]:
        values, X = ctx.saved_tensors
        upper, unitriangular, transpose = ctx.flags
        pattern: Pattern = ctx.pattern
        grad_values = grad_B = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            # grad_B = A^{-T} grad_X (or A^{-1} grad_X when the forward solved with A^T)
            grad_B = _triangular(pattern, values, grad_X, upper, unitriangular, not transpose)
        if ctx.needs_input_grad[1]:
            assert grad_B is not None
            # A X = B: grad_A = -grad_B X^T; A^T X = B: grad_A = -X grad_B^T (at the pattern)
            outer = (
                sampled_product(pattern, X, grad_B)
                if transpose
                else sampled_product(pattern, grad_B, X)
            )
            used = _used_entries(pattern, upper, unitriangular)
            grad_values = -outer if used is None else -outer * used
        return None, grad_values, grad_B, None, None, None


def _triangular(
    pattern: Pattern,
    values: torch.Tensor,
    B: torch.Tensor,
    upper: bool,
    unitriangular: bool,
    transpose: bool,
) -> torch.Tensor:
    out: torch.Tensor = _TriangularSolve.apply(pattern, values, B, upper, unitriangular, transpose)
    return out


def fold_rhs(
    A: torch.Tensor, B: torch.Tensor
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """B as a 2D ``(b*n, k)`` block for the folded A, and the map back to B's shape.

    A 2D with B ``(n,)``, ``(n, k)`` or ``(b, n, k)`` (one A for every item); A 3D with B
    ``(b, n, k)``.
    """
    n = A.shape[-1]
    if B.dim() == 1:
        return B.unsqueeze(1), lambda X: X.squeeze(1)
    if B.dim() == 2:
        return B, lambda X: X
    b, _, k = B.shape
    if A.dim() == 3:
        return B.reshape(b * n, k), lambda X: X.reshape(b, n, k)
    # One matrix for a batch of right-hand sides: solve all b*k columns at once.
    return B.permute(1, 0, 2).reshape(n, b * k), lambda X: X.reshape(n, b, k).permute(1, 0, 2)


def _check_diagonal(fn: str, A: torch.Tensor, pattern: Pattern) -> None:
    """A zero or missing diagonal entry is reported, not turned into inf."""
    zero = _diagonal(pattern, _values_detached(A)) == 0
    if bool(zero.any()):
        first = int(torch.argmax(zero.to(torch.uint8)))
        n = A.shape[-1]
        where = f"row {first % n}" + (f" of batch item {first // n}" if A.dim() == 3 else "")
        raise ValueError(
            f"{fn}: A has a zero or missing diagonal entry at {where}, so the system is "
            "singular; pass unitriangular=True if A has an implicit unit diagonal"
        )


def _values_detached(A: torch.Tensor) -> torch.Tensor:
    return (A._values() if A.layout == COO else A.values()).detach().reshape(-1)


def sparse_triangular_solve(
    A: torch.Tensor,
    B: torch.Tensor,
    upper: bool = True,
    unitriangular: bool = False,
    transpose: bool = False,
) -> torch.Tensor:
    r"""Solve a sparse triangular system, with a sparse gradient for the matrix.

    Solves :math:`A X = B`, or :math:`A^\top X = B` with ``transpose=True``.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)`` or batch ``(b, n, n)``, int32 or int64 indices. Only the
        triangle named by ``upper`` is read (entries in the other triangle are ignored and
        get a zero gradient, as in LAPACK); with ``unitriangular`` the diagonal is taken as
        ones and stored diagonal entries are ignored, in the forward and the backward alike.
    B : torch.Tensor
        Dense ``(n,)``, ``(n, k)`` or ``(b, n, k)``; with a batched ``A``, ``(b, n, k)``.
    upper : bool
        A is upper (True) or lower (False) triangular.
    unitriangular : bool
        A has a unit diagonal that is not read.
    transpose : bool
        Solve with :math:`A^\top`.

    Returns
    -------
    torch.Tensor
        X, shaped like ``B``.

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO/CSR tensor, or ``B`` is not dense.
    ValueError
        A non-square ``A``; shapes, batch sizes, dtypes or devices that do not match; a zero
        or missing diagonal entry (when not ``unitriangular``): the system is singular.

    Notes
    -----
    With :math:`A X = B` and incoming gradient :math:`\bar X`:

    .. math::

        \bar B = A^{-\top} \bar X, \qquad
        \bar A_{ij} = -\langle \bar B_{i,:}, X_{j,:} \rangle \quad (i, j) \in \mathrm{nz}(A)

    (for :math:`A^\top X = B`: :math:`\bar B = A^{-1} \bar X`,
    :math:`\bar A_{ij} = -\langle X_{i,:}, \bar B_{j,:} \rangle`). :math:`\bar B` is one more
    triangular solve with the transposed system; :math:`\bar A` is sampled at A's pattern,
    returned with A's layout and indices. The backward is differentiable again.

    The forward uses torch's sparse triangular kernel where it exists (MKL on the CPU,
    cuSPARSE on CUDA); elsewhere (e.g. CPU builds without MKL) a level-scheduled solve
    that groups rows by dependency level and solves each level in one vectorised step.
    A batch is folded into one block-diagonal system.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_triangular_solve
    >>> L = torch.tensor([[2.0, 0.0], [1.0, 4.0]]).to_sparse_csr().requires_grad_()
    >>> x = sparse_triangular_solve(L, torch.tensor([2.0, 9.0]), upper=False)
    >>> x.detach()
    tensor([1., 2.])
    >>> x.sum().backward()
    >>> L.grad.values()  # one value per stored entry
    tensor([-0.3750, -0.2500, -0.5000])
    """
    fn = "sparse_triangular_solve"
    check_bools(fn, upper=upper, unitriangular=unitriangular, transpose=transpose)
    A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=(2, 3))
    B = check_dense(fn, "B", B, dims=(1, 2, 3))
    check_square(fn, "A", A)
    if A.dim() == 3 and B.dim() != 3:
        raise ValueError(
            f"{fn}: B must have 3 dimensions (b, n, k) when A is batched, "
            f"got shape {tuple(B.shape)}"
        )
    check_operand(fn, A, B, A.shape[-1])
    B2, restore = fold_rhs(A, B)
    pattern = Pattern.of(A)
    if not unitriangular:
        _check_diagonal(fn, A, pattern)
    values = values_of(A, pattern)
    return restore(_triangular(pattern, values, B2, upper, unitriangular, transpose))
