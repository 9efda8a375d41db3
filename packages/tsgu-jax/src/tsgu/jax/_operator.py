"""A torch sparse matrix as a JAX matvec: ``SparseMatvec``, a pytree of three arrays.

The matvec is a gather of ``x`` at the column indices, a multiply by the values and a
segment sum over the row indices: one fused XLA loop, O(nnz). Being a pytree (its arrays
are leaves, its shape static), it passes through ``jax.jit`` as an argument, so a solve
compiled once serves every matrix of the same size and nnz, and it vmaps and
differentiates like any JAX function. On the CPU it is several times faster than a BCOO
product, which goes through JAX's general sparse dot_general.
"""

from __future__ import annotations

from typing import Any

import jax
import torch

from tsgu.core.validation import COO, CSR, check_sparse

from ._validate import index_dtype_for
from ._x64 import require_x64_for
from .conversion import _to_jax

__all__ = ["SparseMatvec", "operator_of"]


@jax.tree_util.register_pytree_node_class
class SparseMatvec:
    """``x -> A @ x`` for a sparse ``(n, m)`` matrix held as row/column indices and values.

    Returned by :func:`tsgu.jax.spmm_t4j`, and what :func:`tsgu.jax.sparse_solve_j4t` hands
    a user's solver. Call it (or use ``@``) on ``(m,)`` or ``(m, k)`` arrays; ``.T`` is
    the transpose's matvec (no data moves); it is a JAX pytree, so it can be an argument of
    a jitted function, and it is linear in ``x`` (``jax.linear_transpose`` works on it).

    Attributes
    ----------
    rows, cols : jax.Array
        int32 (or int64) indices of the stored entries.
    values : jax.Array
        Their values (repeated positions add up).
    shape : tuple of int
        ``(n, m)``.
    rows_sorted : bool
        Whether ``rows`` is non-decreasing (a hint to the segment sum).
    """

    def __init__(
        self,
        rows: jax.Array,
        cols: jax.Array,
        values: jax.Array,
        shape: tuple[int, int],
        rows_sorted: bool = False,
    ) -> None:
        self.rows, self.cols, self.values = rows, cols, values
        self.shape = (int(shape[0]), int(shape[1]))
        self.rows_sorted = bool(rows_sorted)

    @property
    def dtype(self) -> Any:
        """The dtype of the values (and of the products)."""
        return self.values.dtype

    @property
    def ndim(self) -> int:
        """2: the operator is a matrix."""
        return 2

    @property
    def T(self) -> SparseMatvec:
        """The matvec of the transpose: rows and columns swapped, nothing copied."""
        return SparseMatvec(self.cols, self.rows, self.values, (self.shape[1], self.shape[0]))

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim not in (1, 2) or x.shape[0] != self.shape[1]:
            raise ValueError(
                f"SparseMatvec: x must have shape ({self.shape[1]},) or ({self.shape[1]}, k) "
                f"for a matrix of shape {self.shape}, got {tuple(x.shape)}"
            )
        values = self.values if x.ndim == 1 else self.values[:, None]
        return jax.ops.segment_sum(
            x[self.cols] * values,
            self.rows,
            num_segments=self.shape[0],
            indices_are_sorted=self.rows_sorted,
        )

    def __matmul__(self, x: jax.Array) -> jax.Array:
        return self(x)

    def __repr__(self) -> str:
        return f"SparseMatvec(shape={self.shape}, nnz={self.values.shape[0]}, dtype={self.dtype})"

    def tree_flatten(self) -> tuple[tuple[jax.Array, ...], tuple[Any, ...]]:
        return (self.rows, self.cols, self.values), (self.shape, self.rows_sorted)

    @classmethod
    def tree_unflatten(cls, aux: tuple[Any, ...], children: tuple[Any, ...]) -> SparseMatvec:
        return cls(*children, *aux)


def operator_of(fn: str, name: str, A: object) -> SparseMatvec:
    """The JAX matvec of a 2D torch sparse COO/CSR matrix; its values are shared (DLPack).

    Indices become int32 when they fit (a copy for int64 input; JAX's int32 gathers and
    segment sums are faster, and int32 needs no 64-bit mode). CSR rows are expanded from
    the row pointers here, once, so that no solver iteration repeats it.
    """
    A = check_sparse(fn, name, A, layouts=(COO, CSR), dims=(2,))
    require_x64_for(fn, name, A.dtype)
    A = A.detach()
    n, m = A.shape
    if A.layout == COO:
        indices, values = A._indices(), A._values()
        dtype = index_dtype_for(fn, name, n, m, values.shape[0])
        rows, cols = indices[0].to(dtype), indices[1].to(dtype)
        rows_sorted = A.is_coalesced()
    else:
        crow, col, values = A.crow_indices(), A.col_indices(), A.values()
        nnz = values.shape[0]
        dtype = index_dtype_for(fn, name, n, m, nnz)
        ids = torch.arange(n, dtype=dtype, device=A.device)
        rows = torch.repeat_interleave(ids, crow.diff(), output_size=nnz)
        cols = col.to(dtype)
        rows_sorted = True
    return SparseMatvec(
        _to_jax(fn, name, rows.contiguous()),
        _to_jax(fn, name, cols.contiguous()),
        _to_jax(fn, f"{name}'s values", values),
        (n, m),
        rows_sorted,
    )
