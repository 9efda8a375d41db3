"""0.2's ``torchsparsegradutils.utils``: solvers, helpers and the generator submodules."""

from . import dist_stats_helpers, random_sparse, utils
from .bicgstab import BICGSTABSettings, bicgstab
from .dist_stats_helpers import cov_nagao_test, mean_hotelling_t2_test
from .linear_cg import CGInfo, LinearCGSettings, linear_cg
from .lsmr import lsmr
from .minres import MINRESSettings, minres
from .random_sparse import make_spd_sparse, rand_sparse, rand_sparse_tri
from .utils import (
    convert_coo_to_csr,
    convert_coo_to_csr_indices_values,
    sparse_block_diag,
    sparse_block_diag_split,
    sparse_eye,
    stack_csr,
)

__all__ = [
    "BICGSTABSettings",
    "CGInfo",
    "LinearCGSettings",
    "MINRESSettings",
    "bicgstab",
    "convert_coo_to_csr",
    "convert_coo_to_csr_indices_values",
    "cov_nagao_test",
    "dist_stats_helpers",
    "linear_cg",
    "lsmr",
    "make_spd_sparse",
    "mean_hotelling_t2_test",
    "minres",
    "rand_sparse",
    "rand_sparse_tri",
    "random_sparse",
    "sparse_block_diag",
    "sparse_block_diag_split",
    "sparse_eye",
    "stack_csr",
    "utils",
]
