"""tsgu.jax: JAX's sparse solvers for PyTorch sparse tensors, with sparse autograd.

``sparse_solve_j4t`` solves ``A X = B`` for a torch sparse A with a jit-compiled
``jax.scipy.sparse.linalg`` solver (or your own), and gives torch gradients for A (sparse,
with A's pattern) and B. ``t2j``/``j2t`` and their CSR/COO siblings move tensors between
torch and JAX through DLPack, sharing memory where they can; ``spmm_t4j`` turns a torch
sparse matrix into a JAX matvec. JAX's 64-bit mode is the caller's to enable.
"""

from ._operator import SparseMatvec
from .conversion import j2t, j2t_coo, j2t_csr, t2j, t2j_coo, t2j_csr
from .solve import sparse_solve_j4t
from .spmm import spmm_t4j

__version__ = "0.1.0"

__all__ = [
    "SparseMatvec",
    "__version__",
    "j2t",
    "j2t_coo",
    "j2t_csr",
    "sparse_solve_j4t",
    "spmm_t4j",
    "t2j",
    "t2j_coo",
    "t2j_csr",
]
