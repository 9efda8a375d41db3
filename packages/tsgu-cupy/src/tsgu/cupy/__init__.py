"""tsgu.cupy: differentiable SciPy (CPU) and CuPy (CUDA) sparse solves for PyTorch.

``sparse_solve_c4t`` solves ``A X = B`` for a sparse COO/CSR A with the solvers of SciPy
(CPU tensors) or CuPy (CUDA tensors), with sparse gradients for A; its direct solve keeps
the LU factorization for the backward and for later solves with the same A. ``t2c_*`` and
``c2t_*`` convert between torch sparse tensors and SciPy/CuPy sparse matrices, sharing
memory where the formats allow. CuPy is optional (extras ``cuda12``, ``cuda13``): without
it everything on the CPU works.
"""

from ._backend import have_cupy
from .conversion import c2t_coo, c2t_csr, t2c_coo, t2c_csr
from .solve import sparse_solve_c4t

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "c2t_coo",
    "c2t_csr",
    "have_cupy",
    "sparse_solve_c4t",
    "t2c_coo",
    "t2c_csr",
]
