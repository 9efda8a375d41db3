"""0.2's ``torchsparsegradutils.sparse_lstsq``: tsgu.core's ``sparse_generic_lstsq``.

Examples
--------
>>> import torch
>>> from torchsparsegradutils.sparse_lstsq import sparse_generic_lstsq
>>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
>>> b = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
>>> sparse_generic_lstsq(A.to_sparse(), b).round(decimals=4)
tensor([1.3333, 2.3333], dtype=torch.float64)
"""

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
