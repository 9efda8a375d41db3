"""0.2's ``torchsparsegradutils.encoders``.

``PairwiseVoxelEncoder`` (0.2's deprecated 4D-only encoder) and ``calc_pairwise_coo_indices``
(with its misspelt alias ``calc_pariwise_coo_indices``) still resolve, with a
DeprecationWarning, to :class:`PairwiseEncoder` and 0.2's 4D ``calc_pairwise_coo_indices``.
"""

from tsgu.encoders import PairwiseEncoder, calc_pairwise_coo_indices_nd

from .._deprecated import forwarding
from . import pairwise_encoder

__all__ = ["PairwiseEncoder", "calc_pairwise_coo_indices_nd", "pairwise_encoder"]

__getattr__ = forwarding(
    __name__,
    {
        "PairwiseVoxelEncoder": (lambda: PairwiseEncoder, "PairwiseEncoder"),
        "calc_pairwise_coo_indices": (
            lambda: pairwise_encoder.calc_pairwise_coo_indices,
            "calc_pairwise_coo_indices_nd",
        ),
        "calc_pariwise_coo_indices": (
            lambda: pairwise_encoder.calc_pairwise_coo_indices,
            "calc_pairwise_coo_indices_nd",
        ),
    },
)
