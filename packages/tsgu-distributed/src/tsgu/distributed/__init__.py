"""tsgu.distributed: sparse matrices split by rows over torch.distributed, with sparse gradients.

A :class:`DistributedSparseMatrix` holds each rank's block of rows of a square sparse
matrix (a :class:`RowPartition` says which) and multiplies with a row-partitioned dense
block through one halo exchange; gradients go back through the reverse exchange to the
dense operand and, at each rank's own stored entries, to the matrix values.
"""

from .faults import RankFailedError, fail_together
from .krylov import bicgstab, cg, solve
from .matrix import DistributedSparseMatrix
from .partition import RowPartition

__version__ = "0.1.0"

__all__ = [
    "DistributedSparseMatrix",
    "RankFailedError",
    "RowPartition",
    "__version__",
    "bicgstab",
    "cg",
    "fail_together",
    "solve",
]
