"""Layout conversions that keep gradients O(nnz): COO to CSR, and stacking CSR matrices."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._pattern import attach_values, values_of
from .validation import COO, CSR, check_dense, check_index_dtype, check_sparse

__all__ = ["convert_coo_to_csr", "convert_coo_to_csr_indices_values", "stack_csr"]


class _CompressedCoo:
    """CSR structure of COO indices: where each COO entry lands, duplicates summed or kept."""

    def __init__(self, coo_indices: torch.Tensor, num_rows: int, sum_duplicates: bool) -> None:
        fn = "convert_coo_to_csr_indices_values"
        dtype = coo_indices.dtype
        nnz = coo_indices.shape[1]
        batched = coo_indices.shape[0] == 3
        rows = coo_indices[-2].to(torch.int64)
        if batched:
            rows = coo_indices[0].to(torch.int64) * num_rows + rows
        cols = coo_indices[-1]
        self.nbatch = int(coo_indices[0].max()) + 1 if batched and nnz else 1
        ncols = int(cols.max()) + 1 if nnz else 1
        keys, perm = torch.sort(rows * ncols + cols.to(torch.int64), stable=True)
        if sum_duplicates:
            first = torch.ones_like(keys, dtype=torch.bool)
            first[1:] = keys[1:] != keys[:-1]
            kept = perm[first]
            # slot[k]: the CSR entry that COO entry k is summed into
            self.slot: torch.Tensor | None = torch.empty_like(perm)
            self.slot[perm] = torch.cumsum(first, 0) - 1
        else:
            kept, self.slot = perm, None
        self.perm = perm
        self.nnz_out = kept.numel()
        sorted_rows = rows.index_select(0, kept)
        col = cols.index_select(0, kept).to(dtype)
        bounds = torch.arange(self.nbatch * num_rows + 1, device=rows.device)
        crow = torch.searchsorted(sorted_rows, bounds).to(dtype)
        if not batched:
            self.crow, self.col = crow, col
            return
        counts = crow[num_rows::num_rows] - crow[:-1:num_rows]
        if nnz and not bool((counts == counts[0]).all()):
            raise ValueError(
                f"{fn}: every batch item must have the same nnz for a batched CSR tensor, "
                f"got {counts.tolist()}"
            )
        per_item = self.nnz_out // self.nbatch
        offsets = torch.arange(self.nbatch, device=crow.device, dtype=dtype)[:, None] * per_item
        head = crow[:-1].reshape(self.nbatch, num_rows)
        tail = crow[num_rows::num_rows].reshape(self.nbatch, 1)  # each item's end
        self.crow = torch.cat([head, tail], 1) - offsets
        self.col = col.reshape(self.nbatch, -1)

    def values(self, values: torch.Tensor) -> torch.Tensor:
        """COO ``values`` in CSR order (summed where duplicated); differentiable."""
        if self.slot is None:
            out = values.index_select(0, self.perm)
        else:
            out = values.new_zeros(self.nnz_out).index_add(0, self.slot, values)
        return out.reshape(self.col.shape)


def _check_coo_rows(fn: str, coo_indices: torch.Tensor, num_rows: int) -> None:
    """Every index non-negative and every row index below ``num_rows`` (one host read)."""
    if coo_indices.shape[1] == 0:
        return
    lo, hi = torch.aminmax(coo_indices, dim=1)
    if bool((lo >= 0).all()) and int(hi[-2]) < num_rows:
        return
    names = ("batch", "row", "column")[-coo_indices.shape[0] :]
    for d, what in enumerate(names):
        size = num_rows if what == "row" else None
        row = coo_indices[d]
        bad = (row < 0) if size is None else (row < 0) | (row >= size)
        if bool(bad.any()):
            k = int(torch.nonzero(bad)[0, 0])
            limit = f"[0, {size})" if size is not None else "non-negative"
            raise ValueError(
                f"{fn}: coo_indices[{d}, {k}] = {int(row[k])} is not a valid {what} index "
                f"(must be {limit}); num_rows={num_rows} must exceed every row index"
            )


def convert_coo_to_csr_indices_values(
    coo_indices: torch.Tensor,
    num_rows: int,
    values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convert COO indices (and values) to CSR indices, for one matrix or a batch.

    Parameters
    ----------
    coo_indices : torch.Tensor
        int32 or int64 ``(2, nnz)`` (row, col) or ``(3, nnz)`` (batch, row, col), in any order.
    num_rows : int
        Rows per matrix.
    values : torch.Tensor, optional
        ``(nnz,)`` values. When given, entries with the same index are summed, as
        :meth:`torch.Tensor.coalesce` does.

    Returns
    -------
    crow_indices, col_indices, values_or_permutation : torch.Tensor
        ``crow`` ``(num_rows + 1,)`` (or ``(b, num_rows + 1)``), ``col`` ``(nnz',)`` (or
        ``(b, nnz')``), in the dtype of ``coo_indices``. With ``values``: the summed values
        in CSR order. Without: the permutation ``perm`` such that ``values[perm]`` is in CSR
        order; duplicates are then kept as separate CSR entries (CSR kernels sum them), so
        ``col`` and ``perm`` always have the same length.

    Raises
    ------
    TypeError
        ``coo_indices`` or ``values`` is not a dense tensor.
    ValueError
        Indices that are not ``(2, nnz)``/``(3, nnz)`` int32/int64, a negative index, a row
        index not below ``num_rows`` (or ``num_rows`` not a non-negative int), values of
        another length, or a batch whose items have different nnz (batched CSR needs equal
        nnz).

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import convert_coo_to_csr_indices_values
    >>> idx = torch.tensor([[1, 0, 1], [0, 1, 0]])
    >>> convert_coo_to_csr_indices_values(idx, 2, torch.tensor([1.0, 2.0, 3.0]))
    (tensor([0, 1, 2]), tensor([1, 0]), tensor([2., 4.]))
    """
    fn = "convert_coo_to_csr_indices_values"
    coo_indices = check_dense(fn, "coo_indices", coo_indices, dims=(2,))
    check_index_dtype(fn, "coo_indices", coo_indices)
    if coo_indices.shape[0] not in (2, 3):
        raise ValueError(
            f"{fn}: coo_indices must have shape (2, nnz) or (3, nnz), "
            f"got {tuple(coo_indices.shape)}"
        )
    if not isinstance(num_rows, int) or isinstance(num_rows, bool) or num_rows < 0:
        raise ValueError(f"{fn}: num_rows must be a non-negative int, got {num_rows!r}")
    _check_coo_rows(fn, coo_indices, num_rows)
    nnz = coo_indices.shape[1]
    if values is not None:
        values = check_dense(fn, "values", values, dims=(1,))
        if values.shape[0] != nnz:
            raise ValueError(
                f"{fn}: values must have {nnz} entries (one per index), got {values.shape[0]}"
            )
    structure = _CompressedCoo(coo_indices, num_rows, sum_duplicates=values is not None)
    out = (
        structure.perm.reshape(structure.col.shape) if values is None else structure.values(values)
    )
    return structure.crow, structure.col, out


def convert_coo_to_csr(sparse_coo_tensor: torch.Tensor) -> torch.Tensor:
    """Convert a COO tensor (2D or batched 3D) to CSR, summing duplicates, with an O(nnz) gradient.

    Parameters
    ----------
    sparse_coo_tensor : torch.Tensor
        Sparse COO ``(n, m)`` or ``(b, n, m)``, coalesced or not. A batch must have the same
        nnz in every item after duplicates are summed.

    Returns
    -------
    torch.Tensor
        Sparse CSR with int64 indices (COO indices are always int64 in torch). Gradients flow
        back to the COO values (torch's own ``to_sparse_csr`` densifies them).

    Raises
    ------
    TypeError
        The input is not a sparse COO tensor.
    ValueError
        The input is not 2D/3D, or batch items have different nnz.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import convert_coo_to_csr
    >>> A = torch.tensor([[0.0, 2.0], [3.0, 0.0]]).to_sparse()
    >>> convert_coo_to_csr(A).col_indices()
    tensor([1, 0])
    """
    A = check_sparse("convert_coo_to_csr", "sparse_coo_tensor", sparse_coo_tensor, layouts=(COO,))
    structure = _CompressedCoo(A._indices(), A.shape[-2], sum_duplicates=True)
    values = structure.values(values_of(A))
    raw = torch.sparse_csr_tensor(
        structure.crow, structure.col, values.detach(), A.shape, check_invariants=False
    )
    return attach_values(raw, values)


def stack_csr(tensors: Sequence[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """Stack 2D CSR tensors of one shape and nnz into a batched ``(b, n, m)`` CSR tensor.

    Like :func:`torch.stack` for CSR; gradients flow back to each input in O(nnz).

    Parameters
    ----------
    tensors : list or tuple of torch.Tensor
        2D sparse CSR tensors with the same shape, nnz, index dtype, dtype and device.
    dim : int
        Must be 0: a batched CSR tensor has its batch dimension first.

    Returns
    -------
    torch.Tensor
        Batched sparse CSR tensor keeping the index dtype.

    Raises
    ------
    TypeError
        ``tensors`` is not a list or tuple, or holds something other than CSR tensors.
    ValueError
        An empty sequence, ``dim != 0``, or tensors whose shapes, nnz or dtypes differ.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import stack_csr
    >>> a = torch.eye(2).to_sparse_csr()
    >>> stack_csr([a, 2 * a]).shape
    torch.Size([2, 2, 2])
    """
    fn = "stack_csr"
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{fn}: tensors must be a list or tuple, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{fn}: tensors must not be empty")
    if dim != 0:
        raise ValueError(f"{fn}: dim must be 0 (batched CSR has its batch first), got {dim}")
    mats = [
        check_sparse(fn, f"tensors[{i}]", t, layouts=(CSR,), dims=(2,))
        for i, t in enumerate(tensors)
    ]
    first = mats[0]
    for i, t in enumerate(mats[1:], start=1):
        for what, a, b in (
            ("shape", tuple(first.shape), tuple(t.shape)),
            ("nnz", first._nnz(), t._nnz()),
            ("index dtype", first.crow_indices().dtype, t.crow_indices().dtype),
            ("dtype", first.dtype, t.dtype),
            ("device", first.device, t.device),
        ):
            if a != b:
                raise ValueError(
                    f"{fn}: every tensor must have the {what} of tensors[0] ({a}), "
                    f"tensors[{i}] has {b}"
                    + ("; batched CSR needs equal nnz per item" if what == "nnz" else "")
                )
    crow = torch.stack([t.crow_indices() for t in mats])
    col = torch.stack([t.col_indices() for t in mats])
    values = torch.stack([values_of(t) for t in mats])
    shape = (len(mats), *first.shape)
    raw = torch.sparse_csr_tensor(crow, col, values.detach(), shape, check_invariants=False)
    return attach_values(raw, values)
