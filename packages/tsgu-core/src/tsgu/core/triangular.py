"""``sparse_triangular_solve``: a sparse triangular solve with a sparse gradient."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from ._compiled.linear_solve import SolverSpec, parts_linear_solve, register_solver
from ._compiled.parts import SparseParts
from ._kernel_paths import KernelChoice
from ._levels import LevelSchedule
from ._linear_solve import LinearSolver, check_solve_operands, linear_solve
from ._pattern import Pattern, stored_values
from ._pattern_cache import cached_pattern
from .validation import check_bools

__all__ = ["TRIANGULAR_PATHS", "sparse_triangular_solve"]

# "torch": torch's sparse triangular kernel; "levels": the level-scheduled solve.
TRIANGULAR_PATHS = KernelChoice("sparse_triangular_solve", ("torch", "levels"))


def _torch_kernel_available(B: torch.Tensor) -> bool:
    """Whether torch's sparse triangular kernel runs here (MKL on the CPU, cuSPARSE on CUDA)."""
    forced = TRIANGULAR_PATHS.forced()
    if forced is not None:
        return forced == "torch"
    if B.dtype not in (torch.float32, torch.float64):
        return False
    if B.device.type == "cuda":
        return True
    return B.device.type == "cpu" and torch.backends.mkl.is_available()


class TriangularSolver(LinearSolver):
    """Solves with a sparse triangular A (its folded pattern and values) and with Aᵀ."""

    def __init__(
        self, pattern: Pattern, values: torch.Tensor, upper: bool, unitriangular: bool
    ) -> None:
        self.pattern = pattern
        self.values = values.detach()
        self.upper = upper
        self.unitriangular = unitriangular

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        B2 = B.reshape(-1, B.shape[-1])  # a batch is one block-diagonal system
        if _torch_kernel_available(B2):
            X = self._torch_kernel(B2, transpose)
        else:
            X = self._level_solve(B2, transpose)
        return X.reshape(B.shape)

    def used_entries(self, pattern: Pattern) -> torch.Tensor | None:
        """The solve reads its triangle and (unless unit) the diagonal. Cached on the pattern:
        a backward may run many times."""
        cache: dict[tuple[bool, bool], torch.Tensor | None] = pattern.__dict__.setdefault(
            "_triangular_used", {}
        )
        key = (self.upper, self.unitriangular)
        if key not in cache:
            rows, cols = pattern.rows, pattern.cols
            used = cols > rows if self.upper else cols < rows
            if not self.unitriangular:
                used = used | (cols == rows)
            cache[key] = None if bool(used.all()) else used
        return cache[key]

    def _level_solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        pattern, values = self.pattern, self.values
        rows, cols = pattern.rows, pattern.cols
        strict = cols > rows if self.upper else cols < rows
        # Row i of the solved matrix reads entry (r, c) as (r, c), or as (c, r) when transposed.
        dst, src = (cols, rows) if transpose else (rows, cols)
        schedule = LevelSchedule(dst[strict], src[strict], pattern.nrows)
        diag = B.new_ones(pattern.nrows) if self.unitriangular else pattern.diagonal(values)
        return schedule.solve(values[strict], diag, B)

    def _torch_kernel(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        pattern, values = self.pattern, self.values
        crow, col, slot, nnz = pattern.canonical_form
        if slot is not None:
            values = values.new_zeros(nnz).index_add_(0, slot, values)
        A = torch.sparse_csr_tensor(
            crow, col, values, (pattern.nrows, pattern.ncols), check_invariants=False
        )
        with warnings.catch_warnings():
            # The sparse overload has no replacement yet (torch.linalg.solve_triangular is
            # dense only).
            warnings.simplefilter("ignore")
            return torch.triangular_solve(
                B.contiguous(),
                A,
                upper=self.upper,
                transpose=transpose,
                unitriangular=self.unitriangular,
            ).solution


def _solve_kernel(
    pattern: Pattern,
    values: torch.Tensor,
    B: torch.Tensor,
    upper: bool,
    unitriangular: bool,
    transpose: bool,
) -> torch.Tensor:
    """A triangular solve on a folded 2D block, without autograd (for the preconditioners)."""
    return TriangularSolver(pattern, values, upper, unitriangular).solve(B, transpose)


def _check_diagonal(fn: str, A: torch.Tensor, pattern: Pattern) -> None:
    """A zero or missing diagonal entry is reported, not turned into inf."""
    values = stored_values(A).detach().reshape(-1)
    # the common case, one stored entry per diagonal position (found once per pattern): a
    # gather, no scatter; otherwise (or to name the row) duplicates summed, absent ones zero
    if pattern.one_entry_per_diagonal:
        diagonal = values.index_select(0, pattern.diagonal_entries[0])
        if int(torch.count_nonzero(diagonal)) == diagonal.numel():  # no temporary mask
            return
    zero = pattern.diagonal(values) == 0
    if bool(zero.any()):
        first = int(torch.argmax(zero.to(torch.uint8)))
        n = A.shape[-1]
        where = f"row {first % n}" + (f" of batch item {first // n}" if A.dim() == 3 else "")
        raise ValueError(
            f"{fn}: A has a zero or missing diagonal entry at {where}, so the system is "
            "singular; pass unitriangular=True if A has an implicit unit diagonal"
        )


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
    A, B = check_solve_operands(fn, A, B, b_dims={2: (1, 2, 3), 3: (3,)})
    if isinstance(A, SparseParts):  # a compiled region: the one solve op, this solver named
        spec = SolverSpec("triangular", {"upper": upper, "unitriangular": unitriangular})
        return parts_linear_solve(A, B, spec, transpose=transpose, fn=fn)
    # kept between calls: its canonical CSR form and the entries the solve reads are made once
    pattern = cached_pattern(A)
    if not unitriangular:
        _check_diagonal(fn, A, pattern)
    solver = TriangularSolver(pattern, stored_values(A).reshape(-1), upper, unitriangular)
    return linear_solve(A, B, solver, transpose=transpose, pattern=pattern, fn=fn)


def _compiled_solver(A: torch.Tensor, pattern: Pattern, options: dict[str, Any]) -> LinearSolver:
    """The solver of ``SolverSpec("triangular", ...)``, made when the compiled op runs."""
    if not options["unitriangular"]:
        _check_diagonal("sparse_triangular_solve", A, pattern)
    return TriangularSolver(pattern, stored_values(A).reshape(-1), **options)


def _compiled_used(pattern: Pattern, options: dict[str, Any]) -> torch.Tensor | None:
    return TriangularSolver(pattern, torch.empty(0), **options).used_entries(pattern)


register_solver("triangular", _compiled_solver, _compiled_used)
