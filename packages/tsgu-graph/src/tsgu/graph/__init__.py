"""tsgu.graph: segment_mm and gather_mm with autograd, in pure PyTorch.

Heterogeneous graph networks (RGCN, HGT) multiply each node or edge feature by the weight
of its type. :func:`segment_mm` does it for rows sorted by type, :func:`gather_mm` for rows
in any order, as ``dgl.ops`` defines them, on any torch >= 2.5 and device, with gradients
of any order.
"""

from ._gather_mm import gather_mm
from ._segment_mm import segment_mm

__version__ = "0.1.0"

__all__ = ["__version__", "gather_mm", "segment_mm"]
