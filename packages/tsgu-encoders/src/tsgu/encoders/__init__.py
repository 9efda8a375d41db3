"""tsgu.encoders: differentiable sparse neighbourhood matrices of nD multi-channel volumes.

:class:`PairwiseEncoder` turns a dense tensor of per-voxel neighbour values into a sparse
``V x V`` matrix over the flattened volume (COO or CSR), with gradients to the values in
O(nnz); it is interchangeable with torchsparsegradutils 0.2's encoder of that name.
"""

from .coo_indices import calc_pairwise_coo_indices_nd
from .pairwise import PairwiseEncoder
from .plot import plot_pairwise_pattern

__version__ = "0.1.0"

__all__ = [
    "PairwiseEncoder",
    "__version__",
    "calc_pairwise_coo_indices_nd",
    "plot_pairwise_pattern",
]
