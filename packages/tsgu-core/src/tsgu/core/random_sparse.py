"""Random sparse matrices: general, triangular and SPD, sampled without Python loops.

Positions are drawn without replacement by vectorised rejection (draw with replacement,
drop repeats, keep a uniformly random subset), so a million nonzeros take milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .validation import COO, CSR, check_choice, check_count, check_device

__all__ = ["make_spd_sparse", "rand_sparse", "rand_sparse_tri"]


def _check_common(
    fn: str,
    size: Sequence[int],
    layout: torch.layout,
    indices_dtype: torch.dtype,
    values_dtype: torch.dtype,
) -> tuple[int, int, int, bool]:
    if not isinstance(size, Sequence | torch.Size) or isinstance(size, str):
        raise TypeError(
            f"{fn}: size must be a tuple (n, m) or (b, n, m) of ints, got {type(size).__name__}"
        )
    shape = tuple(size)
    if len(shape) not in (2, 3) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"{fn}: size must be (n, m) or (b, n, m) non-negative ints, got {size!r}")
    check_choice(fn, "layout", layout, (COO, CSR))
    check_choice(fn, "indices_dtype", indices_dtype, (torch.int32, torch.int64))
    if not values_dtype.is_floating_point:
        raise ValueError(f"{fn}: values_dtype must be a floating-point dtype, got {values_dtype}")
    batched = len(shape) == 3
    b = shape[0] if batched else 1
    return b, shape[-2], shape[-1], batched


def _sample_positions(
    batch: int,
    population: int,
    k: int,
    device: torch.device | str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """``(batch, k)`` sorted positions, each row a uniform k-subset of ``range(population)``."""
    if k == 0 or batch == 0:
        return torch.empty(batch, k, dtype=torch.int64, device=device)
    if 2 * k >= population:
        # Dense regime: random keys over the whole population are O(k) memory here.
        keys = torch.rand(batch, population, device=device, generator=generator)
        return keys.topk(k, dim=1).indices.sort(dim=1).values
    # Draws needed to see k distinct values, with margin (coupon collector).
    draws = math.ceil(1.1 * population * math.log(population / (population - k))) + 32
    while True:
        cand = torch.randint(0, population, (batch, draws), device=device, generator=generator)
        cand = cand.sort(dim=1).values
        repeat = torch.zeros_like(cand, dtype=torch.bool)
        repeat[:, 1:] = cand[:, 1:] == cand[:, :-1]
        if bool(((~repeat).sum(dim=1) >= k).all()):
            # A uniform k-subset of the distinct draws is a uniform k-subset of the population.
            priority = torch.rand(cand.shape, device=device, generator=generator)
            priority[repeat] = 2.0
            chosen = priority.topk(k, dim=1, largest=False).indices
            return cand.gather(1, chosen).sort(dim=1).values
        draws *= 2


def _assemble(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    shape: tuple[int, ...],
    layout: torch.layout,
    indices_dtype: torch.dtype,
) -> torch.Tensor:
    """A sparse tensor from per-item ``(b, nnz)`` coordinates sorted row-major within each item."""
    b, nnz = rows.shape
    batched = len(shape) == 3
    if layout == COO:
        indices = torch.stack([rows.reshape(-1), cols.reshape(-1)])
        if batched:
            batch = torch.arange(b, device=rows.device).repeat_interleave(nnz)
            indices = torch.cat([batch[None], indices])
        return torch.sparse_coo_tensor(indices, values.reshape(-1), shape, is_coalesced=True)
    n = shape[-2]
    bounds = torch.arange(n + 1, device=rows.device).expand(b, n + 1).contiguous()
    crow = torch.searchsorted(rows.contiguous(), bounds).to(indices_dtype)
    col = cols.to(indices_dtype)
    if not batched:
        crow, col, values = crow[0], col[0], values[0]
    return torch.sparse_csr_tensor(crow, col, values, shape)


def rand_sparse(
    size: Sequence[int],
    nnz: int,
    layout: torch.layout = COO,
    *,
    indices_dtype: torch.dtype = torch.int64,
    values_dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    well_conditioned: bool = False,
    min_diag_value: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random sparse matrix (or batch) with ``nnz`` uniformly placed entries per item.

    Parameters
    ----------
    size : sequence of int
        ``(n, m)`` or ``(b, n, m)``.
    nnz : int
        Stored entries per matrix, ``0 <= nnz <= n*m``; positions are distinct.
    layout : torch.layout
        ``torch.sparse_coo`` (coalesced) or ``torch.sparse_csr``.
    indices_dtype, values_dtype : torch.dtype
        int32/int64 (kept for CSR; COO indices are always int64 in torch) and a float dtype.
    device : torch.device or str
    well_conditioned : bool
        Give sampled diagonal entries the value ``min_diag_value + 0.5 * U[0, 1)``.
    min_diag_value : float
    generator : torch.Generator, optional
        For reproducible draws.

    Returns
    -------
    torch.Tensor
        Values are ``U[0, 1)``. ``nnz = 0`` returns an empty matrix at once.

    Raises
    ------
    ValueError
        A bad size, ``nnz`` out of range, or an unsupported layout or dtype.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import rand_sparse
    >>> A = rand_sparse((2, 50, 40), 100, torch.sparse_csr, indices_dtype=torch.int32)
    >>> A.shape, A.values().shape, A.crow_indices().dtype
    (torch.Size([2, 50, 40]), torch.Size([2, 100]), torch.int32)
    """
    fn = "rand_sparse"
    check_count(fn, "nnz", nnz, minimum=None)  # the range check below names the bounds
    check_device(fn, "device", device)
    b, n, m, _ = _check_common(fn, size, layout, indices_dtype, values_dtype)
    if not 0 <= nnz <= n * m:
        raise ValueError(
            f"{fn}: nnz must be between 0 and {n * m} for size {tuple(size)}, got {nnz}"
        )
    pos = _sample_positions(b, n * m, nnz, device, generator)
    rows, cols = pos // m, pos % m
    values = torch.rand(b, nnz, dtype=values_dtype, device=device, generator=generator)
    if well_conditioned:
        on_diag = rows == cols
        values = torch.where(on_diag, min_diag_value + 0.5 * values, values)
    return _assemble(rows, cols, values, tuple(size), layout, indices_dtype)


def _strict_lower_coords(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-major rank ``t`` of a strictly-lower position -> ``(i, j)``, ``i > j``."""
    i = torch.floor((1 + torch.sqrt(1 + 8 * t.to(torch.float64))) / 2).to(torch.int64)
    # Correct float rounding at triangular numbers.
    i = i - (i * (i - 1) // 2 > t).to(torch.int64)
    i = i + ((i + 1) * i // 2 <= t).to(torch.int64)
    return i, t - i * (i - 1) // 2


def rand_sparse_tri(
    size: Sequence[int],
    nnz: int,
    layout: torch.layout = COO,
    *,
    upper: bool = True,
    strict: bool = False,
    unit_triangular: bool = False,
    indices_dtype: torch.dtype = torch.int64,
    values_dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    value_range: tuple[float, float] = (0.0, 1.0),
    well_conditioned: bool = False,
    min_diag_value: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A random sparse triangular matrix (or batch).

    Parameters
    ----------
    size : sequence of int
        ``(n, n)`` or ``(b, n, n)``.
    nnz : int
        Stored entries per matrix. With the diagonal stored: ``n <= nnz <= n(n+1)/2`` and the
        whole diagonal is present. Without it (``strict`` or ``unit_triangular``):
        ``0 <= nnz <= n(n-1)/2``.
    layout : torch.layout
        ``torch.sparse_coo`` (coalesced) or ``torch.sparse_csr``.
    upper : bool
        Upper (True) or lower (False) triangular.
    strict : bool
        Leave the diagonal out of the pattern.
    unit_triangular : bool
        A unit triangular factor whose implied unit diagonal is not stored (for
        ``unitriangular=True`` solves and LDLᵀ factors); same pattern as ``strict``.
    indices_dtype, values_dtype, device, generator
        As in :func:`rand_sparse`.
    value_range : (float, float)
        Values are uniform in this range.
    well_conditioned : bool
        Make every row diagonally dominant: diagonal = ``min_diag_value + 0.5 U[0,1)`` plus
        the row's sum of absolute off-diagonal values, which bounds the condition number.
    min_diag_value : float

    Returns
    -------
    torch.Tensor

    Raises
    ------
    ValueError
        A non-square or bad size, ``nnz`` out of range, or an unsupported layout or dtype.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import rand_sparse_tri
    >>> L = rand_sparse_tri((4, 4), 7, upper=False).to_dense()
    >>> bool((L.triu(1) == 0).all()), bool((L.diagonal() != 0).all())
    (True, True)
    """
    fn = "rand_sparse_tri"
    check_count(fn, "nnz", nnz, minimum=None)  # the range check below names the bounds
    check_device(fn, "device", device)
    b, n, m, _ = _check_common(fn, size, layout, indices_dtype, values_dtype)
    if n != m:
        raise ValueError(f"{fn}: size must be square, got {tuple(size)}")
    no_diag = strict or unit_triangular
    off_population = n * (n - 1) // 2
    lo, hi = (0, off_population) if no_diag else (n, off_population + n)
    if not lo <= nnz <= hi:
        raise ValueError(
            f"{fn}: nnz must be between {lo} and {hi} for size {tuple(size)} "
            f"({'without' if no_diag else 'with'} the diagonal), got {nnz}"
        )
    n_off = nnz if no_diag else nnz - n
    ranks = _sample_positions(b, off_population, n_off, device, generator)
    rows, cols = _strict_lower_coords(ranks)
    low, high = value_range
    values = low + (high - low) * torch.rand(
        b, nnz, dtype=values_dtype, device=device, generator=generator
    )
    if not no_diag:
        diag = torch.arange(n, device=device).expand(b, n)
        rows = torch.cat([rows, diag], dim=1)
        cols = torch.cat([cols, diag], dim=1)
    if upper:
        rows, cols = cols, rows
    order = (rows * n + cols).argsort(dim=1)
    rows, cols = rows.gather(1, order), cols.gather(1, order)
    if well_conditioned and not no_diag:
        on_diag = rows == cols
        off_abs = torch.where(on_diag, 0.0, values.abs())
        row_sums = torch.zeros(b, n, dtype=values_dtype, device=device).scatter_add_(
            1, rows, off_abs
        )
        lifted = min_diag_value + 0.5 * torch.rand(
            b, n, dtype=values_dtype, device=device, generator=generator
        )
        values = torch.where(on_diag, (lifted + row_sums).gather(1, rows), values)
    return _assemble(rows, cols, values, tuple(size), layout, indices_dtype)


def make_spd_sparse(
    n: int,
    layout: torch.layout = COO,
    value_dtype: torch.dtype = torch.float64,
    index_dtype: torch.dtype = torch.int64,
    device: torch.device | str = "cpu",
    sparsity_ratio: float = 0.5,
    nz: int | None = None,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random sparse symmetric positive definite matrix, and its dense copy.

    Built in O(nnz): symmetric off-diagonal pairs with values in ``[-1, 1)`` and a diagonal
    that exceeds each row's sum of absolute off-diagonal values, so the matrix is SPD by
    Gershgorin's theorem.

    Parameters
    ----------
    n : int
    layout : torch.layout
        ``torch.sparse_coo`` or ``torch.sparse_csr`` (keeps ``index_dtype``).
    value_dtype, index_dtype : torch.dtype
    device : torch.device or str
    sparsity_ratio : float
        Fraction of off-diagonal pairs that are zero, in ``[0, 1]``.
    nz : int, optional
        Number of nonzero off-diagonal pairs; overrides ``sparsity_ratio``.
    generator : torch.Generator, optional

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The sparse matrix and its dense copy (the 0.2 return convention; the dense copy
        costs n² memory, so use small n when you need it).

    Raises
    ------
    ValueError
        Bad ``n``, ``sparsity_ratio`` or ``nz``, or an unsupported layout or dtype.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import make_spd_sparse
    >>> A, dense = make_spd_sparse(6, torch.sparse_csr, nz=4)
    >>> bool(torch.linalg.eigvalsh(dense).min() > 0), bool((dense == dense.T).all())
    (True, True)
    """
    fn = "make_spd_sparse"
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{fn}: n must be a positive int, got {n!r}")
    check_device(fn, "device", device)
    if nz is not None:
        check_count(fn, "nz", nz, minimum=None)
    check_choice(fn, "layout", layout, (COO, CSR))
    check_choice(fn, "index_dtype", index_dtype, (torch.int32, torch.int64))
    if not value_dtype.is_floating_point:
        raise ValueError(f"{fn}: value_dtype must be a floating-point dtype, got {value_dtype}")
    pairs = n * (n - 1) // 2
    if nz is None:
        if not 0.0 <= sparsity_ratio <= 1.0:
            raise ValueError(f"{fn}: sparsity_ratio must be in [0, 1], got {sparsity_ratio}")
        nz = round((1.0 - sparsity_ratio) * pairs)
    if not 0 <= nz <= pairs:
        raise ValueError(f"{fn}: nz must be between 0 and {pairs} for n = {n}, got {nz}")
    ranks = _sample_positions(1, pairs, nz, device, generator)[0]
    i, j = _strict_lower_coords(ranks)
    off = 2 * torch.rand(nz, dtype=value_dtype, device=device, generator=generator) - 1
    diag = torch.arange(n, device=device)
    rows = torch.cat([i, j, diag])
    cols = torch.cat([j, i, diag])
    row_abs = torch.zeros(n, dtype=value_dtype, device=device).index_add_(0, i, off.abs())
    row_abs.index_add_(0, j, off.abs())
    dominant = row_abs + 0.5 + torch.rand(n, dtype=value_dtype, device=device, generator=generator)
    values = torch.cat([off, off, dominant])
    order = (rows * n + cols).argsort()
    A = _assemble(
        rows[order][None], cols[order][None], values[order][None], (n, n), layout, index_dtype
    )
    return A, A.to_dense()
