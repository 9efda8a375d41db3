"""tsgu.factor: sparse factorizations you keep.

LU, Cholesky and LDLᵀ of sparse PyTorch matrices (SuiteSparse on the CPU): the symbolic
analysis is made once and reused for new values (``refactor``), solves are differentiable
in A's values (a sparse gradient) and in B, ``logdet`` is differentiable by selected
inversion, and a Cholesky factor samples Gaussian Markov random fields.
"""

from .factorization import Factorization, factorize
from .solve import clear_cache, solve

__version__ = "0.1.0"

__all__ = ["Factorization", "__version__", "clear_cache", "factorize", "solve"]
