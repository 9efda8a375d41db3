"""Finite-difference Poisson matrices (Dirichlet boundary) of any size: 2D 5-point, 3D 7/27-point.

These are the benchmark matrices: the 27-point matrix on a 50³ grid has 125,000 rows and
about 3.3M nonzeros, the scale of SuiteSparse Rothberg/cfd2. All are symmetric positive
definite.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from .validation import COO, CSR, check_choice

__all__ = ["poisson_2d", "poisson_3d"]


def _stencil_matrix(
    grid: tuple[int, ...],
    offsets: Sequence[tuple[int, ...]],
    center: float,
    layout: torch.layout,
    dtype: torch.dtype,
    index_dtype: torch.dtype,
    device: torch.device | str,
) -> torch.Tensor:
    """Matrix of a stencil with ``center`` on the diagonal and -1 at every other offset.

    Points are numbered in C order over ``grid``; ``offsets`` are sorted lexicographically,
    so the candidate columns of each row come out sorted and the result is coalesced.
    """
    npoints = 1
    for g in grid:
        npoints *= g
    coords = torch.stack(
        torch.meshgrid(*[torch.arange(g, device=device) for g in grid], indexing="ij")
    ).reshape(len(grid), -1)
    strides = [1] * len(grid)
    for d in range(len(grid) - 2, -1, -1):
        strides[d] = strides[d + 1] * grid[d + 1]
    offs = torch.tensor(offsets, device=device)  # (S, dims)
    neigh = coords[None, :, :] + offs[:, :, None]  # (S, dims, N)
    sizes = torch.tensor(grid, device=device)[None, :, None]
    inside = ((neigh >= 0) & (neigh < sizes)).all(dim=1)  # (S, N)
    stride = torch.tensor(strides, device=device)[None, :, None]
    cols = (neigh * stride).sum(dim=1)  # (S, N)
    is_center = (offs == 0).all(dim=1)
    vals = torch.where(is_center, center, -1.0).to(dtype)[:, None].expand_as(cols)
    # Row-major: transpose to (N, S) so each row's columns are contiguous and sorted.
    keep = inside.T.reshape(-1)
    rows = torch.arange(npoints, device=device)[:, None].expand(npoints, len(offsets))
    rows = rows.reshape(-1)[keep]
    cols = cols.T.reshape(-1)[keep]
    vals = vals.T.reshape(-1)[keep]
    if layout == COO:
        return torch.sparse_coo_tensor(
            torch.stack([rows, cols]), vals, (npoints, npoints), is_coalesced=True
        )
    crow = torch.searchsorted(rows, torch.arange(npoints + 1, device=device)).to(index_dtype)
    return torch.sparse_csr_tensor(crow, cols.to(index_dtype), vals, (npoints, npoints))


def _check(
    fn: str,
    sizes: tuple[int, ...],
    layout: torch.layout,
    dtype: torch.dtype,
    index_dtype: torch.dtype,
) -> None:
    if not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise ValueError(f"{fn}: grid sizes must be positive ints, got {sizes}")
    check_choice(fn, "layout", layout, (COO, CSR))
    check_choice(fn, "dtype", dtype, (torch.float32, torch.float64))
    check_choice(fn, "index_dtype", index_dtype, (torch.int32, torch.int64))


def poisson_2d(
    nx: int,
    ny: int | None = None,
    *,
    layout: torch.layout = CSR,
    dtype: torch.dtype = torch.float64,
    index_dtype: torch.dtype = torch.int64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The 5-point Laplacian on an ``nx x ny`` grid: 4 on the diagonal, -1 to each neighbour.

    Parameters
    ----------
    nx, ny : int
        Grid size (``ny`` defaults to ``nx``); the matrix is ``(nx*ny, nx*ny)``.
    layout : torch.layout
        ``torch.sparse_csr`` (default) or ``torch.sparse_coo`` (coalesced).
    dtype, index_dtype : torch.dtype
    device : torch.device or str

    Returns
    -------
    torch.Tensor
        Symmetric positive definite sparse matrix.

    Raises
    ------
    ValueError
        Non-positive sizes or an unsupported layout or dtype.

    Examples
    --------
    >>> from tsgu.core import poisson_2d
    >>> poisson_2d(3).to_dense()[4]
    tensor([ 0., -1.,  0., -1.,  4., -1.,  0., -1.,  0.], dtype=torch.float64)
    """
    ny = nx if ny is None else ny
    _check("poisson_2d", (nx, ny), layout, dtype, index_dtype)
    offsets = [(-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]
    return _stencil_matrix((nx, ny), offsets, 4.0, layout, dtype, index_dtype, device)


def poisson_3d(
    nx: int,
    ny: int | None = None,
    nz: int | None = None,
    *,
    stencil: int = 7,
    layout: torch.layout = CSR,
    dtype: torch.dtype = torch.float64,
    index_dtype: torch.dtype = torch.int64,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """The 3D Laplacian on an ``nx x ny x nz`` grid with a 7- or 27-point stencil.

    7-point: 6 on the diagonal, -1 to the six face neighbours. 27-point: 26 on the
    diagonal, -1 to all 26 neighbours of the 3x3x3 cube.

    Parameters
    ----------
    nx, ny, nz : int
        Grid size (``ny`` and ``nz`` default to ``nx``).
    stencil : int
        7 or 27.
    layout, dtype, index_dtype, device
        As in :func:`poisson_2d`.

    Returns
    -------
    torch.Tensor
        Symmetric positive definite sparse matrix ``(nx*ny*nz, nx*ny*nz)``.

    Raises
    ------
    ValueError
        Non-positive sizes, a stencil other than 7 or 27, or an unsupported layout or dtype.

    Examples
    --------
    >>> from tsgu.core import poisson_3d
    >>> A = poisson_3d(4, stencil=27)
    >>> A.shape, A.values().numel()
    (torch.Size([64, 64]), 1000)
    """
    ny = nx if ny is None else ny
    nz = nx if nz is None else nz
    _check("poisson_3d", (nx, ny, nz), layout, dtype, index_dtype)
    check_choice("poisson_3d", "stencil", stencil, (7, 27))
    if stencil == 27:
        offsets = list(itertools.product((-1, 0, 1), repeat=3))
        center = 26.0
    else:
        offsets = sorted(
            [(0, 0, 0)]
            + [tuple(s if d == a else 0 for d in range(3)) for a in range(3) for s in (-1, 1)]
        )
        center = 6.0
    return _stencil_matrix((nx, ny, nz), offsets, center, layout, dtype, index_dtype, device)
