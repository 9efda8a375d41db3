"""``sparse_mm``: sparse @ dense with a sparse gradient for the sparse factor."""

from __future__ import annotations

import torch

from ._compiled.matmul import parts_mm
from ._compiled.parts import SparseParts, check_parts
from ._pattern import pattern_matmul, values_of
from ._pattern_cache import cached_pattern
from .matmul_sparse import sparse_sparse_mm
from .validation import (
    COO,
    CSR,
    check_dense,
    check_operand,
    check_sparse,
)

__all__ = ["sparse_mm"]


def _check(A: object, B: object) -> tuple[torch.Tensor, torch.Tensor]:
    fn = "sparse_mm"
    if isinstance(A, SparseParts):  # built by tsgu's constructors in a compiled region
        A = check_parts(fn, "A", A, layouts=(COO, CSR))
    else:
        A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=(2, 3))
    B = check_dense(fn, "B", B, dims=(1, 2, 3))
    if A.dim() == 2 and B.dim() == 3:
        raise ValueError(
            f"{fn}: B must have 1 or 2 dimensions when A is 2D, got shape {tuple(B.shape)}; "
            "batch A as well (3D, one matrix per batch item)"
        )
    if A.dim() == 3 and B.dim() != 3:
        raise ValueError(
            f"{fn}: B must have 3 dimensions (b, m, k) when A is batched, "
            f"got shape {tuple(B.shape)}"
        )
    check_operand(fn, A, B, A.shape[-1])
    return A, B


def sparse_mm(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    r"""Multiply a sparse matrix by a dense one, with a sparse gradient for the sparse one.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR matrix ``(n, m)``, or a batch ``(b, n, m)``. COO may be
        uncoalesced; CSR may have int32 or int64 indices.
    B : torch.Tensor
        Dense ``(m, k)``, ``(m,)`` (with a 2D ``A``), or ``(b, m, k)`` (with a batched ``A``);
        or sparse COO, CSR or CSC ``(m, p)`` / ``(b, m, p)``. Same dtype (float32 or
        float64) and device as ``A``.

    Returns
    -------
    torch.Tensor
        Dense ``C = A @ B``: ``(n, k)``, ``(n,)`` or ``(b, n, k)``. With a sparse ``B``, a
        sparse ``C`` in A's layout (CSR with A's index dtype, COO coalesced) on the pattern
        of the symbolic product (entries that cancel to zero are kept); a batched CSR ``C``
        stores the union of the items' patterns (torch needs one nnz for every item).

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO/CSR tensor (dense, CSC, BSR), or ``B`` is neither
        dense nor sparse COO, CSR or CSC.
    ValueError
        Ranks, inner dimensions or batch sizes that do not match; a dtype other than
        float32/float64; dtypes or devices of ``A`` and ``B`` that differ.

    Notes
    -----
    The gradients are

    .. math::

        \bar A_{ij} = \langle \bar C_{i,:}, B_{j,:} \rangle \quad (i, j) \in \mathrm{nz}(A),
        \qquad \bar B = A^\top \bar C .

    :math:`\bar A` is a sparse tensor with A's layout, indices (and index dtype) and value
    order, so it costs O(nnz·k) time and O(nnz) memory: nothing of size n x m is formed
    (``torch.sparse.mm`` on COO builds a dense n x m gradient). :math:`\bar B` is a sparse
    product with the transposed pattern. Both are computed only when needed, and both are
    differentiable, so second derivatives (``create_graph=True``) are exact. A batch is
    folded into one block-diagonal matrix: one kernel call, no loop over the batch.

    With a sparse ``B`` and :math:`V` the gradient at C's pattern,
    :math:`\bar A = (V B^\top) \odot \mathrm{mask}(A)` and
    :math:`\bar B = (A^\top V) \odot \mathrm{mask}(B)`, each at its input's pattern and
    order, computed at those entries only (a walk over the products ``A[i,k] B[k,j]`` in
    memory-bounded chunks, never a dense n x p); differentiable to any order. The forward
    values and C's pattern come from torch's sparse COO @ COO kernel.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_mm
    >>> A = torch.tensor([[2.0, 0.0], [0.0, 3.0]]).to_sparse_csr().requires_grad_()
    >>> B = torch.tensor([[1.0], [4.0]])
    >>> C = sparse_mm(A, B)
    >>> C
    tensor([[ 2.],
            [12.]], grad_fn=<...>)
    >>> C.sum().backward()
    >>> A.grad.values()  # only at A's two stored entries
    tensor([1., 4.])
    """
    if isinstance(B, torch.Tensor) and B.layout != torch.strided:
        return sparse_sparse_mm(A, B)
    A, B = _check(A, B)
    if isinstance(A, SparseParts):
        return parts_mm(A, B)
    # kept between calls: the backward's transposed order (a sort) is paid once per pattern
    pattern = cached_pattern(A)
    values = values_of(A, pattern)
    if A.dim() == 2:  # B is (m, k) or a vector (m,): the kernels take both
        return pattern_matmul(pattern, values, B)
    b, n, k = A.shape[0], A.shape[1], B.shape[-1]
    return pattern_matmul(pattern, values, B.reshape(-1, k)).reshape(b, n, k)
