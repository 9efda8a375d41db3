"""0.2's ``torchsparsegradutils.indexed_matmul``."""

from tsgu.graph import gather_mm, segment_mm

__all__ = ["gather_mm", "segment_mm"]
