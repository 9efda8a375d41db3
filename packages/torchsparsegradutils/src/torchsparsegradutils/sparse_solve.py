"""0.2's ``torchsparsegradutils.sparse_solve`` (and the helpers it imported).

Examples
--------
>>> import torch
>>> from torchsparsegradutils.sparse_solve import sparse_triangular_solve
>>> L = torch.tensor([[2.0, 0.0], [1.0, 1.0]]).to_sparse_csr()
>>> sparse_triangular_solve(L, torch.tensor([[2.0], [3.0]]), upper=False)
tensor([[1.],
        [2.]])
"""

from tsgu.core import (
    convert_coo_to_csr,
    sparse_block_diag,
    sparse_block_diag_split,
    sparse_generic_solve,
    sparse_triangular_solve,
    stack_csr,
)

from ._compat import linalg_solve_triangular_compat
from ._deprecated import FunctionAlias, forwarding

__all__ = [
    "convert_coo_to_csr",
    "linalg_solve_triangular_compat",
    "sparse_block_diag",
    "sparse_block_diag_split",
    "sparse_generic_solve",
    "sparse_triangular_solve",
    "stack_csr",
]

__getattr__ = forwarding(
    __name__,
    {
        "SparseTriangularSolve": (
            lambda: FunctionAlias(sparse_triangular_solve),
            "sparse_triangular_solve(A, B, ...)",
        ),
        "SparseGenericSolve": (
            lambda: FunctionAlias(sparse_generic_solve),
            "sparse_generic_solve(A, B, ...)",
        ),
    },
)
