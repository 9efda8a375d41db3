"""Level scheduling: solve sparse triangular systems without a loop over rows.

Rows are grouped by dependency level (a row's level is one more than the highest level of
the rows it depends on), found by Kahn's algorithm with one vectorised step per level.
Each level is then solved in one step: its rows depend only on rows of earlier levels.
This is the solve for builds without a sparse triangular kernel (torch's needs MKL on the
CPU); it loops over levels, whose count is the depth of the dependency graph.
"""

from __future__ import annotations

import torch


def ragged_positions(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Concatenation of ``range(s, s + c)`` for every (s, c), without a loop."""
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts
    return torch.repeat_interleave(starts - offsets, counts, output_size=total) + torch.arange(
        total, device=starts.device
    )


class LevelSchedule:
    """Levels of the system ``x[dst] -= w * x[src]`` over ``n`` unknowns.

    ``dst[e]`` depends on ``src[e]`` for every dependency entry e (the strict triangle).
    """

    def __init__(self, dst: torch.Tensor, src: torch.Tensor, n: int) -> None:
        device = dst.device
        dst, src = dst.to(torch.int64), src.to(torch.int64)
        # Entries grouped by their source row, to find who waits for a finished row.
        by_src = torch.argsort(src, stable=True)
        src_start = torch.searchsorted(src[by_src], torch.arange(n + 1, device=device))
        waiting = torch.bincount(dst, minlength=n)
        level = torch.full((n,), -1, dtype=torch.int64, device=device)
        frontier = torch.nonzero(waiting == 0).squeeze(1)
        depth = 0
        while frontier.numel():  # one iteration per level, not per row
            level[frontier] = depth
            starts = src_start[frontier]
            entries = by_src[ragged_positions(starts, src_start[frontier + 1] - starts)]
            # Work proportional to the entries released, not to n.
            targets = dst[entries]
            waiting.index_add_(0, targets, torch.full_like(targets, -1))
            touched = torch.unique(targets)
            frontier = touched[waiting[touched] == 0]
            depth += 1
        if bool((level < 0).any()):  # pragma: no cover - a triangle has no cycles
            raise ValueError("the dependency graph has a cycle")
        self.depth = depth
        self.level = level
        # Rows and dependency entries ordered by level, with the size of each level.
        self.row_order = torch.argsort(level, stable=True)
        row_counts = torch.bincount(level, minlength=depth)
        self.row_counts = row_counts.tolist()
        # Each row's position inside its level, so a level accumulates into a level-sized block.
        level_start = torch.cumsum(row_counts, 0) - row_counts
        local = torch.empty_like(level)
        local[self.row_order] = torch.arange(n, device=device) - level_start[level[self.row_order]]
        entry_level = level[dst]
        self.entry_order = torch.argsort(entry_level, stable=True)
        self.entry_counts = torch.bincount(entry_level, minlength=depth).tolist()
        self.local_dst = local[dst]
        self.src = src

    def solve(self, weights: torch.Tensor, diag: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``x`` with ``diag[i] x[i] + sum_e w[e] x[src[e]] (dst[e] = i) = B[i]``; B is (n, k)."""
        X = torch.empty_like(B)
        rows = torch.split(self.row_order, self.row_counts)
        entries = torch.split(self.entry_order, self.entry_counts)
        for level_rows, level_entries in zip(rows, entries, strict=True):  # per level
            rhs = B.index_select(0, level_rows)
            if level_entries.numel():
                contrib = weights[level_entries, None] * X.index_select(0, self.src[level_entries])
                rhs = rhs.index_add(0, self.local_dst[level_entries], contrib, alpha=-1)
            X[level_rows] = rhs / diag[level_rows, None]
        return X
