"""Input checks of tsgu.cupy, built on tsgu.core.validation: every error reads the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tsgu.core.extend import check_solve_operands, check_tol_or_rtol

from ._solvers import NAMES, Direct, Named, Step, UserCallable

__all__ = ["check_solve_inputs", "resolve_steps"]


def check_solve_inputs(
    fn: str, A: object, B: object, kwargs: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse COO/CSR ``(n, n)`` float matrix, a dense B ``(n,)``/``(n, k)`` with its dtype
    and device, and at most one of ``tol`` and ``rtol``."""
    A, B = check_solve_operands(fn, A, B, a_dims=(2,), b_dims={2: (1, 2)})
    check_tol_or_rtol(fn, kwargs)
    return A, B


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
