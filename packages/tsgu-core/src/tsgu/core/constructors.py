"""Differentiable sparse constructors: trainable values in O(nnz).

``torch.sparse_csr_tensor(crow, col, values, size)`` with ``values.requires_grad`` turns
the incoming sparse gradient into a dense ``n x m`` matrix in its backward (torch 2.13:
4.5 s and 1.6 GB at n = 20,000 with 400,000 nnz). These constructors take the same
arguments and hand the gradient's values straight back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch

from ._compiled.parts import SparseParts
from ._pattern import attach_values
from ._structure import check_index_inputs, mark_checked
from .validation import (
    COO,
    CSC,
    CSR,
    check_dense,
    check_index_dtype,
    check_same_device,
    check_tensor,
)

__all__ = ["sparse_coo_tensor", "sparse_csc_tensor", "sparse_csr_tensor"]


def _check_size(fn: str, size: object) -> tuple[int, ...]:
    if isinstance(size, torch.Size):
        size = tuple(size)
    if (
        not isinstance(size, Sequence)
        or len(size) not in (2, 3)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size)
    ):
        raise ValueError(
            f"{fn}: size must be 2 or 3 non-negative ints ((n, m) or (b, n, m)), got {size!r}"
        )
    return tuple(size)


def _check_values(fn: str, values: object, dims: Sequence[int]) -> torch.Tensor:
    values = check_dense(fn, "values", values, dims=dims)
    if not values.is_floating_point():
        raise ValueError(f"{fn}: values must have a floating-point dtype, got {values.dtype}")
    return values


def sparse_coo_tensor(
    indices: torch.Tensor,
    values: torch.Tensor,
    size: Sequence[int],
    *,
    is_coalesced: bool | None = None,
    check_invariants: bool | None = None,
) -> torch.Tensor:
    """Build a sparse COO tensor whose gradient flows to ``values`` in O(nnz).

    Parameters
    ----------
    indices : torch.Tensor
        int32 or int64 ``(len(size), nnz)``: row and column (and, first, batch) indices.
    values : torch.Tensor
        Floating-point ``(nnz,)``.
    size : sequence of int
        ``(n, m)`` or ``(b, n, m)``.
    is_coalesced : bool, optional
        As in :func:`torch.sparse_coo_tensor`: promise that the indices are sorted and
        unique (fast kernels need no sort then).
    check_invariants : bool, optional
        ``None`` (default): check the indices (in range; sorted and unique when
        ``is_coalesced=True``), in O(nnz), once while the same unchanged ``indices`` tensor is
        passed again. ``True``: also torch's own checks. ``False``: trust them unchecked,
        here and in every tsgu operation on the result (for indices known to be valid: a
        malformed tensor can then crash the process).

    Returns
    -------
    torch.Tensor
        Sparse COO tensor. The gradient of ``values`` is the incoming gradient's values
        when it has this tensor's pattern (every tsgu operation's gradient has), else the
        incoming gradient gathered at the pattern; never dense.

    Raises
    ------
    TypeError
        ``indices`` or ``values`` is not a dense tensor.
    ValueError
        A size that is not 2 or 3 non-negative ints; indices of the wrong dtype or shape,
        or out of range; values of the wrong length or dtype; indices and values on
        different devices.

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> values = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> A = tc.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), values, (2, 2))
    >>> tc.sparse_mm(A, torch.ones(2, 1)).sum().backward()
    >>> values.grad
    tensor([1., 1.])
    """
    fn = "sparse_coo_tensor"
    shape = _check_size(fn, size)
    indices = check_dense(fn, "indices", check_tensor(fn, "indices", indices), dims=(2,))
    check_index_dtype(fn, "indices", indices)
    values = _check_values(fn, values, dims=(1,))
    if indices.shape[0] != len(shape):
        raise ValueError(
            f"{fn}: indices must have {len(shape)} rows for a size of {len(shape)} dimensions, "
            f"got shape {tuple(indices.shape)}"
        )
    if indices.shape[1] != values.shape[0]:
        raise ValueError(
            f"{fn}: indices and values must have the same nnz, "
            f"got {indices.shape[1]} and {values.shape[0]}"
        )
    check_same_device(fn, ("indices", "values"), indices, values)
    if torch.compiler.is_compiling():
        return _parts(COO, (indices,), values, shape)
    if check_invariants is not False:
        check_index_inputs(fn, COO, (indices,), shape, bool(is_coalesced))
    raw = torch.sparse_coo_tensor(
        indices,
        values.detach(),
        shape,
        is_coalesced=is_coalesced,
        check_invariants=bool(check_invariants),
    )
    return _checked(attach_values(raw, values), (indices,))


def _parts(
    layout: torch.layout,
    indices: tuple[torch.Tensor, ...],
    values: torch.Tensor,
    shape: tuple[int, ...],
) -> torch.Tensor:
    """In a compiled region (Dynamo refuses sparse tensors): the matrix as its parts, which
    every tsgu operation accepts; its indices are checked when an operation first runs."""
    return cast(torch.Tensor, SparseParts(layout, indices, values, shape))


def _checked(A: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A, recorded as checked: tsgu's operations on it skip the structure check."""
    mark_checked(A, inputs)
    return A


def _compressed(
    fn: str,
    names: tuple[str, str],
    compressed: object,
    plain: object,
    values: object,
    size: object,
    check_invariants: bool | None,
) -> torch.Tensor:
    shape = _check_size(fn, size)
    batched = len(shape) == 3
    dims = (2,) if batched else (1,)
    compressed = check_dense(fn, names[0], compressed, dims=dims)
    plain = check_dense(fn, names[1], plain, dims=dims)
    values = _check_values(fn, values, dims=dims)
    check_index_dtype(fn, names[0], compressed)
    if plain.dtype != compressed.dtype:
        raise ValueError(
            f"{fn}: {names[0]} and {names[1]} must have the same dtype, "
            f"got {compressed.dtype} and {plain.dtype}"
        )
    n_compressed = shape[-2] if fn == "sparse_csr_tensor" else shape[-1]
    if compressed.shape[-1] != n_compressed + 1:
        raise ValueError(
            f"{fn}: {names[0]} must have {n_compressed + 1} entries per matrix for size "
            f"{shape}, got shape {tuple(compressed.shape)}"
        )
    if plain.shape != values.shape:
        raise ValueError(
            f"{fn}: {names[1]} and values must have the same shape, "
            f"got {tuple(plain.shape)} and {tuple(values.shape)}"
        )
    if batched and not (compressed.shape[0] == plain.shape[0] == shape[0]):
        raise ValueError(
            f"{fn}: batched {names[0]}, {names[1]} and values must have {shape[0]} rows "
            f"(the batch size), got {compressed.shape[0]} and {plain.shape[0]}"
        )
    check_same_device(fn, (names[0], "values"), compressed, values)
    check_same_device(fn, (names[1], "values"), plain, values)
    csr = fn == "sparse_csr_tensor"
    if torch.compiler.is_compiling():
        return _parts(CSR if csr else CSC, (compressed, plain), values, shape)
    if check_invariants is not False:
        check_index_inputs(fn, CSR if csr else CSC, (compressed, plain), shape)
    build = torch.sparse_csr_tensor if csr else torch.sparse_csc_tensor
    raw = build(compressed, plain, values.detach(), shape, check_invariants=bool(check_invariants))
    return _checked(attach_values(raw, values), (compressed, plain))


def sparse_csr_tensor(
    crow_indices: torch.Tensor,
    col_indices: torch.Tensor,
    values: torch.Tensor,
    size: Sequence[int],
    *,
    check_invariants: bool | None = None,
) -> torch.Tensor:
    """Build a sparse CSR tensor whose gradient flows to ``values`` in O(nnz).

    Use this instead of :func:`torch.sparse_csr_tensor` whenever ``values`` requires grad:
    torch's own backward densifies the gradient (O(n·m) time and memory).

    Parameters
    ----------
    crow_indices : torch.Tensor
        int32 or int64 ``(n + 1,)``, or ``(b, n + 1)`` for a batch.
    col_indices : torch.Tensor
        Same dtype as ``crow_indices``; ``(nnz,)`` or ``(b, nnz)``.
    values : torch.Tensor
        Floating-point ``(nnz,)`` or ``(b, nnz)``.
    size : sequence of int
        ``(n, m)`` or ``(b, n, m)``.
    check_invariants : bool, optional
        ``None`` (default): check the indices (row pointers from 0 to nnz, never
        decreasing; column indices in range) in O(nnz), once while the same unchanged index
        tensors are passed again. ``True``: also torch's own checks (which also require
        sorted, unique columns in each row). ``False``: trust them unchecked, here and in
        every tsgu operation on the result (a malformed tensor can then crash the process).

    Returns
    -------
    torch.Tensor
        Sparse CSR tensor keeping the index dtype. The gradient of ``values`` is O(nnz).

    Raises
    ------
    TypeError
        An argument is not a dense tensor.
    ValueError
        A bad size; index dtypes that are not int32/int64 or differ; lengths or batch sizes
        that do not match; devices that differ; row pointers that do not start at 0, end at
        nnz or that decrease; a column index out of range.

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> crow = torch.tensor([0, 1, 2], dtype=torch.int32)
    >>> col = torch.tensor([1, 0], dtype=torch.int32)
    >>> values = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> A = tc.sparse_csr_tensor(crow, col, values, (2, 2))
    >>> A.crow_indices().dtype
    torch.int32
    >>> tc.sparse_mm(A, torch.tensor([[1.0], [3.0]])).sum().backward()
    >>> values.grad
    tensor([3., 1.])
    """
    return _compressed(
        "sparse_csr_tensor",
        ("crow_indices", "col_indices"),
        crow_indices,
        col_indices,
        values,
        size,
        check_invariants,
    )


def sparse_csc_tensor(
    ccol_indices: torch.Tensor,
    row_indices: torch.Tensor,
    values: torch.Tensor,
    size: Sequence[int],
    *,
    check_invariants: bool | None = None,
) -> torch.Tensor:
    """Build a sparse CSC tensor whose gradient flows to ``values`` in O(nnz).

    The column-major sibling of :func:`sparse_csr_tensor`: ``ccol_indices`` ``(m + 1,)``
    or ``(b, m + 1)``, ``row_indices`` and ``values`` ``(nnz,)`` or ``(b, nnz)``; the
    indices are checked as there.

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> values = torch.tensor([5.0, 7.0], requires_grad=True)
    >>> A = tc.sparse_csc_tensor(torch.tensor([0, 1, 2]), torch.tensor([1, 0]), values, (2, 2))
    >>> A.to_dense()
    tensor([[0., 7.],
            [5., 0.]], grad_fn=<...>)
    """
    return _compressed(
        "sparse_csc_tensor",
        ("ccol_indices", "row_indices"),
        ccol_indices,
        row_indices,
        values,
        size,
        check_invariants,
    )
