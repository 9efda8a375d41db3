"""0.2's ``torchsparsegradutils.cupy.cupy_sparse_solve``."""

from tsgu.cupy import sparse_solve_c4t

__all__ = ["sparse_solve_c4t"]
