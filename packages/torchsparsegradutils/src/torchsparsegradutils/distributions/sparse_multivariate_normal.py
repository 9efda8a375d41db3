"""0.2's ``torchsparsegradutils.distributions.sparse_multivariate_normal``."""

from __future__ import annotations

from typing import Any

import torch

import tsgu.distributions
from tsgu.distributions import SparseMultivariateNormalNative

__all__ = ["SparseMultivariateNormal", "SparseMultivariateNormalNative"]


class SparseMultivariateNormal(tsgu.distributions.SparseMultivariateNormal):
    """tsgu's :class:`~tsgu.distributions.SparseMultivariateNormal` with 0.2's argument checks.

    0.2 checked nothing, whatever ``validate_args`` said, and its README builds a
    distribution from a factor that is not triangular. Here ``validate_args=None`` means
    no checks, as in 0.2; ``validate_args=True`` turns on tsgu's (lower triangular factor,
    positive diagonal, matching shapes). Everything else is tsgu's class.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.distributions import SparseMultivariateNormal
    >>> L = torch.tensor([[1.0, 0.0], [0.5, 1.0]]).to_sparse_csr()
    >>> dist = SparseMultivariateNormal(torch.zeros(2), scale_tril=L)
    >>> dist.rsample((3,)).shape
    torch.Size([3, 2])
    """

    def __init__(
        self,
        loc: torch.Tensor,
        diagonal: torch.Tensor | None = None,
        scale_tril: torch.Tensor | None = None,
        precision_tril: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        super().__init__(
            loc,
            diagonal,
            scale_tril,
            precision_tril,
            validate_args=bool(validate_args),
        )

    def expand(
        self, batch_shape: Any, _instance: Any = None
    ) -> tsgu.distributions.SparseMultivariateNormal:
        """See :meth:`tsgu.distributions.SparseMultivariateNormal.expand`."""
        # torch refuses to expand a subclass with its own __init__ unless it hands over
        # the new instance itself
        new = type(self).__new__(type(self)) if _instance is None else _instance
        return super().expand(batch_shape, _instance=new)
