"""0.2's ``torchsparsegradutils.distributions``, served by tsgu.distributions."""

from .sparse_multivariate_normal import SparseMultivariateNormal, SparseMultivariateNormalNative

__all__ = ["SparseMultivariateNormal", "SparseMultivariateNormalNative"]
