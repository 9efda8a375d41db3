"""0.2's ``torchsparsegradutils.distributions.constraints`` (empty there, a TODO).

Here it holds tsgu's constraints on sparse triangular factors.
"""

from tsgu.distributions.constraints import sparse_lower_cholesky, sparse_strictly_lower

__all__ = ["sparse_lower_cholesky", "sparse_strictly_lower"]
