"""0.2's ``lsmr``: its signature and ``(x, itn)`` return, over :func:`tsgu.core.lsmr`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tsgu.core import lsmr as _lsmr

__all__ = ["lsmr"]


def lsmr(
    A: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    Armat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    n: int | None = None,
    damp: float = 0.0,
    atol: float = 1e-6,
    btol: float = 1e-6,
    conlim: float = 1e8,
    maxiter: int | None = None,
    x0: torch.Tensor | None = None,
    check_nonzero: bool = True,
) -> tuple[torch.Tensor, int]:
    """LSMR with torchsparsegradutils 0.2's signature (see :func:`tsgu.core.lsmr`).

    Returns ``(x, itn)``. A callable ``A`` needs ``Armat`` (its adjoint); ``n`` and
    ``check_nonzero`` are accepted and unused (tsgu finds n from ``Armat``). Unlike 0.2,
    a multi-RHS ``b`` is solved column by column together, not squeezed.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.utils import lsmr
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> b = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    >>> x, itn = lsmr(A.to_sparse(), b, atol=1e-12, btol=1e-12)
    >>> x, itn
    (tensor([1.3333, 2.3333], dtype=torch.float64), 2)
    """
    del n, check_nonzero
    x, info = _lsmr(
        A,
        b,
        x0,
        damp=damp,
        atol=atol,
        btol=btol,
        conlim=conlim,
        maxiter=maxiter,
        rmatvec=Armat,
        return_info=True,
    )
    return x, info.iterations
