"""0.2's ``torchsparsegradutils.cupy.cupy_bindings``."""

from tsgu.cupy import c2t_coo, c2t_csr, t2c_coo, t2c_csr

__all__ = ["c2t_coo", "c2t_csr", "t2c_coo", "t2c_csr"]
