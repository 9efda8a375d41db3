"""Fold any number of sample and batch dimensions into the columns of one right-hand side.

A distribution's vectors have shape ``(*sample, *batch, n)``; its sparse factor is ``(n, n)``
or ``(b, n, n)``, and a batched factor belongs to the last batch dimension. Every vector
that meets the factor is folded into one dense right-hand side, ``(n, K)`` for a 2D factor
(all K = prod(sample, batch) vectors as columns) or ``(b, n, K)`` for a batched one (the
factor's batch first, every other dimension in the columns), so one sparse product or one
triangular solve handles all of them: no Python loop over samples or batch items.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from tsgu.core.extend import fold_rhs


def fold(
    x: torch.Tensor, factor_batch: int | None
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``x`` ``(..., n)`` as a right-hand side for the factor, and the map back to x's shape.

    ``factor_batch`` is the factor's batch size (None for a 2D factor). A batched factor of
    one item that is broadcast over a longer last batch dimension is used as a 2D one.
    """
    if factor_batch is not None and x.dim() >= 2 and x.shape[-2] == factor_batch:
        return fold_rhs(x, row_dim=-1, batch_dim=-2)  # (b, n, K)
    cols, unfold = fold_rhs(x, row_dim=-1)  # (n, K)
    if factor_batch is None:
        return cols, unfold
    # one item, broadcast: solve as (1, n, K)
    return cols.unsqueeze(0), lambda y: unfold(y.squeeze(0))


def apply_folded(
    op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, factor_batch: int | None
) -> torch.Tensor:
    """``op`` (a product or solve with the factor) applied to every vector of ``x``."""
    cols, restore = fold(x, factor_batch)
    return restore(op(cols))
