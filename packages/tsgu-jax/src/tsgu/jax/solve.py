"""``sparse_solve_j4t``: JAX's sparse solvers on torch tensors, differentiable in torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tsgu.core.extend import LinearSolver, check_solve_operands, linear_solve

from ._compiled import Plan, make_plan
from ._operator import SparseMatvec, operator_of
from ._validate import check_solver_options
from ._x64 import require_x64_for

__all__ = ["sparse_solve_j4t"]

_FN = "sparse_solve_j4t"


class _J4TSolver(LinearSolver):
    """A's JAX matvec, made once, and the plan that solves with it or with its transpose.

    ``vector``: B was a vector, which the compiled solve receives as one (not as a column).
    """

    def __init__(self, A: torch.Tensor, plan: Plan, vector: bool) -> None:
        self.A = A.detach()
        self.plan = plan
        self.vector = vector
        self._op: SparseMatvec | None = None

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        if self._op is None:
            self._op = operator_of(_FN, "A", self.A)
        rhs = B.squeeze(-1) if self.vector else B
        return self.plan.run(_FN, self._op, rhs, transpose).reshape(B.shape)


def sparse_solve_j4t(
    A: torch.Tensor,
    B: torch.Tensor,
    solve: str | Callable[..., Any] | None = "cg",
    transpose_solve: str | Callable[..., Any] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    r"""Solve ``A X = B`` with a JAX sparse solver, differentiably in torch.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)``, float32, or float64 with JAX's 64-bit mode on.
    B : torch.Tensor
        Dense ``(n,)`` or ``(n, k)`` with A's dtype and device.
    solve : {"cg", "bicgstab", "gmres"} or callable, default "cg"
        A solver of ``jax.scipy.sparse.linalg`` (CG needs a symmetric positive definite
        A), or ``solve(matvec, b, **kwargs) -> x`` (or ``(x, info)``), called on one
        right-hand side ``b`` of shape ``(n,)`` with ``matvec`` a
        :class:`~tsgu.jax.SparseMatvec` of A; it must be traceable by ``jax.jit`` and
        ``jax.vmap`` (the jax.scipy solvers are). ``None`` means the default.
    transpose_solve : {"cg", "bicgstab", "gmres"} or callable, optional
        The solver of the backward's system ``Aᵀ Y = G``; it receives Aᵀ's matvec (and
        Mᵀ as ``M``). Default: ``solve``, given Aᵀ.
    **kwargs
        Passed to the solvers: ``tol`` (or tsgu.core's name ``rtol``; not both), ``atol``,
        ``maxiter``, ``M`` (a preconditioner approximating A⁻¹: a JAX function, a
        :class:`~tsgu.jax.SparseMatvec`, or a torch/JAX matrix), ``restart`` and
        ``solve_method`` for GMRES, and ``x0`` (B's shape; forward solve only). Arrays
        travel as traced arguments; everything else must be hashable and is compiled in.

    Returns
    -------
    torch.Tensor
        X, shaped like ``B``, with A's dtype, on A's device (a view of JAX's result
        buffer, through DLPack).

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR, ``B`` is not dense, ``solve`` is neither a name nor a
        callable, a keyword the named solver does not take, an unhashable keyword value.
    ValueError
        A not 2D or not square; B's shape, dtype or device not matching A; a dtype other
        than float32/float64; float64 with JAX's 64-bit mode off (the message says how to
        enable it: ``jax.config.update("jax_enable_x64", True)``); an unknown solver
        name; both ``tol`` and ``rtol``; a negative tolerance; ``x0`` of the wrong shape or
        dtype.

    Warns
    -----
    tsgu.core.ConvergenceWarning
        When a solve (forward or backward) ends with
        :math:`\|b - A x\| > 10 \max(\mathrm{tol}\,\|b\|, \mathrm{atol})` for some column,
        NaN included. JAX's solvers return no exit code, so the true residual is measured
        (one matvec); the factor 10 leaves room for rounding between the solver's
        recurrence residual and the true one.

    Notes
    -----
    With :math:`X = A^{-1} B` and the incoming gradient :math:`\bar X`, the backward
    solves the transposed system once and samples an outer product at A's pattern
    (:func:`tsgu.core.sparse_sampled_mm`):

    .. math::

        \bar B = A^{-\top} \bar X, \qquad
        \bar A_{ij} = -\langle \bar B_{i,:}, X_{j,:} \rangle \quad (i, j) \in \mathrm{nz}(A).

    The gradient of A is sparse with A's layout, indices and order (O(nnz)); the backward
    is itself differentiable, so second derivatives hold to the solver's tolerance.

    The solve is ``jax.jit``-compiled once per solver, shapes, dtype and static keywords
    and reused; the k columns of a ``(n, k)`` B are solved together under ``jax.vmap``.
    A's values, B and X cross between torch and JAX through DLPack without copies; the
    indices go over as int32.

    The default solver is CG (pass ``solve="bicgstab"`` for a nonsymmetric A).

    Examples
    --------
    >>> import torch
    >>> from tsgu.jax import sparse_solve_j4t
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]]).to_sparse_csr().requires_grad_()
    >>> B = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> X = sparse_solve_j4t(A, B, solve="cg", tol=1e-6)
    >>> X.detach()
    tensor([0.0909, 0.6364])
    >>> X.sum().backward()
    >>> B.grad  # A^{-T} 1
    tensor([0.1818, 0.2727])
    >>> A.grad.values()  # one value per stored entry
    tensor([-0.0165, -0.1157, -0.0248, -0.1736])
    """
    A, B = check_solve_operands(_FN, A, B, a_dims=(2,), b_dims={2: (1, 2)})
    require_x64_for(_FN, "A", A.dtype)
    check_solver_options(_FN, kwargs)
    plan = make_plan(_FN, solve, transpose_solve, kwargs, B)
    return linear_solve(A, B, _J4TSolver(A, plan, vector=B.dim() == 1), fn=_FN)
