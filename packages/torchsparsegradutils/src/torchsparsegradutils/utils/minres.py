"""0.2's ``minres``: shifts, scaling and settings, over :func:`tsgu.core.minres`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from tsgu.core import minres as _minres

__all__ = ["MINRESSettings", "minres"]


class MINRESSettings(NamedTuple):
    """0.2's settings: ``max_cg_iterations`` and ``minres_tolerance`` are used."""

    max_cg_iterations: int = 1000
    minres_tolerance: float = 1e-4
    verbose_linalg: bool = False


def _apply(
    A: torch.Tensor | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    return A(x) if callable(A) and not isinstance(A, torch.Tensor) else A @ x


def minres(
    matmul_closure: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    eps: float = 1e-25,
    shifts: torch.Tensor | None = None,
    value: float | None = None,
    max_iter: int | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    settings: MINRESSettings = MINRESSettings(),  # noqa: B008 - 0.2's default
    **kwargs: Any,
) -> torch.Tensor:
    """MINRES with torchsparsegradutils 0.2's signature (see :func:`tsgu.core.minres`).

    Solves ``(value · A + σ I) x = b`` for every shift σ in ``shifts`` (returned stacked,
    ``(s, *rhs.shape)``), or ``value · A x = b`` without shifts; stops at the relative
    residual ``settings.minres_tolerance`` (0.2 tested its update norm every 10 iterations).
    ``eps`` is accepted and unused.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.utils import MINRESSettings, minres
    >>> A = torch.tensor([[1.0, 2.0], [2.0, -3.0]], dtype=torch.float64)
    >>> b = torch.tensor([5.0, -4.0], dtype=torch.float64)
    >>> minres(A, b, settings=MINRESSettings(minres_tolerance=1e-12)).round(decimals=10)
    tensor([1., 2.], dtype=torch.float64)
    """
    del eps
    n = rhs.shape[-1] if rhs.dim() == 1 else rhs.shape[-2]
    if isinstance(matmul_closure, torch.Tensor) and matmul_closure.dim() > 2 and rhs.dim() > 1:
        # 0.2 broadcast a batch of matrices against one block of right-hand sides.
        batch = torch.broadcast_shapes(matmul_closure.shape[:-2], rhs.shape[:-2])
        rhs = rhs.expand(*batch, *rhs.shape[-2:])
    options: dict[str, Any] = {
        "rtol": settings.minres_tolerance,
        "maxiter": min(max_iter or settings.max_cg_iterations, n + 1),
        "M": preconditioner,
    }
    options.update(kwargs)
    scale = 1.0 if value is None else value
    if shifts is None:
        if scale == 1.0:
            x: torch.Tensor = _minres(matmul_closure, rhs, **options)
            return x
        return _minres(lambda v: scale * _apply(matmul_closure, v), rhs, **options)

    def shifted(shift: float) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda v: scale * _apply(matmul_closure, v) + shift * v

    # One solve per shift: shifts are few (0.2's use: a handful of quadrature nodes).
    return torch.stack([_minres(shifted(s), rhs, **options) for s in shifts.tolist()])
