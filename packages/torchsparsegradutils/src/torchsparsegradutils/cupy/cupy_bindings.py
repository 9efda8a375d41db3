"""0.2's ``torchsparsegradutils.cupy.cupy_bindings``: torch <-> SciPy/CuPy sparse matrices.

Examples
--------
>>> import torch
>>> from torchsparsegradutils.cupy.cupy_bindings import c2t_csr, t2c_csr
>>> A = torch.tensor([[1.0, 0.0], [2.0, 3.0]]).to_sparse_csr()
>>> M = t2c_csr(A)  # SciPy on the CPU, CuPy on a GPU
>>> M.nnz, bool(torch.equal(c2t_csr(M).to_dense(), A.to_dense()))
(3, True)
"""

from tsgu.cupy import c2t_coo, c2t_csr, t2c_coo, t2c_csr

__all__ = ["c2t_coo", "c2t_csr", "t2c_coo", "t2c_csr"]
