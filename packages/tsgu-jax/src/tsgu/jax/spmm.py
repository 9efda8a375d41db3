"""``spmm_t4j``: a torch sparse matrix as a JAX matvec."""

from __future__ import annotations

import torch

from ._operator import SparseMatvec, operator_of

__all__ = ["spmm_t4j"]


def spmm_t4j(A: torch.Tensor) -> SparseMatvec:
    r"""A JAX function ``x -> A @ x`` for a torch sparse matrix ``A``.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, m)``, float32 (or float64 with JAX's 64-bit mode on).

    Returns
    -------
    SparseMatvec
        A callable on JAX arrays ``(m,)`` or ``(m, k)`` returning ``(n,)`` or ``(n, k)``.
        It is pure JAX (jit, vmap, grad and ``jax.linear_transpose`` all apply), a pytree
        (it can be passed into a jitted function as an argument), and ``.T`` is the matvec
        of ``Aᵀ``. Use it as the operator or the preconditioner ``M`` of
        ``jax.scipy.sparse.linalg`` solvers.

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO/CSR tensor.
    ValueError
        ``A`` is not 2D or is hybrid; float64 while JAX's 64-bit mode is off (the message
        says how to enable it).

    Notes
    -----
    :math:`(A x)_i = \sum_{(i, j) \in \mathrm{nz}(A)} a_{ij} x_j`: a gather at the column
    indices and a segment sum over the row indices, O(nnz). A's values are shared with the
    torch tensor through DLPack (JAX assumes they do not change: do not modify A in place
    while the matvec is in use); the indices are int32 copies when they fit.
    It is pure JAX, so JAX's transformations see through it; float64 without 64-bit mode
    raises ValueError, as every dtype problem in tsgu does.

    Examples
    --------
    >>> import torch
    >>> import jax.numpy as jnp
    >>> from tsgu.jax import spmm_t4j
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
    >>> matvec = spmm_t4j(A)
    >>> matvec(jnp.array([1.0, 1.0]))
    Array([2., 4.], dtype=float32)
    >>> matvec.T(jnp.array([1.0, 1.0]))
    Array([3., 3.], dtype=float32)
    """
    return operator_of("spmm_t4j", "A", A)
