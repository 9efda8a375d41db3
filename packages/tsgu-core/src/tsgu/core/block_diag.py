"""Block-diagonal assembly of sparse matrices, and its inverse, vectorised and O(nnz)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._pattern import Pattern, attach_values, index_dtype_for, values_of
from .validation import COO, CSR, check_sparse, layout_name

__all__ = ["sparse_block_diag", "sparse_block_diag_split"]


def _offsets(sizes: Sequence[int], device: torch.device) -> torch.Tensor:
    """Exclusive prefix sums of ``sizes``: where each block starts."""
    out = torch.zeros(len(sizes) + 1, dtype=torch.int64, device=device)
    out[1:] = torch.tensor(list(sizes), dtype=torch.int64).cumsum(0)
    return out


def sparse_block_diag(*sparse_tensors: torch.Tensor) -> torch.Tensor:
    """Assemble 2D sparse matrices into one block-diagonal matrix.

    Parameters
    ----------
    *sparse_tensors : torch.Tensor
        2D sparse tensors, all COO or all CSR, with scalar values, of one dtype and device.

    Returns
    -------
    torch.Tensor
        Sparse ``(sum n_i, sum m_i)`` tensor of the inputs' layout (CSR keeps int32 indices
        when all inputs have them and the result fits). A single input is returned as it is.
        Gradients flow back to every input's values in O(nnz).

    Raises
    ------
    TypeError
        No input, an input that is not sparse COO/CSR, or mixed layouts.
    ValueError
        An input that is not 2D or has dense dimensions; dtypes or devices that differ.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_block_diag
    >>> a = torch.tensor([[1.0, 2.0]]).to_sparse()
    >>> sparse_block_diag(a, a).to_dense()
    tensor([[1., 2., 0., 0.],
            [0., 0., 1., 2.]])
    """
    fn = "sparse_block_diag"
    if not sparse_tensors:
        raise TypeError(f"{fn}: expected at least one sparse tensor, got none")
    mats = [
        check_sparse(fn, f"sparse_tensors[{i}]", t, layouts=(COO, CSR), dims=(2,))
        for i, t in enumerate(sparse_tensors)
    ]
    first = mats[0]
    for i, t in enumerate(mats[1:], start=1):
        if t.layout != first.layout:
            raise TypeError(
                f"{fn}: all tensors must share one layout, sparse_tensors[0] is "
                f"{layout_name(first.layout)} and sparse_tensors[{i}] is {layout_name(t.layout)}"
            )
        if t.dtype != first.dtype or t.device != first.device:
            raise ValueError(
                f"{fn}: all tensors must share dtype and device, sparse_tensors[0] has "
                f"{first.dtype} on {first.device}, sparse_tensors[{i}] has {t.dtype} on {t.device}"
            )
    if len(mats) == 1:
        return first
    device = first.device
    row_start = _offsets([t.shape[0] for t in mats], device)
    col_start = _offsets([t.shape[1] for t in mats], device)
    shape = (int(row_start[-1]), int(col_start[-1]))
    values = torch.cat([values_of(t) for t in mats])
    nnz = torch.tensor([t._nnz() for t in mats], device=device)
    block = torch.repeat_interleave(torch.arange(len(mats), device=device), nnz)
    if first.layout == COO:
        indices = torch.cat([t._indices() for t in mats], dim=1)
        indices = indices + torch.stack([row_start[block], col_start[block]])
        raw = torch.sparse_coo_tensor(
            indices,
            values.detach(),
            shape,
            is_coalesced=all(t.is_coalesced() for t in mats),
        )
    else:
        dtypes = {t.crow_indices().dtype for t in mats}
        preferred = torch.int32 if dtypes == {torch.int32} else torch.int64
        dtype = index_dtype_for(*shape, preferred=preferred)
        nnz_start = _offsets(nnz.tolist(), device)
        crow_heads = [t.crow_indices()[:-1].to(dtype) for t in mats]
        row_block = torch.repeat_interleave(
            torch.arange(len(mats), device=device),
            torch.tensor([t.shape[0] for t in mats], device=device),
        )
        crow = torch.cat(
            [torch.cat(crow_heads) + nnz_start[row_block].to(dtype), nnz_start[-1:].to(dtype)]
        )
        col = torch.cat([t.col_indices().to(dtype) for t in mats]) + col_start[block].to(dtype)
        raw = torch.sparse_csr_tensor(crow, col, values.detach(), shape, check_invariants=False)
    return attach_values(raw, values)


def sparse_block_diag_split(
    sparse_block_diag_tensor: torch.Tensor, *shapes: Sequence[int]
) -> tuple[torch.Tensor, ...]:
    """Split a block-diagonal sparse matrix into its blocks (inverse of :func:`sparse_block_diag`).

    Parameters
    ----------
    sparse_block_diag_tensor : torch.Tensor
        2D sparse COO or CSR matrix whose entries all lie in the diagonal blocks.
    *shapes : sequence of int
        ``(n_i, m_i)`` of every block, in order; they must add up to the matrix's shape.

    Returns
    -------
    tuple of torch.Tensor
        One sparse tensor per block, in the input's layout (and CSR index dtype), values in
        the input's order. Gradients flow back to the input's values in O(nnz).

    Raises
    ------
    TypeError
        The input is not a 2D sparse COO/CSR tensor.
    ValueError
        Shapes that are not pairs of non-negative ints, that do not add up to the matrix's
        shape, or an entry outside the diagonal blocks.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_block_diag, sparse_block_diag_split
    >>> a, b = torch.eye(2).to_sparse_csr(), torch.ones(1, 3).to_sparse_csr()
    >>> [t.shape for t in sparse_block_diag_split(sparse_block_diag(a, b), (2, 2), (1, 3))]
    [torch.Size([2, 2]), torch.Size([1, 3])]
    """
    fn = "sparse_block_diag_split"
    A = check_sparse(fn, "sparse_block_diag_tensor", sparse_block_diag_tensor, (COO, CSR), (2,))
    if not shapes or not all(
        len(s) == 2 and all(isinstance(d, int) and d >= 0 for d in s) for s in shapes
    ):
        raise ValueError(
            f"{fn}: shapes must be pairs (n_i, m_i) of non-negative ints, got {shapes}"
        )
    device = A.device
    row_start = _offsets([s[0] for s in shapes], device)
    col_start = _offsets([s[1] for s in shapes], device)
    if (int(row_start[-1]), int(col_start[-1])) != tuple(A.shape):
        raise ValueError(
            f"{fn}: shapes must add up to the matrix's shape {tuple(A.shape)}, "
            f"got {(int(row_start[-1]), int(col_start[-1]))}"
        )
    pattern = Pattern.of(A)
    values = values_of(A, pattern)
    rows, cols = pattern.rows, pattern.cols
    block = torch.searchsorted(row_start[1:], rows.to(torch.int64), right=True)
    local_cols = cols.to(torch.int64) - col_start[block]
    widths = col_start[1:] - col_start[:-1]
    if bool(((local_cols < 0) | (local_cols >= widths[block])).any()):
        raise ValueError(f"{fn}: the matrix has entries outside the diagonal blocks of {shapes}")
    # Group entries by block (a stable sort keeps each block's own order), then split.
    if A.layout == COO and not bool((block[1:] >= block[:-1]).all()):
        block, order = torch.sort(block, stable=True)
        rows, local_cols, values = rows[order], local_cols[order], values[order]
    counts = torch.bincount(block, minlength=len(shapes)).tolist()
    local_rows = rows.to(torch.int64) - row_start[block]
    pieces = zip(
        torch.split(local_rows, counts),
        torch.split(local_cols, counts),
        torch.split(values, counts),
        [tuple(s) for s in shapes],
        strict=True,
    )
    dtype = A.crow_indices().dtype if A.layout == CSR else torch.int64
    out = []
    for r, c, v, s in pieces:  # one iteration per block, each vectorised
        if A.layout == COO:
            indices = torch.stack([r, c])
            raw = torch.sparse_coo_tensor(indices, v.detach(), s, is_coalesced=A.is_coalesced())
        else:
            crow = torch.searchsorted(r, torch.arange(s[0] + 1, device=device)).to(dtype)
            raw = torch.sparse_csr_tensor(crow, c.to(dtype), v.detach(), s, check_invariants=False)
        out.append(attach_values(raw, v))
    return tuple(out)
