"""0.2's ``bicgstab``: its settings tuple, over :func:`tsgu.core.bicgstab`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from tsgu.core import bicgstab as _bicgstab

__all__ = ["BICGSTABSettings", "bicgstab"]


class BICGSTABSettings(NamedTuple):
    """0.2's settings: ``matvec_max`` (default 2n), ``abstol``, ``reltol``, ``precon``."""

    matvec_max: int | None = None
    abstol: float = 1e-8
    reltol: float = 1e-6
    precon: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None
    logger: Any = None


def bicgstab(
    matmul_closure: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    initial_guess: torch.Tensor | None = None,
    settings: BICGSTABSettings = BICGSTABSettings(),  # noqa: B008 - 0.2's default
    **kwargs: Any,
) -> torch.Tensor:
    """BiCGSTAB with torchsparsegradutils 0.2's signature (see :func:`tsgu.core.bicgstab`).

    ``settings.matvec_max`` matrix-vector products (two per iteration; default ``2n``),
    stopping at ``max(reltol ||b||, abstol)``. Unlike 0.2, ``initial_guess`` is honoured (0.2
    returned ``x0 + A⁻¹ b``) and multi-RHS columns are solved together.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.utils import bicgstab
    >>> A = torch.tensor([[4.0, 1.0], [-2.0, 3.0]], dtype=torch.float64).to_sparse_csr()
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> bicgstab(A, b, initial_guess=torch.ones(2, dtype=torch.float64))
    tensor([0.0714, 0.7143], dtype=torch.float64)
    """
    n = rhs.shape[0] if rhs.dim() == 1 else rhs.shape[-2]
    matvecs = settings.matvec_max if settings.matvec_max is not None else 2 * n
    options: dict[str, Any] = {
        "x0": initial_guess,
        "rtol": settings.reltol,
        "atol": settings.abstol,
        "maxiter": max(matvecs // 2, 1),
        "M": settings.precon,
    }
    options.update(kwargs)
    x: torch.Tensor = _bicgstab(matmul_closure, rhs, **options)
    return x
