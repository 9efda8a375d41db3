"""0.2's ``torchsparsegradutils.distributions.sparse_multivariate_normal``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import tsgu.distributions
from tsgu.core import sparse_mm as spmm
from tsgu.core import sparse_triangular_solve as spts
from tsgu.distributions import SparseMultivariateNormalNative

__all__ = ["SparseMultivariateNormal", "SparseMultivariateNormalNative", "spmm", "spts"]


def _batch_sparse_mv(
    op: Callable[..., torch.Tensor], bmat: torch.Tensor, bvec: torch.Tensor, **kwargs: Any
) -> torch.Tensor:
    """``op(bmat, v)`` for each vector ``v`` of ``bvec``: 0.2's helper, kept for its tests.

    ``op`` is a matrix product or solve taking ``(A, B)`` with ``B`` of shape ``(n, k)``
    (``(b, n, k)`` for a batched ``A``): a ``(n, n)`` matrix goes with ``(n,)`` or
    ``(s, n)`` vectors, a ``(b, n, n)`` batch with ``(b, n)`` or ``(s, b, n)``; the
    vectors become the columns of one call.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_mm
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 1.0]]).to_sparse()
    >>> _batch_sparse_mv(sparse_mm, A, torch.tensor([[1.0, 1.0], [0.0, 1.0]]))
    tensor([[2., 2.],
            [0., 1.]])
    """
    if bmat.dim() == 2 and bvec.dim() == 1:
        return op(bmat, bvec.unsqueeze(-1), **kwargs).squeeze(-1)
    if bmat.dim() == 2 and bvec.dim() == 2:
        return op(bmat, bvec.T, **kwargs).T
    if bmat.dim() == 3 and bvec.dim() == 2:
        return op(bmat, bvec.unsqueeze(-1), **kwargs).squeeze(-1)
    if bmat.dim() == 3 and bvec.dim() == 3:
        return op(bmat, bvec.permute(1, 2, 0), **kwargs).permute(2, 0, 1)
    raise ValueError(
        "_batch_sparse_mv: bmat and bvec must be (n, n) with (n,) or (s, n), or (b, n, n) "
        f"with (b, n) or (s, b, n), got {tuple(bmat.shape)} and {tuple(bvec.shape)}"
    )


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
