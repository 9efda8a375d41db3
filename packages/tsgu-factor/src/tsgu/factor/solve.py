"""``solve(A, B)``: a direct solve that keeps the symbolic analysis of recent patterns."""

from __future__ import annotations

from collections import OrderedDict

import torch

from ._validate import check_kind, check_matrix
from .factorization import Factorization, factorize

__all__ = ["clear_cache", "solve"]

CACHE_SIZE = 8
_cache: OrderedDict[int, Factorization] = OrderedDict()
_next_key = 0


def _lookup(A: torch.Tensor, kind: str, method: str | None) -> Factorization | None:
    for key, F in _cache.items():
        same_kind = F.kind == kind and (method is None or F.method == method)
        if same_kind and F.dtype == A.dtype and F._structure.pattern.same_structure(A):
            _cache.move_to_end(key)
            return F
    return None


def solve(
    A: torch.Tensor,
    B: torch.Tensor,
    kind: str = "lu",
    *,
    transpose: bool = False,
    method: str | None = None,
) -> torch.Tensor:
    r"""Solve ``A X = B`` directly, reusing the analysis of A's pattern across calls.

    The first call with a pattern factorizes from scratch (:func:`factorize`); later calls
    with the same pattern (layout and indices) and new values only refactor: the ordering
    and symbolic analysis are kept, by pattern and never by values, for the last
    ``CACHE_SIZE`` (8) patterns. This is the form a Newton loop needs.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)``; see :func:`factorize`.
    B : torch.Tensor
        Dense ``(n,)`` or ``(n, k)``.
    kind : {"lu", "cholesky", "ldl"}
        As in :func:`factorize`.
    transpose : bool
        Solve ``Aᵀ X = B``.
    method : str, optional
        As in :func:`factorize`.

    Returns
    -------
    torch.Tensor
        X, differentiable in A and B (see :meth:`Factorization.solve`).

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> from tsgu.factor import solve
    >>> A = tc.poisson_2d(4, dtype=torch.float64)
    >>> b = torch.ones(16, dtype=torch.float64)
    >>> for step in range(3):  # new values, one pattern: analysed once
    ...     A_step = torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(),
    ...                                      A.values() * (1 + step), A.shape)
    ...     x = solve(A_step, b, kind="cholesky")
    >>> torch.allclose(tc.sparse_mm(A_step, x), b)
    True
    """
    global _next_key
    kind = check_kind("solve", kind)
    A = check_matrix("solve", A)
    F = _lookup(A, kind, method)
    if F is None:
        F = factorize(A, kind, method=method)
        _cache[_next_key] = F
        _next_key += 1
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    elif F._A is not A:
        F.refactor(A)
    return F.solve(B, transpose=transpose)


def clear_cache() -> None:
    """Forget the factorizations :func:`solve` keeps."""
    _cache.clear()
