"""Right-hand sides folded into the blocks a sparse kernel or solver takes, and back.

A sparse matrix ``(n, m)`` (or a batch ``(b, n, m)``) meets dense operands of many shapes: a
vector ``(n,)``, a block ``(n, k)``, a batch of vectors ``(b, n)``, a batch of blocks, or a
distribution's ``(*sample, *batch, n)`` vectors. Each is one permutation and one reshape away
from the block a kernel wants, ``(n, K)`` or ``(b, n, K)``: the batch axis first, the row
axis next, every other axis flattened, in order, into the K columns. One kernel call then
handles all of them, with no loop over columns, samples or batch items.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["fold_rhs"]


def fold_rhs(
    T: torch.Tensor, row_dim: int, batch_dim: int | None = None
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``T`` as a block ``(n, K)`` (or ``(b, n, K)`` with a ``batch_dim``), and the way back.

    ``row_dim`` is T's axis of the matrix's rows (n), ``batch_dim`` the axis that meets a
    batched matrix's batch; every other axis becomes columns, flattened in order (a vector
    becomes one column). The returned ``unfold(Y)`` takes a block of the same columns and
    any number of rows (a solve of a rectangular system changes it) to T's layout.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import fold_rhs
    >>> block, unfold = fold_rhs(torch.ones(5), row_dim=0)  # a vector: one column
    >>> block.shape
    torch.Size([5, 1])
    >>> block, unfold = fold_rhs(torch.ones(2, 5, 3), row_dim=1)  # one matrix, 2 x 3 columns
    >>> block.shape, unfold(torch.zeros(4, 6)).shape
    (torch.Size([5, 6]), torch.Size([2, 4, 3]))
    >>> block, unfold = fold_rhs(torch.ones(7, 2, 5), row_dim=-1, batch_dim=-2)
    >>> block.shape  # a batch of two matrices, 7 vectors each
    torch.Size([2, 5, 7])
    """
    ndim = T.dim()
    lead = [row_dim % ndim] if batch_dim is None else [batch_dim % ndim, row_dim % ndim]
    order = lead + [d for d in range(ndim) if d not in lead]
    moved = T.permute(order)
    columns = moved.shape[len(lead) :]
    block = moved.reshape(*moved.shape[: len(lead)], -1)
    inverse = sorted(range(ndim), key=order.__getitem__)

    def unfold(Y: torch.Tensor) -> torch.Tensor:
        return Y.reshape(*Y.shape[:-1], *columns).permute(inverse)

    return block, unfold
