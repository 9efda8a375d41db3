"""0.2's ``torchsparsegradutils.jax``: JAX solves and conversions, served by tsgu.jax.

Needs the ``jax`` extra (``pip install 'torchsparsegradutils[jax]'``), as 0.2 did.
"""

from . import jax_bindings, jax_sparse_solve
from .jax_bindings import j2t, j2t_coo, j2t_csr, spmm_t4j, t2j, t2j_coo, t2j_csr
from .jax_sparse_solve import sparse_solve_j4t

# 0.2 set this flag when jax imported; here the import above has already succeeded.
have_jax = True

__all__ = [
    "have_jax",
    "j2t",
    "j2t_coo",
    "j2t_csr",
    "jax_bindings",
    "jax_sparse_solve",
    "sparse_solve_j4t",
    "spmm_t4j",
    "t2j",
    "t2j_coo",
    "t2j_csr",
]
