"""0.2's ``torchsparsegradutils.cupy.cupy_sparse_solve``: tsgu.cupy's ``sparse_solve_c4t``.

Examples
--------
>>> import torch
>>> from torchsparsegradutils.cupy.cupy_sparse_solve import sparse_solve_c4t
>>> A = torch.tensor([[4.0, 1.0], [0.0, 3.0]], dtype=torch.float64).to_sparse_csr()
>>> sparse_solve_c4t(A, torch.tensor([5.0, 3.0], dtype=torch.float64))
tensor([1., 1.], dtype=torch.float64)
"""

from tsgu.cupy import sparse_solve_c4t

from .._deprecated import FunctionAlias, forwarding

__all__ = ["sparse_solve_c4t"]

__getattr__ = forwarding(
    __name__,
    {
        "SparseSolveC4T": (
            lambda: FunctionAlias(sparse_solve_c4t),
            "sparse_solve_c4t(A, B, ...)",
        )
    },
)
