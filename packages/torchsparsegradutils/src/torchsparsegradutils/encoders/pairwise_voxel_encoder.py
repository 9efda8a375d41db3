"""0.2's ``torchsparsegradutils.encoders.pairwise_voxel_encoder`` (deprecated there already)."""

from tsgu.encoders import PairwiseEncoder

from .._deprecated import forwarding

__all__: list[str] = []

__getattr__ = forwarding(
    __name__, {"PairwiseVoxelEncoder": (lambda: PairwiseEncoder, "PairwiseEncoder")}
)
