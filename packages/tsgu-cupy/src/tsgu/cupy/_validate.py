"""Input checks of tsgu.cupy, built on tsgu.core.validation: every error reads the same way."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from tsgu.core.validation import (
    COO,
    CSR,
    check_dense,
    check_float_dtype,
    check_maxiter,
    check_same_device,
    check_sparse,
    check_sparse_structure,
    check_square,
    check_tolerance,
)

from ._solvers import NAMES, Direct, Named, Step, UserCallable

__all__ = ["check_solve_inputs", "check_tolerances", "resolve_steps"]


def check_solve_inputs(fn: str, A: object, B: object) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse COO/CSR ``(n, n)`` float matrix and a dense B ``(n,)``/``(n, k)`` beside it.

    A B of another dtype is cast to A's, with a UserWarning (torchsparsegradutils 0.2 did
    the same).
    """
    A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=(2,))
    check_square(fn, "A", A)
    check_float_dtype(fn, "A", A)
    B = check_dense(fn, "B", B, dims=(1, 2))
    if B.shape[0] != A.shape[0]:
        raise ValueError(
            f"{fn}: B must have {A.shape[0]} rows to match A of shape {tuple(A.shape)}, "
            f"got shape {tuple(B.shape)}"
        )
    check_same_device(fn, ("A", "B"), A, B)
    for name, t in (("A", A.values() if A.layout == CSR else A._values()), ("B", B)):
        if t.device.type != "meta" and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{fn}: {name} must be finite, got a NaN or Inf; a NaN or Inf leaves no "
                "solution to find"
            )
    if B.dtype != A.dtype:
        warnings.warn(
            f"{fn}: B has dtype {B.dtype} but A has {A.dtype}; solving with B.to({A.dtype})",
            UserWarning,
            stacklevel=3,
        )
        B = B.to(A.dtype)
    return A, B


def check_tolerances(fn: str, kwargs: dict[str, Any]) -> None:
    """The solver keywords: ``tol`` and ``rtol`` name one setting (at most one may be given);
    tolerances are non-negative real numbers; ``maxiter`` a positive int (SciPy's solvers
    fail on 0); a sparse ``M`` has a valid index structure; ``x0`` is a finite dense vector."""
    if "tol" in kwargs and "rtol" in kwargs:
        raise ValueError(
            f"{fn}: tol and rtol both set the relative tolerance, got tol={kwargs['tol']!r} "
            f"and rtol={kwargs['rtol']!r}; pass only one"
        )
    for name in ("tol", "rtol", "atol"):
        if kwargs.get(name) is not None:
            check_tolerance(fn, name, kwargs[name])
    check_maxiter(fn, kwargs.get("maxiter"), minimum=1)
    M = kwargs.get("M")
    if isinstance(M, torch.Tensor) and M.layout in (COO, CSR):
        check_sparse_structure(fn, "M", M)
    x0 = kwargs.get("x0")
    if isinstance(x0, torch.Tensor):
        x0 = check_dense(fn, "x0", x0, dims=(1,))
        if not bool(torch.isfinite(x0).all()):
            raise ValueError(f"{fn}: x0 must be finite, got a NaN or Inf")


def _step(fn: str, role: str, value: object) -> Step | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in NAMES:
            raise ValueError(
                f"{fn}: {role} must be a callable or one of {', '.join(map(repr, NAMES))}, "
                f"got {value!r}"
            )
        return Direct() if value == "spsolve" else Named(value)
    if not callable(value):
        raise TypeError(
            f"{fn}: {role} must be a callable or a solver name, got {type(value).__name__}"
        )
    solver: Callable[..., Any] = value
    return UserCallable(solver, role)


def resolve_steps(
    fn: str, solve: object, transpose_solve: object, B: torch.Tensor
) -> tuple[Step, Step]:
    """The forward step and the transposed (backward) step.

    ``solve=None`` is the direct solve (its one factorization serves both directions); a
    missing ``transpose_solve`` is ``solve`` applied to Aᵀ.
    """
    forward = _step(fn, "solve", solve) or Direct()
    backward = _step(fn, "transpose_solve", transpose_solve) or forward
    columns = B.shape[1] if B.dim() == 2 else 1
    if columns != 1:
        for role, step in (("solve", forward), ("transpose_solve", backward)):
            if isinstance(step, Named):
                raise ValueError(
                    f"{fn}: {role}={step.name!r} takes one right-hand side, got B of shape "
                    f"{tuple(B.shape)}; use solve='spsolve' (or None) for several, or solve "
                    "column by column"
                )
    return forward, backward
