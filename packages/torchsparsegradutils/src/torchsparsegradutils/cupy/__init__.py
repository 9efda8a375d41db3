"""0.2's ``torchsparsegradutils.cupy``: SciPy (CPU) and CuPy (CUDA) solves, served by tsgu.cupy."""

from tsgu.cupy import c2t_coo, c2t_csr, have_cupy, sparse_solve_c4t, t2c_coo, t2c_csr

from . import cupy_bindings, cupy_sparse_solve

__all__ = [
    "c2t_coo",
    "c2t_csr",
    "cupy_bindings",
    "cupy_sparse_solve",
    "have_cupy",
    "sparse_solve_c4t",
    "t2c_coo",
    "t2c_csr",
]
