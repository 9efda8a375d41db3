"""``sparse_generic_lstsq``: differentiable sparse least squares with a sparse gradient."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._pattern import Pattern, _build, pattern_matmul, sampled_product, transpose, values_of
from ._rhs import fold_rhs
from .krylov import lsmr
from .validation import (
    COO,
    CSR,
    check_dense,
    check_operand,
    check_sparse,
)

__all__ = ["sparse_generic_lstsq"]

Lstsq = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-12 if dtype == torch.float64 else 1e-6


def _default_lstsq(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    tol = _tolerance(A.dtype)
    out: torch.Tensor = lsmr(A, B, atol=tol, btol=tol, maxiter=20 * A.shape[-1])
    return out


def _default_transpose_lstsq(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    # LSMR from x0 = 0 on the wide system Aᵀ y = g returns its minimum-norm solution.
    tol = _tolerance(A.dtype)
    out: torch.Tensor = lsmr(transpose(A), G, atol=tol, btol=tol, maxiter=20 * A.shape[-1])
    return out


@dataclass(frozen=True)
class _Spec:
    """The two solvers, and the caller's right-hand-side layout (which they see)."""

    lstsq: Lstsq
    transpose_lstsq: Lstsq
    row_dim: int
    batch: int | None
    unfold: Callable[[torch.Tensor], torch.Tensor]  # a (rows, k) or (b, rows, k) block back

    def fold(self, T: torch.Tensor) -> torch.Tensor:
        """A tensor in the caller's layout as the folded 2D block."""
        block, _ = fold_rhs(T, self.row_dim, None if self.batch is None else 0)
        return block.reshape(-1, block.shape[-1])

    def user(self, T: torch.Tensor, rows: int) -> torch.Tensor:
        """A folded 2D block as the caller's layout with ``rows`` rows per item."""
        return self.unfold(T if self.batch is None else T.reshape(self.batch, rows, T.shape[-1]))

    def call(self, solver: Lstsq, A: torch.Tensor, T: torch.Tensor, rows_in: int) -> torch.Tensor:
        out = solver(A, self.user(T, rows_in))
        if not isinstance(out, torch.Tensor):
            raise ValueError(
                f"sparse_generic_lstsq: the solver's result must be a tensor, got "
                f"{type(out).__name__}; return X as a torch.Tensor"
            )
        return self.fold(out.to(T.dtype))


class _NormalSolve(torch.autograd.Function):
    """``Z = (AᵀA)⁻¹ G``, as ``lstsq(A, transpose_lstsq(A, G))``; differentiable again."""

    @staticmethod
    def forward(
        pattern: Pattern, values: torch.Tensor, G: torch.Tensor, spec: _Spec
    ) -> torch.Tensor:
        A = _build(pattern, values)
        m, n = pattern.shape[-2], pattern.shape[-1]
        Y = spec.call(spec.transpose_lstsq, A, G, n)  # minimum-norm Aᵀ Y = G: Y = A Z
        return spec.call(spec.lstsq, A, Y, m)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, values, _, spec = inputs
        ctx.pattern, ctx.spec = pattern, spec
        ctx.save_for_backward(values, output)

    @staticmethod
    def backward(ctx: Any, W: torch.Tensor) -> tuple[Any, ...]:
        values, Z = ctx.saved_tensors
        pattern = ctx.pattern
        U = _normal_solve(pattern, values, W, ctx.spec)  # N⁻¹ W, N = AᵀA symmetric
        grad_values = None
        if ctx.needs_input_grad[1]:
            # dZ = -N⁻¹ (dAᵀ A + Aᵀ dA) Z  =>  grad_A = -(A Z) Uᵀ - (A U) Zᵀ
            AZ = pattern_matmul(pattern, values, Z)
            AU = pattern_matmul(pattern, values, U)
            grad_values = -sampled_product(pattern, AZ, U) - sampled_product(pattern, AU, Z)
        return None, grad_values, U if ctx.needs_input_grad[2] else None, None


def _normal_solve(
    pattern: Pattern, values: torch.Tensor, G: torch.Tensor, spec: _Spec
) -> torch.Tensor:
    out: torch.Tensor = _NormalSolve.apply(pattern, values, G, spec)
    return out


class _Lstsq(torch.autograd.Function):
    @staticmethod
    def forward(
        pattern: Pattern, values: torch.Tensor, B: torch.Tensor, spec: _Spec
    ) -> torch.Tensor:
        return spec.call(spec.lstsq, _build(pattern, values), B, pattern.shape[-2])

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, values, B, spec = inputs
        ctx.pattern, ctx.spec = pattern, spec
        ctx.save_for_backward(values, B, output)

    @staticmethod
    def backward(ctx: Any, G: torch.Tensor) -> tuple[Any, ...]:
        values, B, X = ctx.saved_tensors
        pattern = ctx.pattern
        # Golub–Pereyra for full column rank: z = (AᵀA)⁻¹ g, grad_B = A z,
        # grad_A = r zᵀ - (A z) xᵀ with r = B - A x.
        Z = _normal_solve(pattern, values, G, ctx.spec)
        AZ = pattern_matmul(pattern, values, Z)
        grad_values = None
        if ctx.needs_input_grad[1]:
            R = B - pattern_matmul(pattern, values, X)
            grad_values = sampled_product(pattern, R, Z) - sampled_product(pattern, AZ, X)
        return None, grad_values, AZ if ctx.needs_input_grad[2] else None, None


def sparse_generic_lstsq(
    A: torch.Tensor,
    B: torch.Tensor,
    lstsq: Lstsq | None = None,
    transpose_lstsq: Lstsq | None = None,
) -> torch.Tensor:
    r"""Solve ``min ||A X - B||`` for a tall sparse A, differentiably, with a sparse gradient.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(m, n)`` with ``m >= n`` and full column rank, or a batch
        ``(b, m, n)``.
    B : torch.Tensor
        Dense ``(m,)``, ``(m, k)``, or ``(b, m)``/``(b, m, k)`` with a batched A.
    lstsq : callable, optional
        ``lstsq(A, B) -> X``, B and X in the caller's shapes. Default: tsgu's LSMR with
        ``atol = btol = 1e-12`` (float64) or ``1e-6`` (float32).
    transpose_lstsq : callable, optional
        ``transpose_lstsq(A, G) -> Y``, the minimum-norm solution of ``Aᵀ Y = G`` (it
        receives A itself). Default: LSMR on Aᵀ.

    Returns
    -------
    torch.Tensor
        X: ``(n,)``, ``(n, k)`` or batched, with A's dtype.

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR, ``B`` is not dense, or a solver is not callable.
    ValueError
        A wide A (``m < n``); shapes, batch sizes, dtypes or devices that do not match.

    Notes
    -----
    With :math:`x = A^+ b`, :math:`z = (A^\top A)^{-1} \bar x` and :math:`r = b - A x`
    (Golub and Pereyra, full column rank):

    .. math::

        \bar b = A z, \qquad
        \bar A_{ij} = r_i z_j - (A z)_i x_j \quad (i, j) \in \mathrm{nz}(A).

    :math:`z` comes from two least-squares solves (``transpose_lstsq`` then ``lstsq``), not
    from the normal equations, so its accuracy follows cond(A), not cond(A)². The backward
    is differentiable again. The columns of a multi-column B are solved together.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_generic_lstsq
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> A = A.to_sparse().requires_grad_()
    >>> x = sparse_generic_lstsq(A, torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    >>> x.detach()
    tensor([1.3333, 2.3333], dtype=torch.float64)
    >>> x.sum().backward()
    >>> A.grad.coalesce().values().shape  # one value per stored entry
    torch.Size([4])
    """
    fn = "sparse_generic_lstsq"
    A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=(2, 3))
    B = check_dense(fn, "B", B, dims=(1, 2) if A.dim() == 2 else (2, 3))
    m, n = A.shape[-2], A.shape[-1]
    if m < n:
        raise ValueError(
            f"{fn}: A must be tall (m >= n, full column rank), got shape {tuple(A.shape)}; "
            "for a wide A solve the transposed problem"
        )
    check_operand(fn, A, B, m)
    for name, solver in (("lstsq", lstsq), ("transpose_lstsq", transpose_lstsq)):
        if solver is not None and not callable(solver):
            raise TypeError(
                f"{fn}: {name} must be callable, got {type(solver).__name__}; pass a "
                f"function {name}(A, B) -> X, or None for LSMR"
            )
    batched = A.dim() == 3
    row_dim = 1 if batched else 0
    block, unfold = fold_rhs(B, row_dim, 0 if batched else None)
    spec = _Spec(
        lstsq or _default_lstsq,
        transpose_lstsq or _default_transpose_lstsq,
        row_dim,
        A.shape[0] if batched else None,
        unfold,
    )
    pattern = Pattern.of(A)
    values = values_of(A, pattern)
    X: torch.Tensor = _Lstsq.apply(pattern, values, block.reshape(-1, block.shape[-1]), spec)
    return spec.user(X, n)
