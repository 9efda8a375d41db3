"""0.2's ``torchsparsegradutils.jax.jax_sparse_solve``: 0.2's defaults over tsgu.jax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._deprecated import FunctionAlias, forwarding
from ._tsgu_jax import tsgu_jax

__all__ = ["sparse_solve_j4t"]


def sparse_solve_j4t(
    A: torch.Tensor,
    B: torch.Tensor,
    solve: str | Callable[..., Any] | None = None,
    transpose_solve: str | Callable[..., Any] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Solve ``A X = B`` with JAX, as 0.2 did: see :func:`tsgu.jax.sparse_solve_j4t`.

    Two 0.2 conventions differ from tsgu.jax and are kept here: ``solve=None`` means
    BiCGSTAB (tsgu.jax defaults to CG), and float64 input switches JAX's 64-bit mode on
    for the whole process (tsgu.jax asks the caller to). The backward solves with Aᵀ,
    not with A twice transposed as 0.2's default did.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.jax import sparse_solve_j4t
    >>> A = torch.tensor([[4.0, 1.0], [0.0, 3.0]]).to_sparse_coo()
    >>> sparse_solve_j4t(A, torch.tensor([5.0, 3.0]))
    tensor([1., 1.])
    """
    if A.dtype == torch.float64 or B.dtype == torch.float64:
        _enable_x64()
    return tsgu_jax.sparse_solve_j4t(
        A, B, "bicgstab" if solve is None else solve, transpose_solve, **kwargs
    )


def _enable_x64() -> None:
    """Switch JAX's 64-bit mode on, as 0.2's solve did when given float64."""
    import jax

    jax.config.update("jax_enable_x64", True)


__getattr__ = forwarding(
    __name__,
    {"SparseSolveJ4T": (lambda: FunctionAlias(sparse_solve_j4t), "sparse_solve_j4t(A, B, ...)")},
)
