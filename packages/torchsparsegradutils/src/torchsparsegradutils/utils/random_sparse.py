"""0.2's ``torchsparsegradutils.utils.random_sparse``."""

from tsgu.core import make_spd_sparse, rand_sparse, rand_sparse_tri

__all__ = ["make_spd_sparse", "rand_sparse", "rand_sparse_tri"]
