"""The JAX side of ``sparse_solve_j4t``: solver choice, one compiled solve per kind, and the
convergence check that JAX's solvers leave to the caller.

A compiled solve is a ``jax.jit`` of one Python function per (solver, operator transposed
or not, static keyword arguments); the matrix (a :class:`SparseMatvec` pytree), the
right-hand sides, ``x0`` and array-valued keywords are its traced arguments, so jit's own
cache compiles once per shape and dtype and every later call with the same shapes reuses
the executable: values change, nothing is retraced.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.sparse.linalg as jla
import numpy as np
import torch

import tsgu.core.extend
from tsgu.core import ConvergenceWarning
from tsgu.core.extend import check_tol_or_rtol

from ._operator import SparseMatvec, operator_of
from .conversion import _to_jax, _to_torch

__all__ = ["NAMED", "RESIDUAL_SLACK", "Plan", "make_plan", "trace_count"]

JaxSolver = Callable[..., Any]

NAMED: dict[str, JaxSolver] = {
    "cg": jla.cg,
    "bicgstab": jla.bicgstab,
    "gmres": jla.gmres,
}
# The keywords each named solver takes (jax.scipy.sparse.linalg's), plus tsgu.core's `rtol`.
_KEYWORDS = {
    "cg": {"x0", "tol", "rtol", "atol", "maxiter", "M"},
    "bicgstab": {"x0", "tol", "rtol", "atol", "maxiter", "M"},
    "gmres": {"x0", "tol", "rtol", "atol", "maxiter", "M", "restart", "solve_method"},
}
JAX_DEFAULT_TOL = 1e-5  # jax.scipy.sparse.linalg's default relative tolerance
# The true residual may exceed the solver's own (recurrence) residual by rounding: a solve
# counts as unconverged when ||b - A x|| > RESIDUAL_SLACK * max(tol * ||b||, atol).
RESIDUAL_SLACK = 10.0

_traces = 0


def trace_count() -> int:
    """How many times a solve has been traced (compiled) in this process: for tests."""
    return _traces


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside tsgu.jax and torch: the user's line."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_SKIP):
        frame, level = frame.f_back, level + 1
    return level  # 1 is the caller of warnings.warn: _check, called from here


# tsgu.jax, torch, and tsgu.core's solve mechanism, which calls tsgu.jax's solver
_SKIP = (
    str(Path(__file__).parent),
    str(Path(torch.__file__).parent),
    str(Path(tsgu.core.extend.__file__).parent),
)


# ------------------------------------------------------------------ solver choice
@dataclass(frozen=True)
class _Choice:
    fn: JaxSolver
    label: str  # for messages
    keywords: frozenset[str] | None  # accepted keywords; None: a user's callable, any


def _choose(fn: str, name: str, value: object) -> _Choice:
    if isinstance(value, str):
        if value not in NAMED:
            raise ValueError(
                f"{fn}: {name} must be one of {', '.join(map(repr, NAMED))} or a callable, "
                f"got {value!r}; pick one of those, or pass {name}(matvec, b, **kwargs)"
            )
        label = f"jax.scipy.sparse.linalg.{value}"
        return _Choice(NAMED[value], label, frozenset(_KEYWORDS[value]))
    if callable(value):
        label = getattr(value, "__qualname__", None) or type(value).__name__
        return _Choice(value, label, None)
    raise TypeError(
        f"{fn}: {name} must be one of {', '.join(map(repr, NAMED))} or a callable "
        f"solve(matvec, b, **kwargs), got {type(value).__name__}; pass a name or a function"
    )


# ------------------------------------------------------------ the compiled solve
def _transposed_preconditioner(M: Any, n: int, dtype: Any) -> Any:
    """Mᵀ for the transposed system: Aᵀ's preconditioner is the transpose of A's."""
    if isinstance(M, SparseMatvec):
        return M.T
    if isinstance(M, jax.Array) and M.ndim == 2:
        return M.T
    if callable(M):  # a linear JAX function: JAX transposes it
        transpose = jax.linear_transpose(M, jax.ShapeDtypeStruct((n,), dtype))
        return lambda y: transpose(y)[0]
    return M


def _first(out: Any) -> jax.Array:
    """x from a solver's ``x`` or ``(x, info)`` (jax.scipy's solvers return ``(x, None)``)."""
    return out[0] if isinstance(out, tuple) else out


@functools.lru_cache(maxsize=64)
def _compiled(
    solver: JaxSolver, transposed: bool, static: tuple[tuple[str, Hashable], ...]
) -> Callable[..., Any]:
    static_kwargs = dict(static)

    def body(
        op: SparseMatvec, b: jax.Array, x0: jax.Array | None, dynamic: dict[str, Any]
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        global _traces
        _traces += 1  # runs only while tracing: counts compilations
        kwargs = {**static_kwargs, **dynamic}
        if transposed:
            op = op.T
            if "M" in kwargs:
                kwargs["M"] = _transposed_preconditioner(kwargs["M"], op.shape[0], b.dtype)

        def one(column: jax.Array, start: jax.Array | None) -> jax.Array:
            if start is None:
                return _first(solver(op, column, **kwargs))
            return _first(solver(op, column, x0=start, **kwargs))

        if b.ndim == 1:
            x = one(b, x0)
        else:  # every column at once: vmap, no Python loop
            x = jax.vmap(one, in_axes=(1, None if x0 is None else 1), out_axes=1)(b, x0)
        residual = jnp.linalg.norm(b - op(x), axis=0)
        return x, residual, jnp.linalg.norm(b, axis=0)

    return jax.jit(body)


# ----------------------------------------------------------------------- the plan
def _as_dynamic(fn: str, name: str, value: Any) -> Any:
    """A keyword value that travels as a traced argument, or None if it is static."""
    if isinstance(value, torch.Tensor):
        if value.layout == torch.strided:
            return _to_jax(fn, name, value)
        return operator_of(fn, name, value)
    if isinstance(value, (jax.Array, SparseMatvec)):
        return value
    return None


@dataclass(frozen=True)
class Plan:
    """Everything a solve needs besides A and B, for ``A X = B`` and ``Aᵀ Y = G`` alike."""

    solve: _Choice
    transpose_solve: _Choice
    static: tuple[tuple[str, Hashable], ...]
    dynamic: dict[str, Any]
    x0: jax.Array | None
    rtol: float
    atol: float

    def run(self, fn: str, op: SparseMatvec, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        """Solve with A's matvec ``op`` (with Aᵀ when ``transpose``; that system takes no
        starting guess: x0 guesses X, not the transposed system's solution)."""
        choice = self.transpose_solve if transpose else self.solve
        b = _to_jax(fn, "B", B)
        compiled = _compiled(choice.fn, transpose, self.static)
        x, residual, b_norm = compiled(op, b, None if transpose else self.x0, self.dynamic)
        self._check(fn, choice, transpose, np.asarray(residual), np.asarray(b_norm))
        return _to_torch(x)

    def _check(
        self,
        fn: str,
        choice: _Choice,
        transpose: bool,
        residual: np.ndarray,
        b_norm: np.ndarray,
    ) -> None:
        bound = np.maximum(self.rtol * b_norm, self.atol)
        bad = ~(residual <= RESIDUAL_SLACK * bound)  # NaN counts as bad
        if not bad.any():
            return
        system = "Aᵀ y = g (backward)" if transpose else "A x = b"
        worst = np.where(bound > 0, residual / np.where(bound > 0, bound, 1.0), residual)
        warnings.warn(
            f"{fn}: {choice.label} did not converge on {system}: residual norm "
            f"{float(np.max(residual)):.3e} against a target of {float(np.max(bound)):.3e} "
            f"(max(rtol * ||b||, atol), rtol={self.rtol:g}, atol={self.atol:g}; worst "
            f"{float(np.nanmax(worst)) if not np.isnan(worst).all() else float('nan'):.3g} "
            f"times the target) in {int(bad.sum())} of {bad.size} column(s). JAX's solvers "
            "report no iteration count: raise maxiter, loosen tol, or pass a preconditioner M",
            ConvergenceWarning,
            stacklevel=_caller_level(),
        )


def make_plan(
    fn: str,
    solve: object,
    transpose_solve: object,
    kwargs: dict[str, Any],
    B: torch.Tensor,
) -> Plan:
    """Resolve the solvers and split ``kwargs`` into static and traced parts (checked)."""
    forward = _choose(fn, "solve", "cg" if solve is None else solve)
    backward = forward
    if transpose_solve is not None:
        backward = _choose(fn, "transpose_solve", transpose_solve)
    kwargs = dict(kwargs)
    for choice in {id(forward): forward, id(backward): backward}.values():
        if choice.keywords is not None:
            unknown = sorted(set(kwargs) - choice.keywords)
            if unknown:
                raise TypeError(
                    f"{fn}: {choice.label} takes no keyword argument(s) {', '.join(unknown)}; "
                    f"it takes {', '.join(sorted(choice.keywords))}"
                )
    check_tol_or_rtol(fn, kwargs)
    if "rtol" in kwargs:  # tsgu.core's (and SciPy's) name of jax.scipy's `tol`
        kwargs["tol"] = kwargs.pop("rtol")
    tol, atol_ = kwargs.get("tol", JAX_DEFAULT_TOL), kwargs.get("atol", 0.0)
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (tol, atol_)):
        raise TypeError(
            f"{fn}: tol and atol must be real numbers, got tol={tol!r}, atol={atol_!r}; pass floats"
        )
    rtol, atol = float(tol), float(atol_)
    if rtol < 0 or atol < 0:
        raise ValueError(
            f"{fn}: tol and atol must be non-negative, got tol={rtol}, atol={atol}; "
            "pass tolerances >= 0"
        )
    x0 = kwargs.pop("x0", None)
    if x0 is not None:
        if not isinstance(x0, (torch.Tensor, jax.Array)):
            raise TypeError(
                f"{fn}: x0 must be a torch.Tensor or a jax.Array, got {type(x0).__name__}; "
                "pass x0 as a tensor shaped like B"
            )
        if tuple(x0.shape) != tuple(B.shape):
            raise ValueError(
                f"{fn}: x0 must have B's shape {tuple(B.shape)}, got {tuple(x0.shape)}; "
                "reshape it like B"
            )
        x0 = _to_jax(fn, "x0", x0) if isinstance(x0, torch.Tensor) else x0
        if x0.dtype != jnp.dtype(str(B.dtype).removeprefix("torch.")):
            raise ValueError(
                f"{fn}: x0 must have B's dtype {B.dtype}, got {x0.dtype}; cast it to B's dtype"
            )
    static: list[tuple[str, Hashable]] = []
    dynamic: dict[str, Any] = {}
    for key in sorted(kwargs):
        value = kwargs[key]
        traced = _as_dynamic(fn, key, value)
        if traced is not None:
            dynamic[key] = traced
            continue
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"{fn}: keyword argument {key} must be an array (torch or JAX), a SparseMatvec "
                f"or a hashable value, got {type(value).__name__}; pass a tuple for a list"
            ) from None
        static.append((key, value))
    return Plan(forward, backward, tuple(static), dynamic, x0, rtol, atol)
