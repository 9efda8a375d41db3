"""0.2's ``torchsparsegradutils.sparse_lstsq``."""

from tsgu.core import sparse_generic_lstsq

from ._deprecated import FunctionAlias, forwarding

__all__ = ["sparse_generic_lstsq"]

__getattr__ = forwarding(
    __name__,
    {
        "SparseGenericLstsq": (
            lambda: FunctionAlias(sparse_generic_lstsq),
            "sparse_generic_lstsq(A, B, ...)",
        )
    },
)
