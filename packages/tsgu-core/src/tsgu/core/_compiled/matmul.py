"""``sparse_mm`` on :class:`~tsgu.core._compiled.parts.SparseParts`: one ``tsgu::spmm`` call."""

from __future__ import annotations

import torch

from .parts import SparseParts
from .products import spmm

__all__ = ["parts_mm"]


def parts_mm(A: SparseParts, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` for checked parts ``A`` and dense ``B`` (the shapes sparse_mm takes)."""
    parts = A.args()
    values = A.values().reshape(-1)
    if B.dim() == 1:
        return spmm(*parts, values, B.unsqueeze(1), False).squeeze(1)
    if A.dim() == 2:
        return spmm(*parts, values, B, False)
    b, n, k = A.shape[0], A.shape[1], B.shape[-1]
    return spmm(*parts, values, B.reshape(-1, k), False).reshape(b, n, k)
