"""The one differentiable sparse solve: a solver supplies solves with A and Aᵀ, this does the rest.

The design is lineax's: one solve primitive, whose backward is the same primitive on the
transposed system, written once for every solver. A :class:`LinearSolver` knows one matrix
A and solves ``A X = B`` or ``Aᵀ X = B`` for a block of right-hand sides; it may keep what it
likes between the calls (a factorization, a preconditioner, a compiled function), and the
backward calls the very same object, so no set-up is ever repeated. :func:`linear_solve`
owns everything else: the checks, the folding of vector, matrix and batched right-hand
sides, the gradient for B (one transposed solve), the sparse gradient for A at A's own
pattern and order (a sampled product), and second derivatives (the backward is made of
differentiable operations again).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ._compiled.parts import SparseParts, check_parts
from ._pattern import Pattern, _tracks_grad, sampled_product, values_of
from ._rhs import fold_rhs
from .validation import COO, CSR, check_dense, check_operand, check_sparse, check_square

__all__ = ["LinearSolver", "check_solve_operands", "check_tol_or_rtol", "linear_solve"]

# B's dimensions by A's: a vector, a block or a batch of blocks (one A for all) for a 2D A;
# a batch of vectors or of blocks for a batched A.
_B_DIMS = {2: (1, 2, 3), 3: (2, 3)}


class LinearSolver(abc.ABC):
    """How to solve with one sparse matrix A and with its transpose.

    Subclass it, give the subclass what it needs in ``__init__`` (A itself, options, a
    factorization made there or on first use), and implement :meth:`solve`. Hand an
    instance to :func:`linear_solve`, which calls :meth:`solve` for the forward and, with
    ``transpose`` flipped, for every backward and double backward of that solve.
    """

    @abc.abstractmethod
    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        """X with ``A X = B``, or ``Aᵀ X = B`` when ``transpose`` is True.

        ``B`` is a dense block: ``(n, k)`` for a 2D A, ``(b, n, k)`` for a batch of ``b``
        matrices (a vector right-hand side is one column). Return X with B's shape. Runs
        under ``torch.no_grad()``: :func:`linear_solve` does the differentiating.
        """

    def used_entries(self, pattern: Pattern) -> torch.Tensor | None:
        """Mask of A's stored entries that the solves read, or None when they read all.

        Entries a solver ignores (the other triangle of a triangular solve) get a zero
        gradient. ``pattern`` is A's :class:`~tsgu.core.extend.Pattern`.
        """
        return None


def check_solve_operands(
    fn: str,
    A: object,
    B: object,
    *,
    a_dims: Sequence[int] = (2, 3),
    b_dims: Mapping[int, Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a solve's operands the way every tsgu solve does, and return them.

    ``A`` must be a square sparse COO/CSR float32/float64 tensor with ``a_dims`` dimensions;
    ``B`` a dense tensor with ``b_dims[A.dim()]`` dimensions (default: ``(n,)``, ``(n, k)``
    or ``(b, n, k)`` for a 2D A; ``(b, n)`` or ``(b, n, k)`` for a batched A) with A's rows,
    batch size, dtype and device. A dtype mismatch is a ValueError naming the cast.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import check_solve_operands
    >>> A = torch.eye(3, dtype=torch.float64).to_sparse_csr()
    >>> check_solve_operands("my_solve", A, torch.ones(3))
    Traceback (most recent call last):
        ...
    ValueError: my_solve: A and B must have the same dtype, got torch.float64 and ...
    """
    if isinstance(A, SparseParts):  # built by tsgu's constructors in a compiled region
        A = check_parts(fn, "A", A, layouts=(COO, CSR), dims=tuple(a_dims))
    else:
        A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=a_dims)
    B = check_dense(fn, "B", B, dims=(b_dims or _B_DIMS)[A.dim()])
    check_square(fn, "A", A)
    check_operand(fn, A, B, A.shape[-1])
    return A, B


def check_tol_or_rtol(fn: str, kwargs: Mapping[str, object]) -> None:
    """``tol`` (SciPy's older name of ``rtol``) and ``rtol`` name one setting: not both
    (a value of None counts as not given).

    Examples
    --------
    >>> from tsgu.core.extend import check_tol_or_rtol
    >>> check_tol_or_rtol("my_solve", {"tol": 1e-8, "rtol": 1e-6})
    Traceback (most recent call last):
        ...
    ValueError: my_solve: tol and rtol must not both be given (...), got tol=1e-08 and ...
    """
    if kwargs.get("tol") is not None and kwargs.get("rtol") is not None:
        raise ValueError(
            f"{fn}: tol and rtol must not both be given (tol is the older name of rtol), "
            f"got tol={kwargs['tol']!r} and rtol={kwargs['rtol']!r}; pass only rtol"
        )


def _solve_checked(solver: LinearSolver, B: torch.Tensor, transpose: bool, fn: str) -> torch.Tensor:
    X = solver.solve(B, transpose)
    if not isinstance(X, torch.Tensor) or X.shape != B.shape:
        got = f"shape {tuple(X.shape)}" if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(
            f"{fn}: the solver's result must be a tensor of shape {tuple(B.shape)}, got {got}; "
            "return X with B's shape"
        )
    return X.to(B.dtype)


class _LinearSolve(torch.autograd.Function):
    @staticmethod
    def forward(
        pattern: Pattern,
        values: torch.Tensor,
        B: torch.Tensor,
        solver: LinearSolver,
        transpose: bool,
        fn: str,
    ) -> torch.Tensor:
        return _solve_checked(solver, B, transpose, fn)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, values, _, solver, transpose, fn = inputs
        ctx.pattern, ctx.solver, ctx.transpose, ctx.fn = pattern, solver, transpose, fn
        ctx.save_for_backward(values, output)

    @staticmethod
    def backward(ctx: Any, grad_X: torch.Tensor) -> tuple[Any, ...]:
        values, X = ctx.saved_tensors
        pattern: Pattern = ctx.pattern
        # grad_B = A⁻ᵀ grad_X (A⁻¹ grad_X when this solve was with Aᵀ): the same solve on
        # the transposed system, itself differentiable.
        grad_B: torch.Tensor = _LinearSolve.apply(
            pattern, values, grad_X, ctx.solver, not ctx.transpose, ctx.fn
        )
        grad_values = None
        if ctx.needs_input_grad[1]:
            G, Xf = grad_B.reshape(-1, grad_B.shape[-1]), X.reshape(-1, X.shape[-1])
            # A X = B: grad_A = -grad_B Xᵀ; Aᵀ X = B: grad_A = -X grad_Bᵀ; at A's pattern only.
            outer = (
                sampled_product(pattern, Xf, G)
                if ctx.transpose
                else sampled_product(pattern, G, Xf)
            )
            used = ctx.solver.used_entries(pattern)
            grad_values = -outer if used is None else -outer * used
        return None, grad_values, grad_B if ctx.needs_input_grad[2] else None, None, None, None


def fold_block(
    A: torch.Tensor, B: torch.Tensor
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """B (checked against A) as the block a :class:`LinearSolver` takes, and the way back."""
    row_dim = 0 if B.dim() == 1 else (1 if A.dim() == 3 and B.dim() == 2 else -2)
    return fold_rhs(B, row_dim, 0 if A.dim() == 3 else None)


def linear_solve(
    A: torch.Tensor,
    B: torch.Tensor,
    solver: LinearSolver,
    *,
    transpose: bool = False,
    pattern: Pattern | None = None,
    fn: str = "linear_solve",
) -> torch.Tensor:
    r"""Solve ``A X = B`` (or ``Aᵀ X = B``) with ``solver``, differentiably, with a sparse
    gradient for A.

    Every tsgu solve is this function with its own :class:`LinearSolver`:
    :func:`~tsgu.core.sparse_triangular_solve`, :func:`~tsgu.core.sparse_generic_solve`,
    :func:`tsgu.cupy.sparse_solve_c4t` and :func:`tsgu.jax.sparse_solve_j4t`.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)`` or a batch ``(b, n, n)``, float32 or float64, int32 or
        int64 indices; possibly built from trainable values with tsgu's constructors.
    B : torch.Tensor
        Dense ``(n,)``, ``(n, k)`` or ``(b, n, k)`` (one A for every item) for a 2D A;
        ``(b, n)`` or ``(b, n, k)`` for a batched A. A's dtype and device.
    solver : LinearSolver
        Solves with A and with Aᵀ (made for this A).
    transpose : bool
        Solve ``Aᵀ X = B``.
    pattern : Pattern, optional
        ``Pattern.of(A)``, when the caller (or its solver) has made it already: its cached
        forms are then shared.
    fn : str
        The name that error messages start with.

    Returns
    -------
    torch.Tensor
        X, shaped like B.

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR, or ``B`` is not dense.
    ValueError
        A non-square A; shapes, batch sizes, dtypes or devices of A and B that do not match
        (a dtype mismatch names the cast that fixes it); a solver that returns another shape.

    Notes
    -----
    With :math:`X = A^{-1} B` and incoming gradient :math:`\bar X`:

    .. math::

        \bar B = A^{-\top} \bar X, \qquad
        \bar A_{ij} = -\langle \bar B_{i,:}, X_{j,:} \rangle \quad (i, j) \in \mathrm{nz}(A)

    (for :math:`X = A^{-\top} B`: :math:`\bar B = A^{-1} \bar X`,
    :math:`\bar A_{ij} = -\langle X_{i,:}, \bar B_{j,:} \rangle`). :math:`\bar B` is the
    solver's other solve; :math:`\bar A` is a sampled product at A's stored entries, returned
    with A's layout, indices and order (O(nnz)). The backward is this same solve again, so
    second derivatives are exact to the solver's accuracy. Batches are one block-diagonal
    system, and entries the solver does not read (:meth:`LinearSolver.used_entries`) get a
    zero gradient.

    Examples
    --------
    A solver that keeps an incomplete Cholesky preconditioner for the forward and backward
    solves of a symmetric A (so the transposed solve is the solve itself):

    >>> import torch
    >>> import tsgu.core as tc
    >>> from tsgu.core.extend import LinearSolver, linear_solve
    >>> class PreconditionedCG(LinearSolver):
    ...     def __init__(self, A):
    ...         self.A = A.detach()
    ...         self.M = tc.ic0(self.A)  # made once, used by every solve below
    ...     def solve(self, B, transpose):
    ...         return tc.cg(self.A, B, M=self.M, rtol=1e-12)  # Aᵀ = A
    >>> P = tc.poisson_2d(8, dtype=torch.float64)
    >>> values = P.values().clone().requires_grad_()
    >>> A = tc.sparse_csr_tensor(P.crow_indices(), P.col_indices(), values, P.shape)
    >>> b = torch.ones(64, dtype=torch.float64)
    >>> x = linear_solve(A, b, PreconditionedCG(A))
    >>> torch.allclose(tc.sparse_mm(A, x), b)
    True
    >>> x.sum().backward()
    >>> values.grad.shape  # one value per stored entry
    torch.Size([288])
    """
    A, B = check_solve_operands(fn, A, B)
    if pattern is None:
        pattern = Pattern.of(A)
    values = values_of(A, pattern)
    block, unfold = fold_block(A, B)
    if _tracks_grad(values, block):
        X: torch.Tensor = _LinearSolve.apply(pattern, values, block, solver, transpose, fn)
    else:  # nothing to record: the solve, without autograd's cost
        with torch.no_grad():
            X = _solve_checked(solver, block, transpose, fn)
    return unfold(X)
