"""Complex systems as real ones twice the size, for tsgu's real Krylov solvers.

``A x = b`` with complex ``A = Ar + i Ai`` is the real system

    [Ar  -Ai] [xr]   [br]
    [Ai   Ar] [xi] = [bi]

The map ``A -> J(A)`` keeps products (``J(A B) = J(A) J(B)``), takes ``Aᴴ`` to ``J(A)ᵀ``
and keeps 2-norms, so least-squares problems and their minimum-norm solutions carry over
unchanged: Golub-Kahan bidiagonalisation of ``J(A)`` from ``J(b)`` produces the same
``alpha`` and ``beta`` as on ``A`` from ``b``, hence LSMR takes the same steps. 0.2's
``lsmr`` and ``bicgstab`` accepted complex input; this lets the drop-in's do the same
over tsgu's solvers. A sparse ``J(A)`` stores 4 nnz(A) entries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["complex_dtype", "embed", "embed_callable", "embed_vector", "is_complex", "unembed"]

Operator = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


def is_complex(*tensors: object) -> bool:
    return any(isinstance(t, torch.Tensor) and t.is_complex() for t in tensors)


def complex_dtype(*tensors: object) -> torch.dtype:
    """The complex dtype that holds every tensor given (complex64 at least)."""
    dtype = torch.complex64
    for t in tensors:
        if isinstance(t, torch.Tensor):
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def embed_vector(b: torch.Tensor, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """``(m,)`` or ``(m, k)`` -> ``(2m,)`` or ``(2m, k)`` real: real parts on top."""
    b = b.to(dtype)
    return torch.cat([b.real, b.imag], dim=0)


def unembed(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`embed_vector`."""
    n = x.shape[0] // 2
    return torch.complex(x[:n], x[n:])


def _embed_matrix(A: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``J(A)`` of a 2D matrix, sparse (as COO; O(nnz)) or dense."""
    A = A.to(dtype)
    m, n = A.shape
    if A.layout == torch.strided:
        top = torch.cat([A.real, -A.imag], dim=1)
        return torch.cat([top, torch.cat([A.imag, A.real], dim=1)], dim=0)
    coo = A.to_sparse_coo().coalesce()
    (rows, cols), values = coo.indices(), coo.values()
    re, im = values.real, values.imag
    # blocks in order: Ar (top left), -Ai (top right), Ai (bottom left), Ar (bottom right)
    all_rows = torch.cat([rows, rows, rows + m, rows + m])
    all_cols = torch.cat([cols, cols + n, cols, cols + n])
    return torch.sparse_coo_tensor(
        torch.stack([all_rows, all_cols]), torch.cat([re, -im, im, re]), (2 * m, 2 * n)
    ).coalesce()


def embed_callable(
    f: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The product ``y -> J(A) y`` for the callable ``f(x) = A x``."""
    return lambda y: embed_vector(f(unembed(y)), dtype)


def embed(A: Operator, dtype: torch.dtype) -> Operator:
    """``J(A)`` of a matrix (as ``dtype``), or its product for a callable."""
    if isinstance(A, torch.Tensor):
        return _embed_matrix(A, dtype)
    return embed_callable(A, dtype)
