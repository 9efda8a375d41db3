"""torchsparsegradutils 0.3: the torchsparsegradutils 0.2 API, served by tsgu.

Every name is the tsgu object itself (``torchsparsegradutils.sparse_mm is
tsgu.core.sparse_mm``), or a thin adapter where 0.2's calling convention differs.
"""

# Imported through the 0.2 submodules, as 0.2 did: ``sparse_logsumexp`` is both a module and
# a function, and importing the module after the function would rebind the name.
from .indexed_matmul import gather_mm, segment_mm
from .sparse_logsumexp import sparse_bidir_logsumexp, sparse_logsumexp
from .sparse_lstsq import sparse_generic_lstsq
from .sparse_matmul import sparse_mm
from .sparse_solve import sparse_generic_solve, sparse_triangular_solve

__version__ = "0.3.0"

__all__ = [
    "gather_mm",
    "segment_mm",
    "sparse_bidir_logsumexp",
    "sparse_generic_lstsq",
    "sparse_generic_solve",
    "sparse_logsumexp",
    "sparse_mm",
    "sparse_triangular_solve",
]
