"""The communication tsgu.distributed does: point-to-point exchanges with a few peers, and
collective checks that raise the same error on every rank (so no rank waits for one that
raised)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_ints",
    "any_rank",
    "comm_device",
    "exchange",
    "global_rank",
    "group_rank",
    "group_size",
]


def group_rank(group: dist.ProcessGroup | None) -> int:
    return dist.get_rank(group)


def group_size(group: dist.ProcessGroup | None) -> int:
    return dist.get_world_size(group)


def global_rank(group: dist.ProcessGroup | None, rank: int) -> int:
    """The global rank of ``rank`` in ``group`` (point-to-point calls take global ranks)."""
    return rank if group is None else dist.get_global_rank(group, rank)


def comm_device(group: dist.ProcessGroup | None) -> torch.device:
    """Where the group's collectives want small tensors: the current GPU for NCCL, else the CPU."""
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_ints(values: Sequence[int], group: dist.ProcessGroup | None) -> torch.Tensor:
    """Every rank's ``values`` (the same length on every rank) as a ``(world, len)`` tensor
    on the CPU."""
    mine = torch.tensor(list(values), dtype=torch.int64, device=comm_device(group))
    out = [torch.empty_like(mine) for _ in range(group_size(group))]
    dist.all_gather(out, mine, group=group)
    return torch.stack(out).cpu()


def any_rank(flag: bool, group: dist.ProcessGroup | None) -> bool:
    """True on every rank when ``flag`` is True on some rank: one small all_reduce."""
    t = torch.tensor([float(flag)], device=comm_device(group))
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return bool(t.item() > 0)


def exchange(
    send: Mapping[int, torch.Tensor],
    recv_shapes: Mapping[int, tuple[int, ...]],
    like: torch.Tensor,
    group: dist.ProcessGroup | None,
) -> dict[int, torch.Tensor]:
    """Send ``send[peer]`` to each peer and receive a ``recv_shapes[peer]`` block from each.

    Peers are ranks of ``group``. All receives are posted before the sends; only the peers
    named cross (a loop over neighbours, never over rows).
    """
    received = {
        peer: torch.empty(shape, dtype=like.dtype, device=like.device)
        for peer, shape in recv_shapes.items()
    }
    requests = [
        dist.irecv(buf, src=global_rank(group, peer), group=group) for peer, buf in received.items()
    ]
    requests += [
        dist.isend(t.contiguous(), dst=global_rank(group, peer), group=group)
        for peer, t in send.items()
    ]
    for request in requests:
        if request is not None:
            request.wait()
    return received
