"""``PairwiseEncoder``: a sparse neighbourhood matrix of an nD multi-channel volume."""

from __future__ import annotations

import math
import warnings

import torch

import tsgu.core as tc
from tsgu.core.extend import INT32_MAX

from ._build import count_pairs, row_major_pattern
from ._gather import RowBlocks, block_shape, gather, row_blocks
from ._offsets import pairwise_offsets
from ._validate import (
    check_device,
    check_index_dtype_arg,
    check_layout,
    check_options,
    check_radius,
    check_values,
    check_volume_shape,
)

__all__ = ["PairwiseEncoder"]


class PairwiseEncoder(torch.nn.Module):
    """Place per-voxel neighbour values into a sparse ``V x V`` matrix, differentiably.

    For every voxel of a ``(C, *spatial)`` volume, a model predicts one value per
    neighbour offset; the encoder puts them in a sparse matrix over the flattened volume
    (``V = C * prod(spatial)``), e.g. the Cholesky factor of a precision matrix.
    Interchangeable with torchsparsegradutils 0.2's ``PairwiseEncoder``: same arguments,
    same :attr:`offsets` in the same order, same placement of every value.

    The pattern is built once, here; a call only gathers the values into it (one
    vectorised gather, batched or not) and the gradient flows back to them in O(nnz).

    Parameters
    ----------
    radius : float
        Spatial neighbourhood radius, ``>= 1``: spatial offsets are the non-zero integer
        vectors ``s`` with ``s1² + ... + sN² <= radius²``.
    volume_shape : tuple of int
        ``(C, *spatial)``, one or more spatial dimensions.
    diag : bool
        Add the zero offset, first: ``values[0]`` goes on the diagonal.
    upper : bool or None
        ``False`` keeps the offsets whose first non-zero entry is positive (a strictly
        lower-triangular matrix, row > column); ``True`` those whose first non-zero entry
        is negative (strictly upper; channel offsets are never negative, so none is
        kept, as in 0.2, and a warning says so); ``None`` keeps all.
    channel_voxel_relation : {"indep", "intra", "inter"}
        ``indep``: pairs within a channel, offsets ``(0, *s)``; ``intra``: also the same
        voxel in other channels, ``(c, 0, ..., 0)`` for ``c = 1..C-1``; ``inter``: also
        ``(c, *s)`` for those ``c`` and every spatial ``s`` (zero included).
    layout : torch.layout
        ``torch.sparse_coo`` (coalesced output) or ``torch.sparse_csr``.
    indices_dtype : torch.dtype
        ``torch.int64`` or ``torch.int32``. CSR output keeps it; torch stores COO indices
        as int64 whatever is asked, so for COO it only has to be valid.
    device : torch.device or str
        Where the pattern is built; ``.to(device)`` moves it later.

    Attributes
    ----------
    offsets : list of tuple of int
        ``(c, s1, ..., sN)`` per slice of the values tensor: ``values[k]`` fills the pairs
        of ``offsets[k]``.
    volume_numel : int
        ``V``, the matrix size.
    spatial_dims : int
        Number of spatial dimensions.
    nnz : int
        Stored entries of one matrix.

    Notes
    -----
    Voxels are numbered in C order over ``(C, *spatial)``. For the k-th offset ``o`` and
    every voxel ``p`` with ``p - o`` inside the volume,

    .. math:: A[p, p - o] = \\mathrm{values}[k][p],

    the value at the row's voxel; pairs that would leave the volume are dropped (no wrap,
    no padding), so some values are never used and get a zero gradient. Offsets are
    sorted by ``((10 c)² + |s|², absolute entries, signs)``.

    The forward pass gathers ``A.values[e] = values[k][p]`` (entry ``e`` at row ``p``,
    offset ``k``; batched: per item) and the backward is the matching copy back (no
    value is used twice), both O(nnz). The gather runs over blocks of rows through a
    small staggered scratch, so that the K slices of ``values`` do not evict each other
    from the cache (they would, read side by side, when ``V`` is a multiple of 1024).
    The sparse tensor is built with :func:`tsgu.core.sparse_coo_tensor` /
    :func:`tsgu.core.sparse_csr_tensor`, whose backward hands the gradient's values back
    at the pattern: torch's own CSR constructor would turn it into a dense ``V x V``
    matrix.

    The pattern lives in non-persistent buffers: ``.to()`` moves it, ``state_dict()``
    stays empty (as in 0.2; the pattern is rebuilt from the arguments).

    Examples
    --------
    >>> import torch
    >>> from tsgu.encoders import PairwiseEncoder
    >>> enc = PairwiseEncoder(1, (1, 3), diag=True, upper=False)
    >>> enc.offsets
    [(0, 0), (0, 1)]
    >>> values = torch.tensor([[[1.0, 2.0, 3.0]], [[10.0, 20.0, 30.0]]], requires_grad=True)
    >>> L = enc(values)
    >>> L.to_dense()
    tensor([[ 1.,  0.,  0.],
            [20.,  2.,  0.],
            [ 0., 30.,  3.]], grad_fn=<...>)
    >>> L.layout, L.shape
    (torch.sparse_coo, torch.Size([3, 3]))
    >>> import tsgu.core as tc
    >>> tc.sparse_mm(L, torch.ones(3, 1)).sum().backward()
    >>> values.grad
    tensor([[[1., 1., 1.]],
    <BLANKLINE>
            [[0., 1., 1.]]])
    """

    offsets: list[tuple[int, ...]]
    # the pattern (non-persistent buffers): COO `indices`, or CSR `crow_indices` and
    # `col_indices`; `value_index` for both
    indices: torch.Tensor
    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    value_index: torch.Tensor

    def __init__(
        self,
        radius: float,
        volume_shape: tuple[int, ...],
        diag: bool = False,
        upper: bool | None = None,
        channel_voxel_relation: str = "indep",
        layout: torch.layout = torch.sparse_coo,
        indices_dtype: torch.dtype = torch.int64,
        device: torch.device | str = torch.device("cpu"),  # noqa: B008 (0.2's default)
    ) -> None:
        super().__init__()
        fn = "PairwiseEncoder"
        self.radius = check_radius(fn, radius)
        self.volume_shape = check_volume_shape(fn, volume_shape)
        check_options(fn, self.volume_shape, diag, upper, channel_voxel_relation)
        self.layout = check_layout(fn, layout)
        self.indices_dtype = check_index_dtype_arg(fn, "indices_dtype", indices_dtype)
        where = check_device(fn, device)
        self.diag = diag
        self.upper = upper
        self.channel_voxel_relation = str(channel_voxel_relation)
        if upper is True and self.channel_voxel_relation != "indep":
            warnings.warn(
                f"{fn}: upper=True keeps only offsets whose first non-zero entry is "
                "negative, and channel offsets are never negative (torchsparsegradutils "
                f"0.2's convention): channel_voxel_relation={channel_voxel_relation!r} "
                "pairs no channels here. Use upper=False for a triangular factor with "
                "channel relations.",
                UserWarning,
                stacklevel=2,
            )
        self.spatial_dims = len(self.volume_shape) - 1
        self.volume_numel = math.prod(self.volume_shape)
        self.offsets = pairwise_offsets(
            self.radius, self.volume_shape, diag, upper, self.channel_voxel_relation
        )
        self.nnz = count_pairs(self.offsets, self.volume_shape)
        self._values_shape = (len(self.offsets), *self.volume_shape)
        csr = self.layout == torch.sparse_csr
        index_dtype = self.indices_dtype if csr else torch.int64
        if index_dtype == torch.int32 and max(self.nnz, self.volume_numel) > INT32_MAX:
            raise ValueError(
                f"{fn}: indices_dtype torch.int32 cannot hold {self.nnz} entries of a "
                f"{self.volume_numel}-voxel volume; use indices_dtype=torch.int64"
            )
        # The gather index holds positions in a block's scratch (under K * width), so it
        # fits int32 whatever the volume: half the memory of int64 for the same gather
        # speed (the backward's index_copy_ widens one block at a time).
        block_rows, block_width = block_shape(len(self.offsets), self.volume_shape, where.type)
        in_scratch = len(self.offsets) * block_width
        pattern = row_major_pattern(
            self.offsets,
            self.volume_shape,
            index_dtype=index_dtype,
            value_index_dtype=torch.int32 if in_scratch <= INT32_MAX else torch.int64,
            device=where,
            block_rows=block_rows,
            block_width=block_width,
            with_coo=not csr,
        )
        self._blocks: RowBlocks = row_blocks(len(self.offsets), self.volume_shape, pattern.crow)
        if csr:
            self.register_buffer("crow_indices", pattern.crow, persistent=False)
            self.register_buffer("col_indices", pattern.cols, persistent=False)
        else:
            self.register_buffer("indices", pattern.coo, persistent=False)
        self.register_buffer("value_index", pattern.value_index, persistent=False)

    @property
    def device(self) -> torch.device:
        """The device of the pattern (and of the values the encoder accepts)."""
        return self.value_index.device

    @property
    def values_shape(self) -> tuple[int, ...]:
        """``(N_offsets, C, *spatial)``: the shape of one item of the values tensor."""
        return self._values_shape

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """The sparse matrix holding ``values``.

        Parameters
        ----------
        values : torch.Tensor
            float32 or float64, ``(N_offsets, C, *spatial)`` or batched
            ``(B, N_offsets, C, *spatial)``, on the encoder's device.

        Returns
        -------
        torch.Tensor
            Sparse ``(V, V)`` or ``(B, V, V)`` in the encoder's layout (CSR with its
            index dtype; COO coalesced), differentiable in ``values``.

        Raises
        ------
        TypeError
            ``values`` is not a dense tensor.
        ValueError
            Wrong shape, a dtype other than float32/float64, another device.
        """
        fn = "PairwiseEncoder.forward"
        values = check_values(fn, values, self.values_shape, self.device)
        nvox = self.volume_numel
        if values.dim() == len(self.values_shape):
            flat = gather(values.reshape(-1), self.value_index, self._blocks)
            if self.layout == torch.sparse_csr:
                return tc.sparse_csr_tensor(
                    self.crow_indices, self.col_indices, flat, (nvox, nvox), check_invariants=False
                )
            return tc.sparse_coo_tensor(
                self.indices, flat, (nvox, nvox), is_coalesced=True, check_invariants=False
            )
        batch = values.shape[0]
        flat = gather(values.reshape(batch, -1), self.value_index, self._blocks)  # (B, nnz)
        size = (batch, nvox, nvox)
        if self.layout == torch.sparse_csr:
            crow = self.crow_indices.expand(batch, -1).contiguous()
            col = self.col_indices.expand(batch, -1).contiguous()
            return tc.sparse_csr_tensor(crow, col, flat, size, check_invariants=False)
        nnz = self.indices.shape[1]
        indices = torch.empty((3, batch * nnz), dtype=torch.int64, device=self.device)
        indices[0] = torch.arange(batch, device=self.device).repeat_interleave(nnz)
        indices[1:].view(2, batch, nnz).copy_(self.indices[:, None, :])
        return tc.sparse_coo_tensor(
            indices, flat.reshape(-1), size, is_coalesced=True, check_invariants=False
        )

    def extra_repr(self) -> str:
        layout = "sparse_csr" if self.layout == torch.sparse_csr else "sparse_coo"
        return (
            f"radius={self.radius:g}, volume_shape={self.volume_shape}, diag={self.diag}, "
            f"upper={self.upper}, channel_voxel_relation={self.channel_voxel_relation!r}, "
            f"layout=torch.{layout}, indices_dtype={self.indices_dtype}, "
            f"offsets={len(self.offsets)}, nnz={self.nnz}"
        )
