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


def fold(
    x: torch.Tensor, factor_batch: int | None
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``x`` ``(..., n)`` as a right-hand side for the factor, and the map back to x's shape.

    ``factor_batch`` is the factor's batch size (None for a 2D factor). A batched factor of
    one item that is broadcast over a longer last batch dimension is used as a 2D one.
    """
    shape = x.shape
    n = shape[-1]
    if factor_batch is not None and x.dim() >= 2 and shape[-2] == factor_batch:
        b = factor_batch
        cols = x.reshape(-1, b, n).permute(1, 2, 0)  # (b, n, K)

        def restore_batched(y: torch.Tensor) -> torch.Tensor:
            return y.permute(2, 0, 1).reshape(shape)

        return cols, restore_batched
    cols = x.reshape(-1, n).mT  # (n, K)
    if factor_batch is not None:  # one item, broadcast: solve as (1, n, K)

        def restore_single(y: torch.Tensor) -> torch.Tensor:
            return y.squeeze(0).mT.reshape(shape)

        return cols.unsqueeze(0), restore_single

    def restore(y: torch.Tensor) -> torch.Tensor:
        return y.mT.reshape(shape)

    return cols, restore


def apply_folded(
    op: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, factor_batch: int | None
) -> torch.Tensor:
    """``op`` (a product or solve with the factor) applied to every vector of ``x``."""
    cols, restore = fold(x, factor_batch)
    return restore(op(cols))
