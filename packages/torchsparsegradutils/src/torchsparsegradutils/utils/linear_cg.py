"""0.2's ``linear_cg``: its keyword names and settings, over :func:`tsgu.core.cg`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from tsgu.core import cg

__all__ = ["LinearCGSettings", "linear_cg"]


class LinearCGSettings(NamedTuple):
    """0.2's settings; ``cg_tolerance`` and ``max_cg_iterations`` are used, the rest ignored."""

    max_cg_iterations: int = 1000
    max_lanczos_quadrature_iterations: int = 20
    cg_tolerance: float = 1
    terminate_cg_by_size: bool = False
    verbose_linalg: bool = False


def linear_cg(
    matmul_closure: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    n_tridiag: int = 0,
    tolerance: float | None = None,
    eps: float = 1e-10,
    stop_updating_after: float = 1e-10,
    max_iter: int | None = None,
    max_tridiag_iter: int | None = None,
    initial_guess: torch.Tensor | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    settings: LinearCGSettings = LinearCGSettings(),  # noqa: B008 - 0.2's default
    **kwargs: Any,
) -> torch.Tensor:
    """Conjugate gradients with torchsparsegradutils 0.2's signature (see :func:`tsgu.core.cg`).

    ``tolerance`` (default ``settings.cg_tolerance``, 1 as in 0.2) is the relative residual
    at which a column stops; ``tol``/``rtol`` (the 0.2 README's spelling) override it.
    ``eps`` and ``stop_updating_after`` are accepted and unused. ``n_tridiag > 0`` (Lanczos
    tridiagonal matrices, gpytorch's use) is not provided.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.utils import linear_cg
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> linear_cg(A.to_sparse(), torch.tensor([1.0, 2.0], dtype=torch.float64), tolerance=1e-10)
    tensor([0.0909, 0.6364], dtype=torch.float64)
    """
    del eps, stop_updating_after, max_tridiag_iter
    if n_tridiag:
        raise NotImplementedError(
            "linear_cg: n_tridiag > 0 (Lanczos tridiagonal output) is not provided by "
            "torchsparsegradutils 0.3; use gpytorch's linear_cg for it"
        )
    rtol = kwargs.pop("tol", None) or kwargs.pop("rtol", None)
    if rtol is None:
        rtol = settings.cg_tolerance if tolerance is None else tolerance
    maxiter = max_iter if max_iter is not None else settings.max_cg_iterations
    x: torch.Tensor = cg(
        matmul_closure,
        rhs,
        x0=initial_guess,
        rtol=rtol,
        maxiter=maxiter,
        M=preconditioner,
        **kwargs,
    )
    return x
