"""The halo exchange of a row-partitioned matrix: what each rank needs of the others' rows.

A rank's stored entries reference global columns; those it does not own are its *halo*.
:class:`HaloPlan` records, once, which rows each rank sends to which (only the entries
some product needs), and numbers a rank's columns so that the extended block
``[halo below | own rows | halo above]`` keeps the global order (a stored entry's position
within its row never changes). :func:`halo_gather` makes that block from the rank's own
rows (the forward exchange); its backward is :func:`halo_reduce`, which sends the halo
rows of a gradient back to their owners and sums them there (the reverse exchange), and the
other way round, so products built on them are differentiable to any order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ._comm import all_gather_ints, exchange
from .partition import RowPartition

__all__ = ["HaloPlan", "halo_gather", "halo_reduce"]


class HaloPlan:
    """Who sends which rows to whom, for one rank of a row-partitioned matrix.

    Built collectively (every rank of ``group`` at once) from the global columns this rank's
    stored entries reference.
    """

    def __init__(
        self, cols: torch.Tensor, partition: RowPartition, group: dist.ProcessGroup | None
    ) -> None:
        rank, world = dist.get_rank(group), partition.world_size
        start, stop = partition.offsets[rank], partition.offsets[rank + 1]
        self.partition, self.group, self.rank = partition, group, rank
        self.n_local = stop - start
        cols = cols.to(torch.int64)
        outside = (cols < start) | (cols >= stop)
        halo = torch.unique(cols[outside])  # sorted: grouped by owner, owners ascending
        owners = partition.owner(halo)
        self.n_below = int((halo < start).sum())
        self.n_ext = self.n_local + halo.numel()
        self.halo = halo
        # column of each stored entry in the extended block (monotone in the global column)
        where = torch.searchsorted(halo, cols) + (cols >= stop).to(torch.int64) * self.n_local
        self.ext_cols = torch.where(outside, where, cols - start + self.n_below)
        recv_counts = torch.bincount(owners, minlength=world).tolist()
        self.recv_counts = {p: c for p, c in enumerate(recv_counts) if c > 0}
        # every rank learns how many rows it sends to each: one small all_gather
        needs = all_gather_ints(recv_counts, group)  # needs[i, j]: rows i wants from j
        send_counts = {p: int(needs[p, rank]) for p in range(world) if int(needs[p, rank]) > 0}
        # each rank tells each owner which of its rows it needs (global indices)
        pieces = dict(
            zip(self.recv_counts, torch.split(halo, list(self.recv_counts.values())), strict=True)
        )
        asked = exchange(pieces, {p: (c,) for p, c in send_counts.items()}, halo, group)
        self.send_index = {p: (idx - start) for p, idx in asked.items()}

    @property
    def halo_rows_sent(self) -> int:
        """Rows this rank sends in one exchange (times ``k`` columns, times the value size,
        is the bytes it sends)."""
        return int(sum(idx.numel() for idx in self.send_index.values()))

    @property
    def halo_rows_received(self) -> int:
        """Rows this rank receives in one exchange."""
        return int(self.halo.numel())

    def gather(self, X: torch.Tensor) -> torch.Tensor:
        """``(n_ext, k)`` from this rank's ``(n_local, k)`` rows: one exchange."""
        k = X.shape[1]
        sends = {p: X.index_select(0, idx) for p, idx in self.send_index.items()}
        got = exchange(sends, {p: (c, k) for p, c in self.recv_counts.items()}, X, self.group)
        below = [got[p] for p in sorted(got) if p < self.rank]
        above = [got[p] for p in sorted(got) if p > self.rank]
        return torch.cat([*below, X, *above])

    def reduce(self, G: torch.Tensor) -> torch.Tensor:
        """``(n_local, k)`` from an ``(n_ext, k)`` block: halo rows summed at their owners."""
        k = G.shape[1]
        own = G[self.n_below : self.n_below + self.n_local]
        halo = torch.cat([G[: self.n_below], G[self.n_below + self.n_local :]])
        pieces = dict(
            zip(self.recv_counts, torch.split(halo, list(self.recv_counts.values())), strict=True)
        )
        shapes = {p: (idx.numel(), k) for p, idx in self.send_index.items()}
        got = exchange(pieces, shapes, G, self.group)
        out = own.clone()
        for p in sorted(got):  # a loop over neighbours, not rows
            out.index_add_(0, self.send_index[p], got[p])
        return out


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(X: torch.Tensor, plan: HaloPlan) -> torch.Tensor:
        return plan.gather(X)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.plan = inputs[1]

    @staticmethod
    def backward(ctx: Any, G: torch.Tensor) -> tuple[Any, ...]:
        return halo_reduce(G, ctx.plan), None


class _Reduce(torch.autograd.Function):
    @staticmethod
    def forward(G: torch.Tensor, plan: HaloPlan) -> torch.Tensor:
        return plan.reduce(G)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.plan = inputs[1]

    @staticmethod
    def backward(ctx: Any, X: torch.Tensor) -> tuple[Any, ...]:
        return halo_gather(X, ctx.plan), None


def halo_gather(X: torch.Tensor, plan: HaloPlan) -> torch.Tensor:
    """The forward exchange, differentiable (its backward is :func:`halo_reduce`)."""
    out: torch.Tensor = _Gather.apply(X, plan)
    return out


def halo_reduce(G: torch.Tensor, plan: HaloPlan) -> torch.Tensor:
    """The reverse exchange, differentiable (its backward is :func:`halo_gather`)."""
    out: torch.Tensor = _Reduce.apply(G, plan)
    return out
