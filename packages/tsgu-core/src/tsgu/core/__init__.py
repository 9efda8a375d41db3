"""tsgu.core: sparse tensors as first-class citizens of PyTorch autograd.

Products and solves whose gradients keep the sparsity of their inputs, so a model with a
sparse parameter trains in O(nnz) memory. torch is the only dependency.
"""

from .block_diag import sparse_block_diag, sparse_block_diag_split
from .constructors import sparse_coo_tensor, sparse_csc_tensor, sparse_csr_tensor
from .conversion import convert_coo_to_csr, convert_coo_to_csr_indices_values, stack_csr
from .eye import sparse_eye
from .logsumexp import sparse_bidir_logsumexp, sparse_logsumexp
from .matmul import sparse_mm
from .poisson import poisson_2d, poisson_3d
from .random_sparse import make_spd_sparse, rand_sparse, rand_sparse_tri
from .sampled import sparse_sampled_mm
from .softmax import sparse_log_softmax, sparse_softmax

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "convert_coo_to_csr",
    "convert_coo_to_csr_indices_values",
    "make_spd_sparse",
    "poisson_2d",
    "poisson_3d",
    "rand_sparse",
    "rand_sparse_tri",
    "sparse_bidir_logsumexp",
    "sparse_block_diag",
    "sparse_block_diag_split",
    "sparse_coo_tensor",
    "sparse_csc_tensor",
    "sparse_csr_tensor",
    "sparse_eye",
    "sparse_log_softmax",
    "sparse_logsumexp",
    "sparse_mm",
    "sparse_sampled_mm",
    "sparse_softmax",
    "stack_csr",
]
