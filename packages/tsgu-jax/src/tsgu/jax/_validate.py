"""Input checks of tsgu.jax, built on ``tsgu.core.validation`` so errors read as in tsgu-core."""

from __future__ import annotations

from typing import Any

import jax
import torch
from jax.experimental import sparse as jsparse

from tsgu.core.extend import INT32_MAX
from tsgu.core.validation import (
    check_maxiter,
    check_sparse_structure,
    check_tolerance,
    layout_name,
)

from ._x64 import X64_FIX, x64_enabled

__all__ = [
    "check_jax_array",
    "check_jax_sparse",
    "check_solver_options",
    "checked_torch_sparse",
    "index_dtype_for",
    "jax_kind",
]


def jax_kind(value: object) -> str:
    """A short name of what ``value`` is, for messages."""
    if isinstance(value, jsparse.BCOO):
        return "a jax BCOO matrix"
    if isinstance(value, jsparse.BCSR):
        return "a jax BCSR matrix"
    if isinstance(value, torch.Tensor):
        return f"a torch.Tensor ({layout_name(value.layout)})"
    return type(value).__name__


def check_jax_array(fn: str, name: str, value: object) -> jax.Array:
    """``value`` must be a dense ``jax.Array`` (TypeError otherwise)."""
    if isinstance(value, jsparse.BCOO):
        raise TypeError(f"{fn}: {name} must be a dense jax.Array, got a BCOO matrix; use j2t_coo")
    if isinstance(value, jsparse.BCSR):
        raise TypeError(f"{fn}: {name} must be a dense jax.Array, got a BCSR matrix; use j2t_csr")
    if not isinstance(value, jax.Array):
        fix = "; use t2j to go the other way" if isinstance(value, torch.Tensor) else ""
        raise TypeError(f"{fn}: {name} must be a jax.Array, got {jax_kind(value)}{fix}")
    return value


def check_jax_sparse(fn: str, name: str, value: Any, kind: type) -> Any:
    """``value`` must be a ``jax.experimental.sparse`` matrix of class ``kind`` with scalar
    values and 2 or 3 dimensions (one batch dimension at most for BCSR)."""
    if not isinstance(value, kind):
        raise TypeError(
            f"{fn}: {name} must be a jax.experimental.sparse.{kind.__name__} matrix, "
            f"got {jax_kind(value)}"
        )
    matrix: Any = value
    if matrix.n_dense != 0:
        raise ValueError(
            f"{fn}: {name} must have scalar values (n_dense=0), got n_dense={matrix.n_dense}; "
            "torch sparse tensors in tsgu hold scalar values"
        )
    if matrix.ndim not in (2, 3):
        raise ValueError(f"{fn}: {name} must have 2 or 3 dimensions, got shape {matrix.shape}")
    return matrix


def index_dtype_for(fn: str, name: str, *extents: int) -> torch.dtype:
    """The index dtype JAX can hold for indices up to ``extents``: int32 when they fit
    (JAX's default and its faster kernels), int64 in 64-bit mode, else a ValueError."""
    if max(extents, default=0) <= INT32_MAX:
        return torch.int32
    if x64_enabled():
        return torch.int64
    raise ValueError(
        f"{fn}: {name} needs 64-bit indices (an extent of {max(extents)} exceeds int32), "
        f"which JAX holds only in 64-bit mode; {X64_FIX.split(', or cast')[0]}"
    )


def check_solver_options(fn: str, kwargs: dict[str, Any]) -> None:
    """Tolerances non-negative real numbers (NaN is an error), ``maxiter`` a non-negative
    int: the policy of tsgu.core's solvers, before JAX sees them."""
    for name in ("tol", "rtol", "atol"):
        if kwargs.get(name) is not None:
            check_tolerance(fn, name, kwargs[name])
    check_maxiter(fn, kwargs.get("maxiter"))


def checked_torch_sparse(fn: str, name: str, A: torch.Tensor) -> torch.Tensor:
    """A torch sparse tensor made from a JAX matrix's buffers, its index structure checked
    (JAX does not check BCOO/BCSR indices; torch's kernels would read out of bounds)."""
    check_sparse_structure(fn, name, A)
    return A
