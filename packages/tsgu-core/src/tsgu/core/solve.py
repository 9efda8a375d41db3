"""``sparse_generic_solve``: any solver, differentiable, with a sparse gradient for A."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from ._pattern import Pattern, _build, sampled_product, transpose, values_of
from .krylov import bicgstab, cg, gmres, lsmr, minres
from .validation import (
    COO,
    CSR,
    check_dense,
    check_operand,
    check_sparse,
    check_square,
)

__all__ = ["sparse_generic_solve"]

Solver = Callable[..., torch.Tensor]

# Named solvers: (function, whether it assumes a symmetric A).
_NAMED: dict[str, tuple[Callable[..., Any], bool]] = {
    "cg": (cg, True),
    "minres": (minres, True),
    "bicgstab": (bicgstab, False),
    "gmres": (gmres, False),
    "lsmr": (lsmr, False),
}


def _named(name: str) -> tuple[Solver, Solver]:
    """(solve(A, B), transpose_solve(A, G)) for a named solver."""
    fn, symmetric = _NAMED[name]

    def solve(A: torch.Tensor, B: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out: torch.Tensor = fn(A, B, **kwargs)
        return out

    if symmetric:  # A^T = A: the transposed system is the system itself
        return solve, solve

    def transpose_solve(A: torch.Tensor, G: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out: torch.Tensor = fn(transpose(A), G, **kwargs)
        return out

    return solve, transpose_solve


def _on_transpose(solve: Solver) -> Solver:
    """The transposed-system solve of a user's ``solve``: the same solver on Aᵀ."""

    def transpose_solve(A: torch.Tensor, G: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return solve(transpose(A), G, **kwargs)

    return transpose_solve


def is_symmetric(A: torch.Tensor) -> bool:
    """Whether sparse ``A`` (each batch item) equals its transpose, to rounding."""
    coo = A.detach().to_sparse_coo().coalesce()
    if coo._nnz() == 0:
        return True
    T = transpose(coo).coalesce()
    if not torch.equal(coo.indices(), T.indices()):
        return False
    gap = (coo.values() - T.values()).abs().max()
    return bool(gap <= 100 * torch.finfo(coo.dtype).eps * coo.values().abs().max())


def _resolve(
    fn: str, A: torch.Tensor, solve: Solver | str | None, transpose_solve: Solver | str | None
) -> tuple[Solver, Solver]:
    if solve is None:
        # 0.2's default was MINRES, silently wrong for a nonsymmetric A: keep it where it is
        # right, and use BiCGSTAB elsewhere.
        solve = "minres" if is_symmetric(A) else "bicgstab"
    for name, value in (("solve", solve), ("transpose_solve", transpose_solve)):
        if isinstance(value, str) and value not in _NAMED:
            raise ValueError(
                f"{fn}: {name} must be a callable or one of {', '.join(map(repr, _NAMED))}, "
                f"got {value!r}"
            )
        if value is not None and not isinstance(value, str) and not callable(value):
            raise TypeError(
                f"{fn}: {name} must be a callable or a solver name, got {type(value).__name__}"
            )
    if isinstance(solve, str):
        forward, default_transpose = _named(solve)
    else:
        assert solve is not None
        forward, default_transpose = solve, _on_transpose(solve)
    if transpose_solve is None:
        return forward, default_transpose
    if isinstance(transpose_solve, str):
        return forward, _named(transpose_solve)[1]
    return forward, transpose_solve


@dataclass(frozen=True)
class _Spec:
    """The solve and its transpose; ``transposed`` swaps their roles (the op is A⁻ᵀ B)."""

    solve: Solver
    transpose_solve: Solver
    kwargs: dict[str, Any]
    transposed: bool = False

    def run(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        solver = self.transpose_solve if self.transposed else self.solve
        X = solver(A, B, **self.kwargs)
        if not isinstance(X, torch.Tensor) or X.shape != B.shape:
            got = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
            raise ValueError(
                f"sparse_generic_solve: the solver returned {got}, expected a tensor of "
                f"shape {tuple(B.shape)}"
            )
        return X.to(B.dtype)


def _fold(T: torch.Tensor) -> torch.Tensor:
    """A right-hand side ``(n,)``, ``(n, k)`` or ``(b, n, k)`` as the folded 2D block."""
    if T.dim() == 1:
        return T.unsqueeze(1)
    return T.reshape(-1, T.shape[-1])


class _GenericSolve(torch.autograd.Function):
    @staticmethod
    def forward(
        pattern: Pattern, values: torch.Tensor, B: torch.Tensor, spec: _Spec
    ) -> torch.Tensor:
        return spec.run(_build(pattern, values), B)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, values, _, spec = inputs
        ctx.pattern, ctx.spec = pattern, spec
        ctx.save_for_backward(values, output)

    @staticmethod
    def backward(ctx: Any, grad_X: torch.Tensor) -> tuple[Any, ...]:
        values, X = ctx.saved_tensors
        spec: _Spec = ctx.spec
        # One solve with the transposed system: grad_B = A^{-T} grad_X (A^{-1} if transposed).
        grad_B = _generic(
            ctx.pattern, values, grad_X, replace(spec, transposed=not spec.transposed)
        )
        grad_values = None
        if ctx.needs_input_grad[1]:
            Gf, Xf = _fold(grad_B), _fold(X)
            outer = (
                sampled_product(ctx.pattern, Xf, Gf)
                if spec.transposed
                else sampled_product(ctx.pattern, Gf, Xf)
            )
            grad_values = -outer
        return None, grad_values, grad_B if ctx.needs_input_grad[2] else None, None


def _generic(pattern: Pattern, values: torch.Tensor, B: torch.Tensor, spec: _Spec) -> torch.Tensor:
    out: torch.Tensor = _GenericSolve.apply(pattern, values, B, spec)
    return out


def sparse_generic_solve(
    A: torch.Tensor,
    B: torch.Tensor,
    solve: Solver | str | None = None,
    transpose_solve: Solver | str | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    r"""Solve ``A X = B`` with any solver, differentiably, with a sparse gradient for A.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)``, or a batch ``(b, n, n)`` for solvers that take one
        (tsgu's Krylov solvers do).
    B : torch.Tensor
        Dense ``(n,)``, ``(n, k)``, or ``(b, n)``/``(b, n, k)`` with a batched A.
    solve : callable or str, optional
        ``solve(A, B, **kwargs) -> X``, or one of ``"cg"``, ``"minres"`` (symmetric A),
        ``"bicgstab"``, ``"gmres"``, ``"lsmr"`` (tsgu's solvers). Default: MINRES when A is
        symmetric (torchsparsegradutils 0.2's default), BiCGSTAB otherwise.
    transpose_solve : callable or str, optional
        ``transpose_solve(A, G, **kwargs) -> Y`` solving ``Aᵀ Y = G`` (it receives A, as in
        0.2), or a solver name (applied to Aᵀ). Default: ``solve`` applied to Aᵀ, or to A
        for the symmetric solvers. (0.2's default handed A itself to ``solve``, which made
        its gradients wrong for every nonsymmetric A.)
    **kwargs
        Passed to both solvers (e.g. ``rtol``, ``maxiter``, ``M``).

    Returns
    -------
    torch.Tensor
        X, shaped like ``B``, with A's dtype.

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR, ``B`` is not dense, or ``solve`` is neither a callable
        nor a name.
    ValueError
        A non-square A; shapes, dtypes or devices that do not match; an unknown solver
        name; a solver that returns the wrong shape.

    Notes
    -----
    The backward solves the transposed system once and samples the outer product at A's
    pattern:

    .. math::

        \bar B = A^{-\top} \bar X, \qquad
        \bar A_{ij} = -\langle \bar B_{i,:}, X_{j,:} \rangle \quad (i, j) \in \mathrm{nz}(A).

    That backward is itself a differentiable solve, so second derivatives are exact (to the
    solver's tolerance). Gradients are as accurate as the solves: pass a small ``rtol``.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_generic_solve
    >>> A = torch.tensor([[4.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    >>> A = A.to_sparse_csr().requires_grad_()
    >>> x = sparse_generic_solve(A, torch.tensor([1.0, 2.0], dtype=torch.float64),
    ...                          solve="bicgstab", rtol=1e-12)
    >>> x.detach()
    tensor([0.1000, 0.6000], dtype=torch.float64)
    >>> x.sum().backward()
    >>> A.grad.values()  # one value per stored entry
    tensor([-0.0100, -0.0600, -0.0300, -0.1800], dtype=torch.float64)
    """
    fn = "sparse_generic_solve"
    A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=(2, 3))
    B = check_dense(fn, "B", B, dims=(1, 2) if A.dim() == 2 else (2, 3))
    check_square(fn, "A", A)
    check_operand(fn, A, B, A.shape[-1])
    forward, backward = _resolve(fn, A, solve, transpose_solve)
    pattern = Pattern.of(A)
    values = values_of(A, pattern)
    spec = _Spec(forward, backward, dict(kwargs))
    if A.dim() == 3 and B.dim() == 2:  # a batch of vectors: one column each
        return _generic(pattern, values, B.unsqueeze(-1), spec).squeeze(-1)
    return _generic(pattern, values, B, spec)
