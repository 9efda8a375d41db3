"""0.2's ``torchsparsegradutils.sparse_matmul`` (and the block helpers it imported).

Examples
--------
>>> import torch
>>> from torchsparsegradutils.sparse_matmul import sparse_mm
>>> A = torch.tensor([[1.0, 0.0], [2.0, 3.0]]).to_sparse_csr()
>>> sparse_mm(A, torch.ones(2, 1))
tensor([[1.],
        [5.]])
"""

from tsgu.core import sparse_block_diag, sparse_block_diag_split, sparse_mm, stack_csr

from ._deprecated import FunctionAlias, forwarding

__all__ = ["sparse_block_diag", "sparse_block_diag_split", "sparse_mm", "stack_csr"]

__getattr__ = forwarding(
    __name__, {"SparseMatMul": (lambda: FunctionAlias(sparse_mm), "sparse_mm(A, B)")}
)
