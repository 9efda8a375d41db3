"""``plot_pairwise_pattern``: the offsets and the sparsity pattern of an encoder, drawn.

matplotlib is optional (``pip install 'tsgu-encoders[plot]'``) and imported only here,
when a plot is asked for.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import torch

from .pairwise import PairwiseEncoder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_pairwise_pattern"]


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "plot_pairwise_pattern needs matplotlib, which tsgu-encoders installs only "
            "with its 'plot' extra: pip install 'tsgu-encoders[plot]'"
        ) from err
    return matplotlib, Figure, ListedColormap


def _coloured_matrix(encoder: PairwiseEncoder) -> torch.Tensor:
    """Dense ``V x V`` int: 0 where nothing is stored, ``k + 1`` at offset k's entries."""
    nvox = encoder.volume_numel
    if encoder.layout == torch.sparse_csr:
        counts = encoder.crow_indices.diff().to(torch.int64).cpu()
        rows = torch.repeat_interleave(torch.arange(nvox), counts)
        cols = encoder.col_indices.cpu().to(torch.int64)
    else:
        rows, cols = encoder.indices.cpu()
    which = encoder.value_index.cpu().to(torch.int64) // encoder._blocks.width
    image = torch.zeros(nvox, nvox, dtype=torch.int32)
    image[rows, cols] = (which + 1).to(torch.int32)
    return image


def plot_pairwise_pattern(
    encoder: PairwiseEncoder,
    path: str | os.PathLike[str] | None = None,
    *,
    max_voxels: int = 4096,
    dpi: int = 120,
) -> Figure:
    """Draw an encoder's offset pattern and its matrix's sparsity pattern (to PNG).

    Left, the offsets: one small grid per leading part ``(c, s1, ..., s(N-2))`` of the
    offsets, showing the plane of the last two spatial offsets (a single row in 1D) around
    the row voxel (marked x); each offset's cell has its own colour. Right, the ``V x V``
    matrix with every stored entry in the colour of the offset that placed it, as in
    torchsparsegradutils 0.2's README figures.

    Parameters
    ----------
    encoder : PairwiseEncoder
        The encoder to draw.
    path : str or os.PathLike, optional
        Where to write the figure (PNG, or any format matplotlib infers from the suffix).
    max_voxels : int
        Refuse volumes with more voxels than this: the matrix image is ``V x V``.
    dpi : int
        Resolution of the saved file.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (not registered with pyplot: no global state, no display needed).

    Raises
    ------
    ImportError
        matplotlib is not installed (the ``plot`` extra).
    TypeError
        ``encoder`` is not a :class:`PairwiseEncoder`.
    ValueError
        The volume has more than ``max_voxels`` voxels.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from tsgu.encoders import PairwiseEncoder, plot_pairwise_pattern
    >>> enc = PairwiseEncoder(2, (2, 4, 4), upper=False, channel_voxel_relation="intra")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     fig = plot_pairwise_pattern(enc, pathlib.Path(tmp) / "pattern.png")
    ...     (pathlib.Path(tmp) / "pattern.png").stat().st_size > 0
    True
    """
    fn = "plot_pairwise_pattern"
    if not isinstance(encoder, PairwiseEncoder):
        raise TypeError(f"{fn}: encoder must be a PairwiseEncoder, got {type(encoder).__name__}")
    if encoder.volume_numel > max_voxels:
        raise ValueError(
            f"{fn}: the volume must have at most max_voxels={max_voxels} voxels (the "
            f"matrix image is V x V), got {encoder.volume_numel}; draw a smaller volume "
            "with the same radius and options, or raise max_voxels"
        )
    _, Figure, ListedColormap = _matplotlib()

    offsets = encoder.offsets
    reach = math.floor(encoder.radius)
    nk = len(offsets)
    palette = _palette(nk)
    cmap = ListedColormap([(1.0, 1.0, 1.0, 1.0), *palette])

    # Group the offsets by their leading part; each group is one small grid.
    planar = encoder.spatial_dims >= 2
    lead_len = len(encoder.volume_shape) - (2 if planar else 1)
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, o in enumerate(offsets):
        groups.setdefault(o[:lead_len], []).append(k)
    leads = sorted(groups)
    ncols_grid = max(1, math.ceil(math.sqrt(len(leads))))
    nrows_grid = max(1, math.ceil(len(leads) / ncols_grid))

    fig = Figure(figsize=(max(10.0, 4.5 + 2.2 * ncols_grid), max(5.0, 2.2 * nrows_grid + 1.2)))
    outer = fig.add_gridspec(1, 2, width_ratios=[2.2 * ncols_grid, 4.5])
    left = outer[0].subgridspec(max(nrows_grid, 1), ncols_grid)
    side = 2 * reach + 1
    for i, lead in enumerate(leads):
        ax = fig.add_subplot(left[i // ncols_grid, i % ncols_grid])
        grid = torch.zeros(side if planar else 1, side, dtype=torch.int32)
        for k in groups[lead]:
            tail = offsets[k][lead_len:]
            r, c = (tail[0] + reach, tail[1] + reach) if planar else (0, tail[0] + reach)
            grid[r, c] = k + 1
        ax.imshow(grid.numpy(), cmap=cmap, vmin=0, vmax=nk, interpolation="nearest")
        for k in groups[lead]:
            tail = offsets[k][lead_len:]
            r, c = (tail[0] + reach, tail[1] + reach) if planar else (0, tail[0] + reach)
            ax.text(c, r, str(k), ha="center", va="center", fontsize=7)
        if not any(lead) and not encoder.diag:  # the row voxel itself
            ax.plot(reach, reach if planar else 0, marker="x", color="black", markersize=6)
        names = ["c"] + [f"s{j}" for j in range(1, lead_len)]
        ax.set_title(", ".join(f"{n}={v}" for n, v in zip(names, lead, strict=True)), fontsize=8)
        ticks = list(range(side))
        labels = [str(t - reach) for t in ticks]
        ax.set_xticks(ticks, labels, fontsize=6)
        ax.set_xlabel(f"s{encoder.spatial_dims}", fontsize=7, labelpad=1)
        if planar:
            ax.set_yticks(ticks, labels, fontsize=6)
            ax.set_ylabel(f"s{encoder.spatial_dims - 1}", fontsize=7, labelpad=1)
        else:
            ax.set_yticks([])
    for j in range(len(leads), nrows_grid * ncols_grid):
        fig.add_subplot(left[j // ncols_grid, j % ncols_grid]).axis("off")

    mat = fig.add_subplot(outer[1])
    mat.imshow(
        _coloured_matrix(encoder).numpy(), cmap=cmap, vmin=0, vmax=nk, interpolation="nearest"
    )
    mat.set_title(
        f"{encoder.volume_numel} x {encoder.volume_numel}, nnz = {encoder.nnz}", fontsize=9
    )
    mat.set_xlabel("column voxel p - offset")
    mat.set_ylabel("row voxel p")
    fig.suptitle(
        f"PairwiseEncoder(radius={encoder.radius:g}, volume_shape={encoder.volume_shape}, "
        f"diag={encoder.diag}, upper={encoder.upper}, "
        f"channel_voxel_relation={encoder.channel_voxel_relation!r}): {nk} offsets\n"
        "left: offset o = (c, s...) drawn at its position, numbered by its slice k of values "
        "(x: the row voxel); right: entry (p, p - o) in the colour of o",
        fontsize=9,
    )
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


def _palette(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinguishable colours: tab20, then lighter rounds of it."""
    from matplotlib import colormaps

    base = colormaps["tab20"]
    out = []
    for k in range(n):
        r, g, b, _ = base(k % 20)
        fade = 0.3 * ((k // 20) % 3)
        out.append((r + (1 - r) * fade, g + (1 - g) * fade, b + (1 - b) * fade, 1.0))
    return out
