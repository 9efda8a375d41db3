"""0.2's ``torchsparsegradutils.indexed_matmul``: tsgu.graph's ``gather_mm`` and ``segment_mm``.

Examples
--------
>>> import torch
>>> from torchsparsegradutils.indexed_matmul import gather_mm, segment_mm
>>> a, b = torch.ones(3, 2), torch.stack([torch.eye(2), 2 * torch.eye(2)])
>>> gather_mm(a, b, idx_b=torch.tensor([0, 1, 1]))
tensor([[1., 1.],
        [2., 2.],
        [2., 2.]])
>>> segment_mm(a, b, seglen_a=torch.tensor([1, 2]))
tensor([[1., 1.],
        [2., 2.],
        [2., 2.]])
"""

from tsgu.graph import gather_mm, segment_mm

__all__ = ["gather_mm", "segment_mm"]
