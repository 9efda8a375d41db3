"""``sparse_generic_solve``: any solver, differentiable, with a sparse gradient for A."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import _pattern
from ._compiled.linear_solve import SolverSpec, parts_linear_solve, register_solver
from ._compiled.parts import SparseParts
from ._linear_solve import LinearSolver, check_solve_operands, check_tol_or_rtol, linear_solve
from .krylov import bicgstab, cg, gmres, lsmr, minres

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


def is_symmetric(A: torch.Tensor) -> bool:
    """Whether sparse ``A`` (each batch item) equals its transpose, to rounding."""
    coo = A.detach().to_sparse_coo().coalesce()
    if coo._nnz() == 0:
        return True
    T = _pattern.transpose(coo).coalesce()
    if not torch.equal(coo.indices(), T.indices()):
        return False
    gap = (coo.values() - T.values()).abs().max()
    return bool(gap <= 100 * torch.finfo(coo.dtype).eps * coo.values().abs().max())


def _check_choice(fn: str, name: str, value: object) -> None:
    if isinstance(value, str) and value not in _NAMED:
        raise ValueError(
            f"{fn}: {name} must be a callable or one of {', '.join(map(repr, _NAMED))}, "
            f"got {value!r}; pick one of those, or pass your own solve(A, B, **kwargs)"
        )
    if value is not None and not isinstance(value, str) and not callable(value):
        raise TypeError(
            f"{fn}: {name} must be a callable or a solver name, got {type(value).__name__}; "
            f"pass one of {', '.join(map(repr, _NAMED))} or solve(A, B, **kwargs)"
        )


class GenericSolver(LinearSolver):
    """A named tsgu solver, or the user's ``solve(A, B)`` and ``transpose_solve(A, G)``.

    Named solvers get Aᵀ for the transposed system (A itself when they assume symmetry);
    a user's ``transpose_solve`` gets A (the torchsparsegradutils convention), and a missing
    one means ``solve`` applied to Aᵀ. Aᵀ is made once, on first use. ``vector``: B was a
    vector, and the user's callables see it as one.
    """

    def __init__(
        self,
        A: torch.Tensor,
        solve: Solver | str,
        transpose_solve: Solver | str | None,
        kwargs: dict[str, Any],
        vector: bool,
    ) -> None:
        self.A = A
        self.kwargs = kwargs
        self.vector = vector
        self._transposed: torch.Tensor | None = None
        # (function, its matrix is Aᵀ) for each direction
        self.forward = self._resolve(solve, transpose=False)
        if transpose_solve is None:
            self.backward = self._resolve(solve, transpose=True)
        elif isinstance(transpose_solve, str):
            self.backward = self._resolve(transpose_solve, transpose=True)
        else:
            self.backward = (transpose_solve, False)

    @staticmethod
    def _resolve(solver: Solver | str, transpose: bool) -> tuple[Solver, bool]:
        if isinstance(solver, str):
            fn, symmetric = _NAMED[solver]
            return fn, transpose and not symmetric
        return solver, transpose

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        fn, on_transpose = self.backward if transpose else self.forward
        if on_transpose:
            if self._transposed is None:
                self._transposed = _pattern.transpose(self.A)
            matrix = self._transposed
        else:
            matrix = self.A
        rhs = B.squeeze(-1) if self.vector else B
        X = fn(matrix, rhs, **self.kwargs)
        return X.reshape(B.shape) if isinstance(X, torch.Tensor) and X.shape == rhs.shape else X


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
        symmetric, BiCGSTAB otherwise.
    transpose_solve : callable or str, optional
        ``transpose_solve(A, G, **kwargs) -> Y`` solving ``Aᵀ Y = G`` (it receives A
        itself), or a solver name (applied to Aᵀ). Default: ``solve`` applied to Aᵀ, or to
        A for the symmetric solvers.
    **kwargs
        Passed to both solvers (e.g. ``rtol``, ``maxiter``, ``M``); ``tol`` is the older
        name of ``rtol``, and the two together are an error.

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
        name; both ``tol`` and ``rtol``; a solver that returns the wrong shape.

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
    A, B = check_solve_operands(fn, A, B, b_dims={2: (1, 2), 3: (2, 3)})
    for name, value in (("solve", solve), ("transpose_solve", transpose_solve)):
        _check_choice(fn, name, value)
    check_tol_or_rtol(fn, kwargs)
    if isinstance(A, SparseParts):  # a compiled region: the one solve op, this solver named
        spec = _compiled_spec(fn, solve, transpose_solve, kwargs, vector=B.dim() == 1)
        return parts_linear_solve(A, B, spec, fn=fn)
    if solve is None:
        solve = "minres" if is_symmetric(A) else "bicgstab"
    solver = GenericSolver(A.detach(), solve, transpose_solve, dict(kwargs), vector=B.dim() == 1)
    return linear_solve(A, B, solver, fn=fn)


def _compiled_spec(
    fn: str,
    solve: Solver | str | None,
    transpose_solve: Solver | str | None,
    kwargs: dict[str, Any],
    vector: bool,
) -> SolverSpec:
    """The solve as a :class:`SolverSpec`: in a compiled region solvers are named, and their
    options are plain values (a custom op takes no Python objects)."""
    for name, value in (("solve", solve), ("transpose_solve", transpose_solve)):
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"{fn}: {name} must be a solver name in a compiled region, got "
                f"{type(value).__name__}; pass one of {', '.join(map(repr, _NAMED))}, or call "
                "it outside torch.compile"
            )
    for name, value in kwargs.items():
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise TypeError(
                f"{fn}: {name} must be a number, bool or str in a compiled region, got "
                f"{type(value).__name__}; pass it outside torch.compile, or leave it out"
            )
    options = {"solve": solve, "transpose_solve": transpose_solve, "kwargs": kwargs}
    return SolverSpec("generic", {**options, "vector": vector})


def _compiled_solver(
    A: torch.Tensor, pattern: _pattern.Pattern, options: dict[str, Any]
) -> GenericSolver:
    """The solver of ``SolverSpec("generic", ...)``, made when the compiled op runs."""
    solve = options["solve"] or ("minres" if is_symmetric(A) else "bicgstab")
    return GenericSolver(A, solve, options["transpose_solve"], options["kwargs"], options["vector"])


register_solver("generic", _compiled_solver)
