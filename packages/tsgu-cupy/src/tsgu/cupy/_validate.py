"""Input checks of tsgu.cupy, built on tsgu.core.validation: every error reads the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tsgu.core.extend import check_solve_operands, check_tol_or_rtol, stored_values
from tsgu.core.validation import (
    COO,
    CSR,
    check_dense,
    check_maxiter,
    check_sparse_structure,
    check_tolerance,
)

from ._solvers import NAMES, Direct, Named, Step, UserCallable

__all__ = ["check_solve_inputs", "resolve_steps"]


def check_solve_inputs(
    fn: str, A: object, B: object, kwargs: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse COO/CSR ``(n, n)`` float matrix and a dense B ``(n,)``/``(n, k)`` with its
    dtype and device, both finite, and the solver keywords (:func:`_check_keywords`)."""
    A, B = check_solve_operands(fn, A, B, a_dims=(2,), b_dims={2: (1, 2)})
    for name, t in (("A", stored_values(A)), ("B", B)):
        if t.device.type != "meta" and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{fn}: {name} must be finite, got a NaN or Inf; a NaN or Inf leaves no "
                "solution to find"
            )
    _check_keywords(fn, kwargs)
    return A, B


def _check_keywords(fn: str, kwargs: dict[str, Any]) -> None:
    """``tol`` and ``rtol`` name one setting (at most one may be given); tolerances are
    non-negative real numbers; ``maxiter`` a positive int (SciPy's solvers fail on 0); a
    sparse ``M`` has a valid index structure; ``x0`` is a finite dense vector."""
    check_tol_or_rtol(fn, kwargs)
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
            raise ValueError(f"{fn}: x0 must be finite, got a NaN or Inf; pass a finite x0")


def _step(fn: str, role: str, value: object) -> Step | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in NAMES:
            raise ValueError(
                f"{fn}: {role} must be a callable or one of {', '.join(map(repr, NAMES))}, "
                f"got {value!r}; pick one of those, or pass your own {role}(A, b, **kwargs)"
            )
        return Direct() if value == "spsolve" else Named(value)
    if not callable(value):
        raise TypeError(
            f"{fn}: {role} must be a callable or a solver name, got {type(value).__name__}; "
            f"pass one of {', '.join(map(repr, NAMES))} or {role}(A, b, **kwargs)"
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
