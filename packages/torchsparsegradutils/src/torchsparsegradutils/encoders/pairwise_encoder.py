"""0.2's ``torchsparsegradutils.encoders.pairwise_encoder``.

:class:`PairwiseEncoder` and :func:`calc_pairwise_coo_indices_nd` are tsgu's. 0.2's 4D
``calc_pairwise_coo_indices`` (and its misspelt alias) and its offset helpers
``_gen_coords_nd``, ``_gen_offsets_nd``, ``_gen_coords``, ``_gen_offsets`` and ``_trim_nd``
are kept because code written against 0.2, its own tests included, imports them; the
offsets come from tsgu's encoder, in its (0.2's) order.
"""

from __future__ import annotations

import torch

from tsgu.core import convert_coo_to_csr_indices_values
from tsgu.encoders import PairwiseEncoder, calc_pairwise_coo_indices_nd

__all__ = [
    "PairwiseEncoder",
    "calc_pairwise_coo_indices",
    "calc_pairwise_coo_indices_nd",
    "calc_pariwise_coo_indices",
    "convert_coo_to_csr_indices_values",
]

_CPU = torch.device("cpu")


def calc_pairwise_coo_indices(
    radius: float,
    volume_shape: tuple[int, int, int, int],
    diag: bool = False,
    upper: bool | None = None,
    channel_voxel_relation: str = "indep",
    dtype: torch.dtype = torch.int64,
    device: torch.device | str | None = _CPU,
) -> dict[tuple[int, ...], torch.Tensor]:
    """:func:`~tsgu.encoders.calc_pairwise_coo_indices_nd` for a 4D ``(C, D, H, W)`` volume.

    Raises
    ------
    ValueError
        ``volume_shape`` is not four positive integers, or any error of
        :func:`~tsgu.encoders.calc_pairwise_coo_indices_nd`.

    Examples
    --------
    >>> pairs = calc_pairwise_coo_indices(1, (1, 2, 1, 1))
    >>> len(pairs), pairs[(0, 1, 0, 0)].tolist()  # (rows, columns) of each offset
    (6, [[1], [0]])
    """
    shape = tuple(volume_shape)
    if len(shape) != 4 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(
            "calc_pairwise_coo_indices: volume_shape must be four positive integers "
            f"(C, D, H, W), got {volume_shape!r}; use calc_pairwise_coo_indices_nd for "
            "other dimensions"
        )
    return calc_pairwise_coo_indices_nd(
        radius, shape, diag, upper, channel_voxel_relation, dtype, device
    )


calc_pariwise_coo_indices = calc_pairwise_coo_indices  # 0.2's misspelt name


def _gen_offsets_nd(
    radius: float,
    spatial_dims: int,
    upper: bool | None = None,
    num_channels: int = 1,
    channel_voxel_relation: str = "indep",
) -> list[tuple[int, ...]]:
    """The ``(c, s1, ..., sN)`` offsets of an encoder, sorted as the encoder sorts them.

    Examples
    --------
    >>> _gen_offsets_nd(1, 2, upper=False)
    [(0, 0, 1), (0, 1, 0)]
    """
    # A volume one voxel wide holds no pair, so only the offsets are computed.
    shape = (num_channels, *(1,) * spatial_dims)
    return list(calc_pairwise_coo_indices_nd(radius, shape, False, upper, channel_voxel_relation))


def _gen_coords_nd(radius: float, spatial_dims: int) -> set[tuple[int, ...]]:
    """The non-zero integer vectors ``s`` of length ``spatial_dims`` with ``|s| <= radius``.

    Examples
    --------
    >>> sorted(_gen_coords_nd(1, 2))
    [(-1, 0), (0, -1), (0, 1), (1, 0)]
    """
    return {offset[1:] for offset in _gen_offsets_nd(radius, spatial_dims)}


def _gen_coords(radius: float) -> set[tuple[int, ...]]:
    """:func:`_gen_coords_nd` in 3D.

    Examples
    --------
    >>> len(_gen_coords(1.5))
    18
    """
    return _gen_coords_nd(radius, 3)


def _gen_offsets(
    radius: float,
    upper: bool | None = None,
    num_channels: int = 1,
    channel_voxel_relation: str = "indep",
) -> list[tuple[int, ...]]:
    """:func:`_gen_offsets_nd` in 3D: ``(c, z, y, x)`` offsets.

    Examples
    --------
    >>> _gen_offsets(1, upper=True)
    [(0, 0, 0, -1), (0, 0, -1, 0), (0, -1, 0, 0)]
    """
    return _gen_offsets_nd(radius, 3, upper, num_channels, channel_voxel_relation)


def _trim_nd(x: torch.Tensor, offsets: tuple[int, ...]) -> torch.Tensor:
    """A view of ``x`` without its first ``k`` entries along each axis with offset ``k > 0``
    and its last ``|k|`` along each axis with ``k < 0``.

    Examples
    --------
    >>> _trim_nd(torch.arange(12).view(3, 4), (1, -1))
    tensor([[ 4,  5,  6],
            [ 8,  9, 10]])
    """
    if x.ndim != len(offsets):
        raise ValueError(
            f"_trim_nd: offsets must have one entry per dimension of x ({x.ndim}), "
            f"got {len(offsets)}"
        )
    return x[tuple(slice(k, None) if k >= 0 else slice(None, k) for k in offsets)]
