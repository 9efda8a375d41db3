"""0.2's ``torchsparsegradutils.utils.utils``.

The public functions are tsgu's. 0.2's index helpers ``_sort_coo_indices``,
``_compress_row_indices`` and ``_demcompress_crow_indices`` (its spelling) are kept because
code written against 0.2, its own tests included, imports them.
"""

from __future__ import annotations

import torch

from tsgu.core import (
    convert_coo_to_csr,
    convert_coo_to_csr_indices_values,
    sparse_block_diag,
    sparse_block_diag_split,
    sparse_eye,
    stack_csr,
)

__all__ = [
    "convert_coo_to_csr",
    "convert_coo_to_csr_indices_values",
    "sparse_block_diag",
    "sparse_block_diag_split",
    "sparse_eye",
    "stack_csr",
]


def _sort_coo_indices(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """COO indices ``(d, nnz)`` in lexicographic order, and the permutation that sorts them.

    ``indices[:, permutation]`` is the sorted array; positions must be unique (as after
    ``coalesce``), which is what makes the order total.

    Examples
    --------
    >>> import torch
    >>> _sort_coo_indices(torch.tensor([[1, 0, 1], [2, 1, 0]]))
    (tensor([[0, 1, 1],
            [1, 0, 2]]), tensor([1, 2, 0]))
    """
    # One stable sort per key, least significant first: a lexicographic sort in
    # d passes (d is 2 or 3), without forming a linear index that could overflow.
    permutation = torch.arange(indices.shape[1], device=indices.device)
    for row in reversed(range(indices.shape[0])):
        order = torch.argsort(indices[row, permutation], stable=True)
        permutation = permutation[order]
    return indices[:, permutation].contiguous(), permutation


def _compress_row_indices(row_indices: torch.Tensor, num_rows: int) -> torch.Tensor:
    """CSR row pointers ``(num_rows + 1,)`` of sorted COO row indices.

    Examples
    --------
    >>> import torch
    >>> _compress_row_indices(torch.tensor([0, 0, 2, 2]), 3)
    tensor([0, 2, 2, 4])
    """
    counts = torch.bincount(row_indices, minlength=num_rows)
    crow = torch.zeros(num_rows + 1, dtype=row_indices.dtype, device=row_indices.device)
    crow[1:] = torch.cumsum(counts, 0)
    return crow


def _demcompress_crow_indices(crow_indices: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The row index of every stored entry, from CSR row pointers.

    Examples
    --------
    >>> import torch
    >>> _demcompress_crow_indices(torch.tensor([0, 2, 2, 4]), 3)
    tensor([0, 0, 2, 2])
    """
    rows = torch.arange(num_rows, dtype=crow_indices.dtype, device=crow_indices.device)
    return torch.repeat_interleave(rows, crow_indices[1:] - crow_indices[:-1])
