"""``sparse_solve_j4t``: JAX's sparse solvers on torch tensors, differentiable in torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tsgu.core import sparse_sampled_mm
from tsgu.core.validation import (
    COO,
    CSR,
    check_dense,
    check_float_dtype,
    check_same_device,
    check_same_dtype,
    check_sparse,
    check_square,
)

from ._compiled import Plan, make_plan
from ._validate import check_solver_options
from ._x64 import require_x64_for

__all__ = ["sparse_solve_j4t"]

_FN = "sparse_solve_j4t"


def _fold(T: torch.Tensor) -> torch.Tensor:
    """A vector ``(n,)`` as the one-column block ``(n, 1)``; a block as it is."""
    return T.unsqueeze(1) if T.dim() == 1 else T


class _SolveJ4T(torch.autograd.Function):
    """X = A⁻¹ B (or A⁻ᵀ B when the plan is transposed), solved in JAX."""

    @staticmethod
    def forward(A: torch.Tensor, B: torch.Tensor, plan: Plan) -> torch.Tensor:
        return plan.run(_FN, A.detach(), B.detach())

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        A, _, plan = inputs
        ctx.plan = plan
        ctx.save_for_backward(A, output)

    @staticmethod
    def backward(ctx: Any, grad_X: torch.Tensor) -> tuple[Any, ...]:
        A, X = ctx.saved_tensors
        plan: Plan = ctx.plan
        need_A, need_B = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_A or need_B):
            return None, None, None
        # One solve with the transposed system (a differentiable one: second derivatives
        # go through it again). Never the forward system: 0.2 solved A y = g here.
        grad_B = _solve(A, grad_X, plan.flipped())
        grad_A = None
        if need_A:
            G, Xf = _fold(grad_B), _fold(X)
            if plan.transposed:  # X = A^{-T} B: grad_A = -X grad_B^T
                grad_A = sparse_sampled_mm(A.detach(), -Xf, G.mT)
            else:  # X = A^{-1} B: grad_A = -grad_B X^T
                grad_A = sparse_sampled_mm(A.detach(), -G, Xf.mT)
        return grad_A, grad_B if need_B else None, None


def _solve(A: torch.Tensor, B: torch.Tensor, plan: Plan) -> torch.Tensor:
    out: torch.Tensor = _SolveJ4T.apply(A, B, plan)
    return out


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
        Passed to the solvers: ``tol`` (or tsgu.core's name ``rtol``), ``atol``,
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
        name; a negative tolerance; ``x0`` of the wrong shape or dtype.

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

    Compared with torchsparsegradutils 0.2: its default transposed solve was applied to an
    already transposed matrix (so it solved :math:`A y = \bar X`, wrong for every
    nonsymmetric A); JAX's convergence was never checked; float64 switched JAX's 64-bit
    mode on for the whole process; a multi-right-hand-side solve looped over columns. Its
    default solver was BiCGSTAB; here it is CG (pass ``solve="bicgstab"`` for a
    nonsymmetric A).

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
    A = check_sparse(_FN, "A", A, layouts=(COO, CSR), dims=(2,))
    B = check_dense(_FN, "B", B, dims=(1, 2))
    check_square(_FN, "A", A)
    if B.shape[0] != A.shape[0]:
        raise ValueError(
            f"{_FN}: B must have {A.shape[0]} rows to match A of shape {tuple(A.shape)}, "
            f"got shape {tuple(B.shape)}"
        )
    check_float_dtype(_FN, "A", A)
    check_same_dtype(_FN, ("A", "B"), A, B)
    check_same_device(_FN, ("A", "B"), A, B)
    require_x64_for(_FN, "A", A.dtype)
    check_solver_options(_FN, kwargs)
    plan = make_plan(_FN, solve, transpose_solve, kwargs, B)
    return _solve(A, B, plan)
