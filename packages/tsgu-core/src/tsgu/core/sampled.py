"""``sparse_sampled_mm``: a dense-dense product evaluated at a sparse pattern only."""

from __future__ import annotations

from typing import cast

import torch

from ._compiled.parts import SparseParts, check_parts
from ._compiled.products import sampled
from ._pattern import from_values, sampled_product
from ._pattern_cache import cached_pattern
from .validation import (
    COO,
    CSC,
    CSR,
    check_dense,
    check_float_dtype,
    check_same_device,
    check_same_dtype,
    check_sparse,
)

__all__ = ["sparse_sampled_mm"]


def _check(
    A: object, mat1: object, mat2: object
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    fn = "sparse_sampled_mm"
    if isinstance(A, SparseParts):  # built by tsgu's constructors in a compiled region
        A = check_parts(fn, "A", A, layouts=(COO, CSR, CSC))
    else:
        A = check_sparse(fn, "A", A, layouts=(COO, CSR, CSC), dims=(2, 3))
    mat1 = check_dense(fn, "mat1", mat1, dims=(A.dim(),))
    mat2 = check_dense(fn, "mat2", mat2, dims=(A.dim(),))
    n, m = A.shape[-2], A.shape[-1]
    if mat1.shape[-2] != n or mat2.shape[-1] != m or mat1.shape[-1] != mat2.shape[-2]:
        raise ValueError(
            f"{fn}: mat1 @ mat2 must have A's shape {tuple(A.shape)}, got mat1 of shape "
            f"{tuple(mat1.shape)} and mat2 of shape {tuple(mat2.shape)}"
        )
    if A.dim() == 3 and not (mat1.shape[0] == mat2.shape[0] == A.shape[0]):
        raise ValueError(
            f"{fn}: batch sizes must match, got {A.shape[0]} for A, {mat1.shape[0]} for mat1 "
            f"and {mat2.shape[0]} for mat2"
        )
    check_float_dtype(fn, "mat1", mat1)
    check_same_dtype(fn, ("mat1", "mat2"), mat1, mat2)
    check_same_dtype(fn, ("A", "mat1"), A, mat1)
    check_same_device(fn, ("A", "mat1"), A, mat1)
    check_same_device(fn, ("mat1", "mat2"), mat1, mat2)
    return A, mat1, mat2


def sparse_sampled_mm(A: torch.Tensor, mat1: torch.Tensor, mat2: torch.Tensor) -> torch.Tensor:
    r"""The product ``mat1 @ mat2`` evaluated only at A's stored entries.

    This is the computation behind every sparse gradient in tsgu (for ``C = A @ B``,
    ``grad_A = sparse_sampled_mm(A, grad_C, B.mT)``); packages that add their own sparse
    operations use it for theirs.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO, CSR or CSC ``(n, m)`` or ``(b, n, m)``: only its pattern is used.
    mat1 : torch.Tensor
        Dense ``(n, k)`` or ``(b, n, k)``.
    mat2 : torch.Tensor
        Dense ``(k, m)`` or ``(b, k, m)``.

    Returns
    -------
    torch.Tensor
        Sparse, with A's layout, indices (and index dtype) and value order; the value of
        stored entry (i, j) is :math:`\sum_p \mathrm{mat1}_{ip} \mathrm{mat2}_{pj}`.

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR/CSC, or ``mat1``/``mat2`` are not dense.
    ValueError
        Shapes, batch sizes, dtypes or devices that do not fit.

    Notes
    -----
    Differentiable in ``mat1`` and ``mat2`` to any order:
    :math:`\bar{\mathrm{mat1}} = S\, \mathrm{mat2}^\top`,
    :math:`\bar{\mathrm{mat2}} = \mathrm{mat1}^\top S` with :math:`S` the sparse incoming
    gradient. O(nnz·k) time; no ``nnz x k`` intermediate on the row-sorted fast path
    (CSR, coalesced COO), chunked gathers otherwise.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_sampled_mm
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).to_sparse_csr()
    >>> U, V = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0, 4.0]])
    >>> sparse_sampled_mm(A, U, V).to_dense()
    tensor([[3., 0.],
            [0., 8.]])
    """
    A, mat1, mat2 = _check(A, mat1, mat2)
    if isinstance(A, SparseParts):  # a compiled region: the custom op, and parts back
        k = mat1.shape[-1]
        values = sampled(*A.args(), mat1.reshape(-1, k), mat2.mT.reshape(-1, k))
        out = SparseParts(A.layout, A.indices, values.reshape(A.values().shape), tuple(A.shape))
        return cast(torch.Tensor, out)
    pattern = cached_pattern(A)  # kept between calls: the backward's transposed order
    k = mat1.shape[-1]
    values = sampled_product(pattern, mat1.reshape(-1, k), mat2.mT.reshape(-1, k))
    return from_values(pattern, values)
