"""0.2's ``torchsparsegradutils.encoders.pairwise_voxel_encoder`` (deprecated there already).

``PairwiseVoxelEncoder`` resolves, with a DeprecationWarning, to :class:`PairwiseEncoder`;
the other names are those of :mod:`.pairwise_encoder`, which 0.2's module imported.
"""

from .._deprecated import forwarding
from .pairwise_encoder import (
    PairwiseEncoder,
    calc_pairwise_coo_indices,
    calc_pairwise_coo_indices_nd,
    calc_pariwise_coo_indices,
)

__all__ = [
    "PairwiseEncoder",
    "calc_pairwise_coo_indices",
    "calc_pairwise_coo_indices_nd",
    "calc_pariwise_coo_indices",
]

__getattr__ = forwarding(
    __name__, {"PairwiseVoxelEncoder": (lambda: PairwiseEncoder, "PairwiseEncoder")}
)
