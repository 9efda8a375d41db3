"""tsgu.distributions: multivariate normals with sparse covariance or precision factors.

:class:`SparseMultivariateNormal` is a :class:`torch.distributions.Distribution` whose
covariance or precision is given by a sparse lower triangular factor (L Lᵀ or L D Lᵀ, COO
or CSR, batched or not): rsample, log_prob, entropy and the covariance forms' variance in
O(nnz), with sparse gradients for the factor. :class:`SparseMultivariateNormalNative` is
torchsparsegradutils 0.2's native variant. :mod:`tsgu.distributions.stats` holds the
Hotelling T² and Nagao tests, and :mod:`tsgu.distributions.constraints` the sparse factor
constraints.
"""

from ._native import SparseMultivariateNormalNative
from ._sparse_normal import SparseMultivariateNormal

__version__ = "0.1.0"

__all__ = ["SparseMultivariateNormal", "SparseMultivariateNormalNative", "__version__"]
