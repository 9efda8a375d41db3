"""RowPartition: which rows of a global matrix each rank of a process group owns."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

__all__ = ["RowPartition"]


class RowPartition:
    """Contiguous blocks of rows: rank ``r`` owns rows ``offsets[r]`` to ``offsets[r + 1] - 1``.

    Parameters
    ----------
    offsets : sequence of int
        Non-decreasing, starting at 0 and ending at the number of rows ``n``; one more entry
        than there are ranks. A rank may own no rows.

    Notes
    -----
    A partition of rows in any other order (a graph partitioner's) is this one after a
    symmetric permutation of the matrix: renumber the rows so that each rank's are
    consecutive, then use the sizes of the parts.

    Examples
    --------
    >>> from tsgu.distributed import RowPartition
    >>> p = RowPartition.even(10, 3)
    >>> p.offsets, p.sizes
    ([0, 4, 7, 10], [4, 3, 3])
    >>> p.owner(torch.tensor([0, 4, 9])).tolist()
    [0, 1, 2]
    """

    def __init__(self, offsets: Sequence[int]) -> None:
        if isinstance(offsets, torch.Tensor):
            offsets = offsets.tolist()
        offsets = [int(o) for o in offsets]
        if (
            len(offsets) < 2
            or offsets[0] != 0
            or any(b < a for a, b in itertools.pairwise(offsets))
        ):
            raise ValueError(
                "RowPartition: offsets must be non-decreasing, start at 0 and have one entry "
                f"more than there are ranks, got {offsets}; build one with "
                "RowPartition.even(n, world_size) or RowPartition.from_sizes(sizes)"
            )
        self.offsets = offsets

    @classmethod
    def even(cls, n: int, world_size: int) -> RowPartition:
        """``n`` rows in ``world_size`` blocks whose sizes differ by at most one."""
        if n < 0 or world_size < 1:
            raise ValueError(
                f"RowPartition.even: n and world_size must be >= 0 and >= 1, got {n} and "
                f"{world_size}; pass the number of rows and of ranks"
            )
        sizes = [n // world_size + (r < n % world_size) for r in range(world_size)]
        return cls.from_sizes(sizes)

    @classmethod
    def from_sizes(cls, sizes: Sequence[int]) -> RowPartition:
        """Blocks of the given sizes, rank by rank."""
        if any(int(s) < 0 for s in sizes):
            raise ValueError(
                f"RowPartition.from_sizes: sizes must be >= 0, got {list(sizes)}; "
                "give each rank's number of rows"
            )
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + int(s))
        return cls(offsets)

    @property
    def n(self) -> int:
        """The number of rows in all."""
        return self.offsets[-1]

    @property
    def world_size(self) -> int:
        """The number of ranks."""
        return len(self.offsets) - 1

    @property
    def sizes(self) -> list[int]:
        """Each rank's number of rows."""
        return [b - a for a, b in itertools.pairwise(self.offsets)]

    def rows(self, rank: int) -> range:
        """The global rows that ``rank`` owns."""
        return range(self.offsets[rank], self.offsets[rank + 1])

    def owner(self, index: torch.Tensor) -> torch.Tensor:
        """The rank that owns each global row in ``index``."""
        bounds = torch.tensor(self.offsets[1:], dtype=index.dtype, device=index.device)
        return torch.searchsorted(bounds, index, right=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowPartition) and self.offsets == other.offsets

    def __hash__(self) -> int:
        return hash(tuple(self.offsets))

    def __repr__(self) -> str:
        return f"RowPartition({self.offsets})"
