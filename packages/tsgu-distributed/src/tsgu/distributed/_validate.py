"""Input checks of tsgu.distributed, built on tsgu.core.validation.

Checks of one rank's own inputs run before any communication. What only the group as a
whole can tell (ranks that disagree on the matrix size, the partition or the dtype) is
found by one small all_gather, and then every rank raises the same error: no rank is left
waiting in a collective for one that raised.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from tsgu.core.validation import check_dense, check_float_dtype, check_sparse

from ._comm import all_gather_ints
from .partition import RowPartition

__all__ = ["agree", "check_group", "check_local_rows", "check_operand", "check_partition"]

_DTYPES = {torch.float32: 0, torch.float64: 1}


def check_group(fn: str, group: object) -> dist.ProcessGroup | None:
    """torch.distributed must be initialized; ``group`` None (the default) or a group."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            f"{fn}: group must be an initialized process group, got none; call "
            "torch.distributed.init_process_group('gloo') (or run under torchrun) first"
        )
    if group is not None and not isinstance(group, dist.ProcessGroup):
        raise TypeError(
            f"{fn}: group must be a torch.distributed.ProcessGroup or None, got "
            f"{type(group).__name__}; pass one from torch.distributed.new_group"
        )
    return group


def check_local_rows(fn: str, rows: object, name: str = "rows") -> torch.Tensor:
    """A 2D sparse COO or CSR float32/float64 tensor with a valid structure."""
    t = check_sparse(fn, name, rows, dims=(2,))
    check_float_dtype(fn, name, t)
    return t


def check_partition(
    fn: str, partition: object, rows: torch.Tensor, rank: int, world: int
) -> RowPartition:
    """``partition`` a RowPartition over ``world`` ranks giving this rank ``rows``' count."""
    if not isinstance(partition, RowPartition):
        raise TypeError(
            f"{fn}: partition must be a RowPartition or None, got {type(partition).__name__}; "
            "build one with RowPartition.from_sizes(sizes)"
        )
    if partition.world_size != world:
        raise ValueError(
            f"{fn}: partition must have one block per rank ({world}), got "
            f"{partition.world_size} blocks; build it for this group's size"
        )
    if partition.n != rows.shape[1] or partition.sizes[rank] != rows.shape[0]:
        raise ValueError(
            f"{fn}: rows must have shape ({partition.sizes[rank]}, {partition.n}) on rank "
            f"{rank} (its block of {partition}), got {tuple(rows.shape)}; pass this rank's "
            "rows with global column indices"
        )
    return partition


def agree(
    fn: str, rows: torch.Tensor, partition: RowPartition | None, group: dist.ProcessGroup | None
) -> list[int]:
    """Every rank's row count, after checking (on every rank alike) that the ranks agree on
    the number of columns, the dtype and the partition, and that the rows add up to n."""
    world = dist.get_world_size(group)
    offsets = partition.offsets if partition is not None else [-1] * (world + 1)
    mine = [rows.shape[0], rows.shape[1], _DTYPES[rows.dtype], *offsets]
    table = all_gather_ints(mine, group)
    n_local, n_cols, dtypes = table[:, 0].tolist(), table[:, 1].tolist(), table[:, 2].tolist()
    if len(set(n_cols)) != 1:
        raise ValueError(
            f"{fn}: rows must have the same number of columns on every rank, got {n_cols} by "
            "rank; pass each rank's rows of the one global matrix"
        )
    if len(set(dtypes)) != 1:
        names = [str(list(_DTYPES)[d]) for d in dtypes]
        raise ValueError(
            f"{fn}: rows must have the same dtype on every rank, got {names} by rank; cast "
            "them all with .to(torch.float64)"
        )
    if len({tuple(r) for r in table[:, 3:].tolist()}) != 1:
        raise ValueError(
            f"{fn}: partition must be the same on every rank, got {table[:, 3:].tolist()} by "
            "rank (-1: none given); pass one partition everywhere, or none"
        )
    if sum(n_local) != n_cols[0]:
        raise ValueError(
            f"{fn}: rows must add up to a square matrix, got {n_local} rows by rank for "
            f"{n_cols[0]} columns; give each rank its block of the global rows"
        )
    return n_local


def check_operand(fn: str, name: str, X: object, n_local: int, dtype: torch.dtype) -> torch.Tensor:
    """This rank's rows of a dense operand: ``(n_local,)`` or ``(n_local, k)``, A's dtype."""
    X = check_dense(fn, name, X, dims=(1, 2))
    if X.shape[0] != n_local:
        raise ValueError(
            f"{fn}: {name} must have this rank's {n_local} rows, got shape {tuple(X.shape)}; "
            "pass the rows of the partition's block that this rank owns"
        )
    if X.dtype != dtype:
        raise ValueError(
            f"{fn}: A and {name} must have the same dtype, got {dtype} and {X.dtype}; "
            f"cast one with .to({dtype})"
        )
    return X
