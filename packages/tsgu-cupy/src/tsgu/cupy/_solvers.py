"""The solvers behind ``sparse_solve_c4t``: direct (LU), named SciPy/CuPy Krylov, or a callable.

Every solver is a *step* that solves with A or with Aᵀ (``transpose``) on one
:class:`System`, which holds what the solves of one A share: its backend matrix and its
LU factorization, each made once, when first needed.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import torch

from tsgu.core import ConvergenceWarning
from tsgu.core.validation import COO

from ._backend import Backend
from ._cache import factor_cache
from ._factor import FACTOR_OPTIONS, Factor, factorize
from .conversion import backend_coo, backend_csr

__all__ = [
    "ITERATIVE",
    "NAMES",
    "Direct",
    "Named",
    "Step",
    "System",
    "UserCallable",
    "factor_options",
]

ITERATIVE = ("cg", "cgs", "minres", "gmres")
NAMES = (*ITERATIVE, "spsolve")
# Solvers that assume a symmetric A (and a symmetric preconditioner): Aᵀ = A, Mᵀ = M.
_SYMMETRIC = ("cg", "minres")


def factor_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments that the LU factorization takes (``splu``'s)."""
    return {k: v for k, v in kwargs.items() if k in FACTOR_OPTIONS}


class System:
    """One matrix A on one backend: its backend matrix and LU factors, made when first needed.

    ``key`` is the caller's tensor (the factorization cache's identity); ``A`` its detached
    alias, whose memory the backend matrices share.
    """

    def __init__(
        self, fn: str, key: torch.Tensor, backend: Backend, options: dict[str, Any]
    ) -> None:
        self.fn = fn
        self.key = key
        self.A = key.detach()
        self.backend = backend
        self.options = options
        self._matrix: Any = None
        self._factor: Factor | None = None

    def matrix(self, transpose: bool = False) -> Any:
        """A (or Aᵀ) as the backend's sparse matrix, for matrix-vector products."""
        if self._matrix is None:
            if self.A.layout == COO:  # CSR once: faster products, repeated positions summed
                self._matrix = backend_coo(self.backend, self.A).tocsr()
            else:
                self._matrix = backend_csr(self.backend, self.A)
        return self._matrix.T if transpose else self._matrix

    def factor(self) -> Factor:
        """A's LU factorization: this system's, the cache's, or a new one (then cached)."""
        if self._factor is None:
            factor = factor_cache.get(self.key, self.options)
            if factor is None:
                factor = factorize(self.fn, self.backend, self.A, self.options)
                factor_cache.put(self.key, self.options, factor)
            self._factor = factor
        return self._factor


# ------------------------------------------------------------------ keyword arguments
def _accepted(fn: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs ``fn`` accepts; ``tol``/``rtol`` renamed to the one it takes."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # no signature to read: hand everything over
        return dict(kwargs)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in ("tol", "rtol"):
            # SciPy >= 1.14 (and newer CuPy) call the relative tolerance rtol; older, tol.
            for alias in (name, "rtol" if name == "tol" else "tol"):
                if alias in params:
                    out[alias] = value
                    break
            else:
                if takes_any:
                    out[name] = value
        elif name in params or takes_any:
            out[name] = value
    return out


def _to_backend(backend: Backend, value: Any, dtype: torch.dtype) -> Any:
    """A torch tensor among the kwargs (x0, M) as a backend array or sparse matrix."""
    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach().to(device=backend.device)
    if value.layout == torch.sparse_csr:
        return backend_csr(backend, value.to(dtype))
    if value.layout == COO:
        return backend_coo(backend, value.to(dtype)).tocsr()
    return backend.array(value.to(dtype).contiguous())


def _adapt(
    backend: Backend, kwargs: dict[str, Any], transpose: bool, symmetric: bool, dtype: torch.dtype
) -> dict[str, Any]:
    """The kwargs for one solve: tensors converted; for Aᵀ, no x0 and the transposed M."""
    out = {k: _to_backend(backend, v, dtype) for k, v in kwargs.items()}
    if transpose:
        out.pop("x0", None)  # a guess for X, not for the transposed system's solution
        M = out.get("M")
        if M is not None and not symmetric and hasattr(M, "T"):
            out["M"] = M.T
    return out


# ---------------------------------------------------------------------------- steps
class Step:
    """Solves ``A x = rhs`` (``transpose=False``) or ``Aᵀ x = rhs`` on a system."""

    name = "step"

    def run(self, system: System, rhs: Any, transpose: bool, kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError


class Direct(Step):
    """The LU factorization of A, made once, solving with A (``trans='N'``) and Aᵀ."""

    name = "spsolve"

    def run(self, system: System, rhs: Any, transpose: bool, kwargs: dict[str, Any]) -> Any:
        return system.factor().solve(rhs, transpose)


def _warn_unconverged(
    system: System, name: str, matrix: Any, rhs: Any, x: Any, info: Any, transpose: bool
) -> None:
    xp = system.backend.xp
    scale = float(xp.linalg.norm(rhs)) or 1.0
    residual = float(xp.linalg.norm(rhs - matrix @ x)) / scale
    which = "Aᵀ y = g (the backward solve)" if transpose else "A x = b"
    warnings.warn(
        f"{system.fn}: {name} did not converge on {which}: info = {info}, relative residual "
        f"{residual:.3e}; raise maxiter, loosen rtol/atol, or use solve='spsolve'",
        ConvergenceWarning,
        stacklevel=5,
    )


class Named(Step):
    """A SciPy (CPU) or cupyx.scipy (CUDA) Krylov solver, by name; vector right-hand sides."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, system: System, rhs: Any, transpose: bool, kwargs: dict[str, Any]) -> Any:
        fn = getattr(system.backend.linalg, self.name)
        matrix = system.matrix(transpose)
        kw = _adapt(system.backend, kwargs, transpose, self.name in _SYMMETRIC, system.A.dtype)
        column = rhs.reshape(-1)  # (n,) or a single column (n, 1)
        x, info = fn(matrix, column, **_accepted(fn, kw))
        if int(info) != 0:
            _warn_unconverged(system, self.name, matrix, column, x, int(info), transpose)
        return x.reshape(rhs.shape)


class UserCallable(Step):
    """A user's ``solve(A, b, **kwargs) -> x``: it gets the backend matrix of A, or of Aᵀ."""

    def __init__(self, fn: Callable[..., Any], role: str) -> None:
        self.fn = fn
        self.role = role  # "solve" or "transpose_solve", for messages
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def run(self, system: System, rhs: Any, transpose: bool, kwargs: dict[str, Any]) -> Any:
        matrix = system.matrix(transpose)
        kw = _adapt(system.backend, kwargs, transpose, False, system.A.dtype)
        out = self.fn(matrix, rhs.copy(), **_accepted(self.fn, kw))  # a copy: it may write
        info: Any = 0
        if isinstance(out, tuple) and out:  # SciPy-style (x, info)
            out, info = out[0], (out[1] if len(out) > 1 else 0)
        if isinstance(out, torch.Tensor):
            out = system.backend.array(out.to(system.backend.device).contiguous())
        size = getattr(out, "size", None)
        if size != rhs.size:
            got = tuple(getattr(out, "shape", ())) or type(out).__name__
            raise ValueError(
                f"{system.fn}: {self.role} must return an array of shape {tuple(rhs.shape)}, "
                f"got {got}; return x shaped like b"
            )
        out = out.reshape(rhs.shape)
        if isinstance(info, numbers.Integral) and info != 0:
            _warn_unconverged(system, self.name, matrix, rhs, out, int(info), transpose)
        return out
