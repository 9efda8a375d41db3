"""0.2's ``torchsparsegradutils.distributions``, served by tsgu.distributions."""

from . import constraints, sparse_multivariate_normal
from .sparse_multivariate_normal import SparseMultivariateNormal, SparseMultivariateNormalNative

__all__ = [
    "SparseMultivariateNormal",
    "SparseMultivariateNormalNative",
    "constraints",
    "sparse_multivariate_normal",
]
