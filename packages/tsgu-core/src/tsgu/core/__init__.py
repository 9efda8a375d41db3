"""tsgu.core: sparse tensors as first-class citizens of PyTorch autograd.

Products and solves whose gradients keep the sparsity of their inputs, so a model with a
sparse parameter trains in O(nnz) memory. torch is the only dependency.
:mod:`tsgu.core.extend` holds what an operation of your own needs to do the same (patterns,
differentiable values, sampled products, the one differentiable solve).
"""

from .add import sparse_add
from .block_diag import sparse_block_diag, sparse_block_diag_split
from .constructors import sparse_coo_tensor, sparse_csc_tensor, sparse_csr_tensor
from .conversion import convert_coo_to_csr, convert_coo_to_csr_indices_values, stack_csr
from .eye import sparse_eye
from .krylov import ConvergenceWarning, SolveInfo, bicgstab, cg, gmres, lsmr, minres
from .logsumexp import sparse_bidir_logsumexp, sparse_logsumexp
from .lstsq import sparse_generic_lstsq
from .matmul import sparse_mm
from .poisson import poisson_2d, poisson_3d
from .preconditioners import Preconditioner, block_jacobi, ic0, ilu0, jacobi
from .random_sparse import make_spd_sparse, rand_sparse, rand_sparse_tri
from .sampled import sparse_sampled_mm
from .softmax import sparse_log_softmax, sparse_softmax
from .solve import sparse_generic_solve
from .sparse_parameter import SparseParameter
from .transpose import sparse_transpose
from .triangular import sparse_triangular_solve

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "Preconditioner",
    "SolveInfo",
    "SparseParameter",
    "__version__",
    "bicgstab",
    "block_jacobi",
    "cg",
    "convert_coo_to_csr",
    "convert_coo_to_csr_indices_values",
    "gmres",
    "ic0",
    "ilu0",
    "jacobi",
    "lsmr",
    "make_spd_sparse",
    "minres",
    "poisson_2d",
    "poisson_3d",
    "rand_sparse",
    "rand_sparse_tri",
    "sparse_add",
    "sparse_bidir_logsumexp",
    "sparse_block_diag",
    "sparse_block_diag_split",
    "sparse_coo_tensor",
    "sparse_csc_tensor",
    "sparse_csr_tensor",
    "sparse_eye",
    "sparse_generic_lstsq",
    "sparse_generic_solve",
    "sparse_log_softmax",
    "sparse_logsumexp",
    "sparse_mm",
    "sparse_sampled_mm",
    "sparse_softmax",
    "sparse_transpose",
    "sparse_triangular_solve",
    "stack_csr",
]
