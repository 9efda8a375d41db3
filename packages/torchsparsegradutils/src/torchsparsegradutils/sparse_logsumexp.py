"""0.2.5's ``torchsparsegradutils.sparse_logsumexp``.

The functions are tsgu's. ``_bidir_2d`` and ``_bidir_batched`` (0.2.7's helpers, which its
tests import) return 0.2.7's triple: the two results as views into one padded tensor.
"""

from __future__ import annotations

import torch

from tsgu.core import sparse_bidir_logsumexp, sparse_logsumexp

__all__ = ["sparse_bidir_logsumexp", "sparse_logsumexp"]


def _bidir_2d(
    input: torch.Tensor, include_zeros: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(col_lse, row_lse, padded)`` of a 2D sparse matrix; the first two view the third.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]).to_sparse()
    >>> col, row, padded = _bidir_2d(x, include_zeros=False)
    >>> col, row, padded.shape
    (tensor([2.0000, 3.1269]), tensor([1., 2., 3.]), torch.Size([2, 3]))
    """
    padded = sparse_bidir_logsumexp(input, include_zeros=include_zeros, output_layout="padded")
    assert isinstance(padded, torch.Tensor)
    rows, cols = input.shape
    return padded[0, :cols], padded[1, :rows], padded


def _bidir_batched(
    input: torch.Tensor, include_zeros: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_bidir_2d` for a batch ``(b, r, c)``: ``padded`` is ``(2, b, max(r, c))``.

    Examples
    --------
    >>> x = torch.ones(2, 3, 2).to_sparse()
    >>> col, row, padded = _bidir_batched(x, include_zeros=True)
    >>> col.shape, row.shape, padded.shape
    (torch.Size([2, 2]), torch.Size([2, 3]), torch.Size([2, 2, 3]))
    """
    padded = sparse_bidir_logsumexp(input, include_zeros=include_zeros, output_layout="padded")
    assert isinstance(padded, torch.Tensor)
    _, rows, cols = input.shape
    return padded[0, :, :cols], padded[1, :, :rows], padded
