"""Selected inversion: the entries of (L D Lᵀ)⁻¹ on the pattern of L, supernode by supernode.

The Takahashi recurrences, in the block form of Lin et al. (SelInv, ACM TOMS 2011): for a
supernode S with dense diagonal block L_SS, the rows R below it and Ŀ = L_RS L_SS⁻¹,

    Z_RS = -Z_RR Ŀ,      Z_SS = L_SS⁻ᵀ D_S⁻¹ L_SS⁻¹ - Ŀᵀ Z_RS.

Z_RR lies inside the parent supernode's rows (an elimination-tree property), so a supernode
needs only its parent done: supernodes at the same depth of the supernodal elimination tree
are independent. The numeric phase loops over those depths, root first (and, within one depth,
over a few groups of similar block sizes so that padding stays small); each step is a batch of
dense triangular solves and products. Nothing of size n² is formed: the work is that of the
factorization and the memory that of L plus the dense blocks of one depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SupernodalPattern", "selected_inverse"]


def _depths(parent: torch.Tensor) -> torch.Tensor:
    """Depth of every node of a forest given by ``parent`` (-1 at roots), by pointer jumping:
    log2(height) rounds of vectorised work, no loop over nodes."""
    depth = (parent >= 0).to(torch.int64)
    ancestor = parent.clone()
    while True:
        live = ancestor >= 0
        if not bool(live.any()):
            return depth
        up = ancestor[live]
        depth[live] = depth[live] + depth[up]
        ancestor[live] = ancestor[up]


@dataclass(frozen=True)
class _Group:
    """Supernodes of one depth with similar block sizes, padded to (wp, rp).

    Positions point into L's values extended by one trailing zero (index ``nnz``), so a
    padded slot gathers a zero; likewise parent positions point past the previous depth's
    buffer to a trailing zero.
    """

    size: int
    wp: int
    rp: int
    pos_s: torch.Tensor  # (b, wp, wp) positions of the diagonal blocks in L's values
    pos_r: torch.Tensor  # (b, rp, wp) positions of the blocks below them
    pad_diagonal: torch.Tensor  # (b, wp) True on padded diagonal slots
    write_s: tuple[torch.Tensor, torch.Tensor]  # (flat index in the block, position in L)
    write_r: tuple[torch.Tensor, torch.Tensor]
    parent_index: torch.Tensor  # (b, rp, rp) offsets of Z_RR in the previous depth's buffer
    offset: int  # where this group's dense blocks go in its depth's buffer; -1: no children


@dataclass(frozen=True)
class SupernodalPattern:
    """What selected inversion needs from L's pattern; computed once per symbolic analysis."""

    n: int
    nnz: int
    depth_groups: tuple[tuple[_Group, ...], ...]
    depth_sizes: tuple[int, ...]  # elements of each depth's buffer of dense blocks

    @staticmethod
    def of(colptr: torch.Tensor, rowidx: torch.Tensor) -> SupernodalPattern:
        """Supernodes of the lower-triangular CSC pattern ``(colptr, rowidx)`` (sorted rows,
        diagonal first in each column), their elimination tree and the gather maps."""
        colptr = colptr.to(torch.int64)
        rowidx = rowidx.to(torch.int64)
        n = colptr.numel() - 1
        count = colptr[1:] - colptr[:-1]
        if n == 0:
            return SupernodalPattern(0, 0, (), ())
        first_below = torch.where(
            count > 1, rowidx[torch.clamp(colptr[:-1] + 1, max=rowidx.numel() - 1)], -1
        )
        # column j continues the supernode of j - 1 when j is j-1's parent and its structure is
        # j-1's minus j itself (then both columns share one dense block)
        joins = (first_below[:-1] == torch.arange(1, n)) & (count[:-1] == count[1:] + 1)
        starts = torch.cat([torch.zeros(1, dtype=torch.int64), torch.nonzero(~joins).flatten() + 1])
        nsuper = starts.numel()
        ends = torch.cat([starts[1:], torch.tensor([n])])
        width = ends - starts
        height = count[starts]  # rows of the supernode's block: its columns, then R
        below = height - width
        super_of = torch.repeat_interleave(torch.arange(nsuper), width)
        last = ends - 1
        parent_col = first_below[last]
        parent = torch.where(below > 0, super_of[parent_col.clamp(min=0)], -1)
        depth = _depths(parent)
        has_child = torch.zeros(nsuper, dtype=torch.bool)
        has_child[parent[parent >= 0]] = True

        # rank of each row of R_s in its parent's rows (parent's first column's structure)
        r_total = int(below.sum())
        owner = torch.repeat_interleave(torch.arange(nsuper), below)
        offset_in_r = torch.arange(r_total) - torch.repeat_interleave(
            torch.cumsum(below, 0) - below, below
        )
        r_rows = rowidx[colptr[starts[owner]] + width[owner] + offset_in_r]
        # all supernodes' row lists, keyed (supernode, row): sorted, so one search finds all
        key_stride = n + 1
        list_owner = torch.repeat_interleave(torch.arange(nsuper), height)
        list_off = torch.arange(int(height.sum())) - torch.repeat_interleave(
            torch.cumsum(height, 0) - height, height
        )
        list_rows = rowidx[colptr[starts[list_owner]] + list_off]
        keys = list_owner * key_stride + list_rows
        wanted = parent[owner] * key_stride + r_rows
        found = torch.searchsorted(keys, wanted)
        if r_total and not torch.equal(keys[found.clamp(max=keys.numel() - 1)], wanted):
            raise ValueError("selected inversion: L's pattern is not a Cholesky factor's pattern")
        rank_in_parent = found - (torch.cumsum(height, 0) - height)[parent[owner]]

        groups_by_depth: list[tuple[_Group, ...]] = []
        sizes: list[int] = []
        slot = torch.full((nsuper,), -1, dtype=torch.int64)  # slot in its depth's buffer
        slot_size = torch.zeros(nsuper, dtype=torch.int64)  # padded block side wp + rp
        slot_wp = torch.zeros(nsuper, dtype=torch.int64)
        r_start = torch.cumsum(below, 0) - below
        max_depth = int(depth.max())
        # a loop over depths (and a few size groups per depth), not over supernodes
        for d in range(max_depth + 1):
            members = torch.nonzero(depth == d).flatten()
            wbin = _pow2_bin(width[members])
            rbin = _pow2_bin(below[members])
            # only supernodes with children keep a dense block for the next depth
            group_key = (wbin * 128 + rbin) * 2 + has_child[members].to(torch.int64)
            groups: list[_Group] = []
            base = 0
            for key in torch.unique(group_key).tolist():
                sup = members[group_key == key]
                wp = int(width[sup].max())
                rp = int(below[sup].max())
                keeps = bool(key % 2)
                group = _make_group(
                    sup, wp, rp, starts, width, below, colptr, parent,
                    rank_in_parent, r_start, slot, slot_wp, slot_size, base if keeps else -1,
                )  # fmt: skip
                groups.append(group)
                if keeps:
                    side = wp + rp
                    slot[sup] = base + torch.arange(sup.numel()) * side * side
                    slot_size[sup] = side
                    slot_wp[sup] = wp
                    base += sup.numel() * side * side
            groups_by_depth.append(tuple(groups))
            sizes.append(base)
        return SupernodalPattern(n, int(rowidx.numel()), tuple(groups_by_depth), tuple(sizes))


def _pow2_bin(x: torch.Tensor) -> torch.Tensor:
    # bins of ratio 2**0.5: padding wastes at most ~2x of a group's flops
    return torch.ceil(2 * torch.log2(x.to(torch.float64).clamp(min=1))).to(torch.int64)


def _make_group(
    sup: torch.Tensor,
    wp: int,
    rp: int,
    starts: torch.Tensor,
    width: torch.Tensor,
    below: torch.Tensor,
    colptr: torch.Tensor,
    parent: torch.Tensor,
    rank_in_parent: torch.Tensor,
    r_start: torch.Tensor,
    slot: torch.Tensor,
    slot_wp: torch.Tensor,
    slot_size: torch.Tensor,
    offset: int,
) -> _Group:
    nnz = int(colptr[-1])
    w = width[sup].view(-1, 1, 1)
    r = below[sup].view(-1, 1, 1)
    f = starts[sup].view(-1, 1, 1)
    i = torch.arange(wp).view(1, -1, 1)
    t = torch.arange(wp).view(1, 1, -1)
    col_t = (f + t).clamp(max=colptr.numel() - 2)
    mask_s = (i >= t) & (i < w) & (t < w)
    pos_s = torch.where(mask_s, colptr[col_t] + i - t, nnz)
    ir = torch.arange(rp).view(1, -1, 1)
    mask_r = (ir < r) & (t < w)
    pos_r = torch.where(mask_r, colptr[col_t] + (w - t) + ir, nnz)
    pad_diagonal = ~torch.diagonal(mask_s, dim1=1, dim2=2)
    write_s = (torch.nonzero(mask_s.flatten()).flatten(), pos_s[mask_s])
    write_r = (torch.nonzero(mask_r.flatten()).flatten(), pos_r[mask_r])
    # the child's rows inside its parent's dense block, whose padded layout is the
    # parent's columns (padded to its wp), then its R
    k = torch.arange(rp).view(1, -1)
    valid = k < below[sup].view(-1, 1)
    rank = rank_in_parent[torch.where(valid, r_start[sup].view(-1, 1) + k, 0)] if rp else k
    par = parent[sup].clamp(min=0)
    pw = width[par].view(-1, 1)
    rows = torch.where(rank < pw, rank, slot_wp[par].view(-1, 1) + (rank - pw))
    side = slot_size[par].view(-1, 1, 1)
    index = slot[par].view(-1, 1, 1) + rows.unsqueeze(2) * side + rows.unsqueeze(1)
    both = valid.unsqueeze(2) & valid.unsqueeze(1)
    parent_index = torch.where(both, index, -1)  # -1: the trailing zero
    return _Group(
        sup.numel(), wp, rp, pos_s, pos_r, pad_diagonal, write_s, write_r, parent_index, offset
    )


def selected_inverse(
    pattern: SupernodalPattern, values: torch.Tensor, unit_diagonal: bool
) -> torch.Tensor:
    """Z = (L D Lᵀ)⁻¹ at L's pattern, as values in L's order.

    ``values`` holds L in the CSC order the pattern was built from. With ``unit_diagonal``
    (an LDLᵀ factor) the stored diagonal is D and L's own diagonal is one; otherwise D = I
    and the stored diagonal is L's.
    """
    L = torch.cat([values, values.new_zeros(1)])
    Z = torch.zeros_like(L)
    previous = values.new_zeros(1)  # the previous depth's dense blocks, then a zero
    # a loop over depths (root first) and a few groups per depth, not over columns
    for groups, size in zip(pattern.depth_groups, pattern.depth_sizes, strict=True):
        blocks = values.new_empty(size + 1)
        blocks[size] = 0.0
        for g in groups:
            _group_step(g, L, Z, previous, blocks, unit_diagonal)
        previous = blocks
    return Z[:-1]


def _group_step(
    g: _Group,
    L: torch.Tensor,
    Z: torch.Tensor,
    previous: torch.Tensor,
    blocks: torch.Tensor,
    unit_diagonal: bool,
) -> None:
    """One batch of supernodes: write their columns of Z and, for those with children, their
    dense blocks of Z (columns and R, padded) into ``blocks`` for the next depth."""
    eye = torch.eye(g.wp, dtype=L.dtype)
    L_ss = L[g.pos_s]
    if unit_diagonal:
        D = torch.diagonal(L_ss, dim1=1, dim2=2).masked_fill(g.pad_diagonal, 1.0)
        L_ss = L_ss.tril(-1) + eye
    else:
        D = None
        L_ss = L_ss + torch.diag_embed(g.pad_diagonal.to(L.dtype))  # padding: identity
    M = torch.linalg.solve_triangular(L_ss, eye.expand(g.size, g.wp, g.wp), upper=False)
    L_hat = L[g.pos_r] @ M
    Z_rr = previous[g.parent_index]
    Z_rs = -(Z_rr @ L_hat)
    Z_ss = M.mT @ (M if D is None else M / D.unsqueeze(-1)) - L_hat.mT @ Z_rs
    Z[g.write_s[1]] = Z_ss.flatten()[g.write_s[0]]
    Z[g.write_r[1]] = Z_rs.flatten()[g.write_r[0]]
    if g.offset >= 0:
        side = g.wp + g.rp
        block = blocks[g.offset : g.offset + g.size * side * side].view(g.size, side, side)
        block[:, : g.wp, : g.wp] = Z_ss
        block[:, g.wp :, : g.wp] = Z_rs
        block[:, : g.wp, g.wp :] = Z_rs.mT
        block[:, g.wp :, g.wp :] = Z_rr
