"""0.2.5's ``torchsparsegradutils.sparse_logsumexp``."""

from tsgu.core import sparse_bidir_logsumexp, sparse_logsumexp

__all__ = ["sparse_bidir_logsumexp", "sparse_logsumexp"]
