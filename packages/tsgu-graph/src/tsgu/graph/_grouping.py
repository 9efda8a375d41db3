"""How the N rows of an indexed product fall into R groups, and the two products on them.

A :class:`Grouping` is built once per call of ``segment_mm`` / ``gather_mm`` and reused by
every backward (to any order). It knows, for each row, its group, and holds what its kernel
needs:

* ``mm(x, w)``: ``out[i] = x[i] @ w[g(i)]`` for x ``(N, P)`` and w ``(R, P, Q)``;
* ``outer(x, y)``: ``out[r] = sum over rows i of group r of x[i]^T y[i]``, ``(R, P, Q)``.

These two are closed under differentiation (see ``_autograd``). Rows of ``gather_mm`` come in
any order; they are sorted by group once (a stable sort of the indices) so that every group
is a contiguous segment, and ``perm`` takes sorted positions back to rows. Nothing below
loops in Python over rows, groups or tiles.
"""

from __future__ import annotations

import torch

from tsgu.core.extend import INT32_MAX

from ._paths import aligned_for_grouped, forced_path, grouped_kernel, grouped_supported

__all__ = ["Grouping"]

# A tile's fixed cost in the padded product, in rows of work: it keeps tiles from being tiny.
_TILE_OVERHEAD_ROWS = 16
# Mean rows per group from which torch's per-group CPU grouped GEMM beats the padded bmm.
_GROUPED_MIN_ROWS = 32


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """Contiguous, with a 16-byte aligned start (the grouped kernel's requirement)."""
    t = t.contiguous()
    if t.data_ptr() % 16:
        t = t.clone()
    return t


def _choose_path(device: torch.device, dtype: torch.dtype, n: int, r: int, d1: int, d2: int) -> str:
    """``grouped`` or ``padded``, whichever is faster for this shape (or the forced one).

    torch's grouped GEMM is a single kernel only on CUDA for bfloat16 on sm90 and newer
    (CUTLASS). Elsewhere torch runs it as one ``mm`` per group (on CUDA after a host read
    of the offsets): on the CPU that wins for long groups (no copies; measured on torch
    2.13 at N = 10^4..10^5, D = 64) and loses to the single padded ``bmm`` for groups of
    a few rows, where the per-call overhead dominates; on CUDA, one launch per group loses
    to one ``bmm`` launch.
    """
    usable = (
        grouped_kernel() is not None
        and n <= INT32_MAX
        and aligned_for_grouped(d1, d2, dtype=dtype)
        and grouped_supported(device, dtype)
    )
    forced = forced_path()
    if forced == "grouped" and not usable:
        raise RuntimeError(
            f"tsgu.graph: the grouped kernel was forced but cannot run here "
            f"(torch {torch.__version__}, {device}, {dtype}, D1 = {d1}, D2 = {d2})"
        )
    if forced is not None:
        return forced
    if not usable:
        return "padded"
    if device.type == "cuda":
        major = torch.cuda.get_device_capability(device)[0]
        return "grouped" if dtype == torch.bfloat16 and major >= 9 else "padded"
    return "grouped" if n >= _GROUPED_MIN_ROWS * r else "padded"


def _tile_length(lengths: torch.Tensor, p: int, q: int) -> int:
    """The tile height T of the padded product that costs least for these group lengths.

    Cost, in elements moved: padded rows x (P + Q) for the copies in and out, plus the
    per-tile matrices (tiles x P x Q) when tiles and groups are not one to one, plus a
    fixed cost per tile. T = the longest group gives one tile per group (no copies of w);
    smaller powers of two bound the padding when lengths are uneven.
    """
    lmax = int(lengths.max()) if lengths.numel() else 0
    if lmax == 0:
        return 1
    candidates = sorted({lmax} | {2**k for k in range(4, lmax.bit_length()) if 2**k < lmax})
    nonempty = bool((lengths > 0).all())
    best, best_cost = lmax, None
    # A loop over at most log2(N) candidate heights, each a vector operation over the groups.
    for height in candidates:
        tiles = int(((lengths + height - 1) // height).sum())
        one_to_one = nonempty and tiles == lengths.numel()
        cost = (tiles * height + tiles * _TILE_OVERHEAD_ROWS) * (p + q)
        if not one_to_one:
            cost += tiles * p * q
        if best_cost is None or cost < best_cost:
            best, best_cost = height, cost
    return best


class Grouping:
    """Rows in groups: lengths (in sorted order), an optional permutation, and a kernel."""

    def __init__(
        self,
        lengths: torch.Tensor,
        perm: torch.Tensor | None,
        n: int,
        *,
        host_lengths: torch.Tensor | None,
        device: torch.device,
        dtype: torch.dtype,
        d1: int,
        d2: int,
    ) -> None:
        self.n = n
        self.r = lengths.numel()
        self.perm = perm  # sorted position -> row (None: rows are already in group order)
        self.lengths = lengths.to(device)
        self.device = device
        self.path = _choose_path(device, dtype, n, self.r, d1, d2)
        if self.path == "grouped":
            self.offsets = torch.cumsum(self.lengths, 0).to(torch.int32)
            self.empty = (self.lengths == 0)[:, None, None]
        else:
            if host_lengths is None:
                host_lengths = self.lengths.cpu()
            self._plan_tiles(host_lengths, d1, d2)

    @classmethod
    def from_lengths(cls, host_lengths: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> Grouping:
        """Contiguous segments of the given lengths (``segment_mm``)."""
        return cls(
            host_lengths,
            None,
            a.shape[0],
            host_lengths=host_lengths,
            device=a.device,
            dtype=a.dtype,
            d1=b.shape[1],
            d2=b.shape[2],
        )

    @classmethod
    def from_indices(
        cls, idx: torch.Tensor, is_sorted: bool, a: torch.Tensor, b: torch.Tensor
    ) -> Grouping:
        """Row i in group ``idx[i]`` (``gather_mm``); sorted once by a stable sort."""
        perm = None if is_sorted else torch.sort(idx, stable=True).indices
        lengths = torch.bincount(idx, minlength=b.shape[0])
        return cls(
            lengths,
            perm,
            a.shape[0],
            host_lengths=None,
            device=a.device,
            dtype=a.dtype,
            d1=b.shape[1],
            d2=b.shape[2],
        )

    # ------------------------------------------------------------- padded tiles
    def _plan_tiles(self, host_lengths: torch.Tensor, d1: int, d2: int) -> None:
        height = _tile_length(host_lengths, d1, d2)
        per_group = (host_lengths + height - 1) // height
        tiles = int(per_group.sum())
        self.height, self.tiles = height, tiles
        nonempty = bool((host_lengths > 0).all())
        # one tile per group, in group order: w needs no copy, the outer no reduction
        self.tile_group: torch.Tensor | None = None
        if not (nonempty and tiles == self.r):
            groups = torch.arange(self.r, device=self.device)
            self.tile_group = torch.repeat_interleave(
                groups, per_group.to(self.device), output_size=tiles
            )
        self.identity = (
            self.perm is None and tiles == self.r and bool((host_lengths == height).all())
        )
        self.dest: torch.Tensor | None = None  # row -> padded row
        if self.identity or self.n == 0:
            return
        lengths, dev = self.lengths, self.device
        group_of = torch.repeat_interleave(
            torch.arange(self.r, device=dev), lengths, output_size=self.n
        )
        first_row = torch.cumsum(lengths, 0) - lengths
        first_tile = torch.cumsum(per_group.to(dev), 0) - per_group.to(dev)
        local = torch.arange(self.n, device=dev) - first_row[group_of]
        dest = (first_tile[group_of] + local // height) * height + local % height
        if self.perm is not None:
            dest = torch.empty_like(dest).index_copy_(0, self.perm, dest)
        self.dest = dest

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """x ``(N, P)`` as zero-padded tiles ``(tiles, T, P)``."""
        p = x.shape[1]
        if self.identity:
            return x.reshape(self.tiles, self.height, p)
        assert self.dest is not None
        padded = x.new_zeros(self.tiles * self.height, p)
        return padded.index_copy_(0, self.dest, x).view(self.tiles, self.height, p)

    # ------------------------------------------------------------- the products
    def mm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``out[i] = x[i] @ w[group(i)]``: x ``(N, P)``, w ``(R, P, Q)``, out ``(N, Q)``."""
        q = w.shape[2]
        if x.numel() == 0 or w.numel() == 0:
            return x.new_zeros(self.n, q)
        if self.path == "grouped":
            kernel = grouped_kernel()
            assert kernel is not None
            if self.perm is None:
                return kernel(_aligned(x), _aligned(w), offs=self.offsets)
            # the sorted copy of x is freed before the output is put back in row order
            out = kernel(_aligned(x.index_select(0, self.perm)), _aligned(w), offs=self.offsets)
            return torch.empty_like(out).index_copy_(0, self.perm, out)
        tiles_w = w if self.tile_group is None else w.index_select(0, self.tile_group)
        out = torch.bmm(self._pad(x), tiles_w)  # (tiles, T, Q)
        if self.identity:
            return out.reshape(self.n, q)
        assert self.dest is not None
        return out.view(-1, q).index_select(0, self.dest)

    def outer(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``out[r] = sum over group r of x[i]^T y[i]``: x (N, P), y (N, Q), out (R, P, Q)."""
        p, q = x.shape[1], y.shape[1]
        if x.numel() == 0 or y.numel() == 0:
            return x.new_zeros(self.r, p, q)
        if self.path == "grouped":
            kernel = grouped_kernel()
            assert kernel is not None
            if self.perm is not None:
                x, y = x.index_select(0, self.perm), y.index_select(0, self.perm)
            out = kernel(_aligned(x).t(), _aligned(y), offs=self.offsets)
            # empty groups must read 0 whatever the kernel leaves there
            return out.masked_fill_(self.empty, 0)
        per_tile = torch.bmm(self._pad(x).mT, self._pad(y))  # (tiles, P, Q)
        if self.tile_group is None:
            return per_tile
        return per_tile.new_zeros(self.r, p, q).index_add_(0, self.tile_group, per_tile)
