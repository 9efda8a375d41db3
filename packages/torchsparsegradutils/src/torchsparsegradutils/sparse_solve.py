"""0.2's ``torchsparsegradutils.sparse_solve``."""

from tsgu.core import sparse_generic_solve, sparse_triangular_solve

from ._deprecated import FunctionAlias, forwarding

__all__ = ["sparse_generic_solve", "sparse_triangular_solve"]

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
