"""0.2's ``torchsparsegradutils.encoders.pairwise_encoder``."""

from tsgu.encoders import PairwiseEncoder, calc_pairwise_coo_indices_nd

__all__ = ["PairwiseEncoder", "calc_pairwise_coo_indices_nd"]
