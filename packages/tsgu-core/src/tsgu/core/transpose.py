"""``sparse_transpose``: the transpose of a sparse matrix, differentiable in O(nnz)."""

from __future__ import annotations

import torch

from ._pattern import transpose
from ._pattern_cache import cached_pattern
from .validation import COO, CSR, check_sparse

__all__ = ["sparse_transpose"]


def sparse_transpose(A: torch.Tensor) -> torch.Tensor:
    r"""The transpose ``Aᵀ`` of a sparse matrix (or of each matrix of a batch), in A's layout.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, m)`` or batch ``(b, n, m)``. COO may be uncoalesced; CSR
        may have int32 or int64 indices.

    Returns
    -------
    torch.Tensor
        Sparse ``(m, n)`` or ``(b, m, n)`` with A's layout: CSR keeps A's index dtype; a
        coalesced COO gives a coalesced COO (row-major), an uncoalesced one an uncoalesced
        one with its index rows swapped (no reordering, duplicates kept).

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO or CSR tensor.
    ValueError
        ``A`` has other than 2 or 3 dimensions, dense dimensions, or malformed indices.

    Notes
    -----
    :math:`\bar A_{ij} = \bar C_{ji}` for :math:`(i, j) \in \mathrm{nz}(A)`: the gradient
    is a sparse tensor with A's layout, indices and value order (a permutation of the
    incoming gradient's values), O(nnz) time and memory, differentiable to any order. The
    reordering is one stable sort of the column indices, made once per pattern and kept
    between calls (a training loop's later calls reuse it, and the result's index tensors).
    torch's own ``A.mT`` of a CSR tensor is a CSC tensor, which most of torch's sparse
    kernels (and its autograd) do not take.

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> A = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).to_sparse_csr().requires_grad_()
    >>> At = tc.sparse_transpose(A)
    >>> At.detach().to_dense()
    tensor([[1., 0.],
            [2., 3.]])
    >>> tc.sparse_mm(At, torch.tensor([[1.0], [10.0]])).sum().backward()
    >>> A.grad.values()  # in A's order: d/dA[0,0], d/dA[0,1], d/dA[1,1]
    tensor([ 1.,  1., 10.])
    """
    A = check_sparse("sparse_transpose", "A", A, layouts=(COO, CSR), dims=(2, 3))
    # kept between calls: the sort that orders the transpose is made once per pattern
    return transpose(A, cached_pattern(A))
