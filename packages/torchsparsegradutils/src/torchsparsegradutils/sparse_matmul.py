"""0.2's ``torchsparsegradutils.sparse_matmul``."""

from tsgu.core import sparse_mm

from ._deprecated import FunctionAlias, forwarding

__all__ = ["sparse_mm"]

__getattr__ = forwarding(
    __name__, {"SparseMatMul": (lambda: FunctionAlias(sparse_mm), "sparse_mm(A, B)")}
)
