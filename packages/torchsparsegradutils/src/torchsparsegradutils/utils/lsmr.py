"""0.2's ``lsmr``: its signature and ``(x, itn)`` return, over :func:`tsgu.core.lsmr`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tsgu.core import lsmr as _lsmr

from ._complex import complex_dtype, embed, embed_callable, embed_vector, is_complex, unembed

__all__ = ["lsmr"]


def _as_vector_if_one(t: torch.Tensor) -> torch.Tensor:
    """``(1, m)`` or ``(m, 1)`` (one vector with singleton dimensions) as ``(m,)``."""
    if t.dim() >= 2 and sum(size != 1 for size in t.shape) <= 1:
        return t.reshape(-1)
    return t


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

    Returns ``(x, itn)``. A callable ``A`` needs ``Armat`` (its adjoint ``Aᴴ``); ``n`` and
    ``check_nonzero`` are accepted and unused (tsgu finds n from ``Armat``). A ``b`` that
    holds one vector (``(m, 1)``, ``(1, m)``) is squeezed to ``(m,)`` as in 0.2; unlike 0.2,
    a multi-RHS ``(m, k)`` is solved, its columns together.

    Complex ``A``, ``b`` or ``x0`` are accepted, as in 0.2: the problem is solved as the
    real one of twice the size, ``[[Re A, -Im A], [Im A, Re A]] [Re x; Im x] = [Re b; Im b]``,
    on which LSMR takes exactly the steps it takes on the complex problem (a sparse A
    is stored with 4 nnz(A) entries for the solve).

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.utils import lsmr
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> b = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    >>> x, itn = lsmr(A.to_sparse(), b, atol=1e-12, btol=1e-12)
    >>> x, itn
    (tensor([1.3333, 2.3333], dtype=torch.float64), 2)
    >>> x, _ = lsmr(A.to(torch.complex128).to_sparse(), 1j * b, atol=1e-12, btol=1e-12)
    >>> x
    tensor([0.+1.3333j, 0.+2.3333j], dtype=torch.complex128)
    """
    del n, check_nonzero
    # 0.2 solved for one right-hand side and squeezed b (and x0) to a vector
    b = _as_vector_if_one(b)
    x0 = None if x0 is None else _as_vector_if_one(x0)
    complex_problem = is_complex(A, b, x0)
    if complex_problem:
        dtype = complex_dtype(A, b, x0)
        A = embed(A, dtype)
        Armat = None if Armat is None else embed_callable(Armat, dtype)
        b = embed_vector(b, dtype)
        x0 = None if x0 is None else embed_vector(x0, dtype)
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
    return (unembed(x) if complex_problem else x), info.iterations
