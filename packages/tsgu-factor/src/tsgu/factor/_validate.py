"""Input checks of tsgu.factor: every error names the function, the argument, what was
expected, what came, and the fix."""

from __future__ import annotations

import torch

__all__ = ["KINDS", "check_finite", "check_kind", "check_matrix", "check_rhs"]

KINDS = ("lu", "cholesky", "ldl")
_LAYOUTS = (torch.sparse_coo, torch.sparse_csr)


def check_kind(fn: str, kind: object) -> str:
    if kind not in KINDS:
        raise ValueError(
            f"{fn}: kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}; "
            "use 'cholesky' for symmetric positive definite, 'ldl' for symmetric, 'lu' otherwise"
        )
    assert isinstance(kind, str)
    return kind


def check_matrix(fn: str, A: object) -> torch.Tensor:
    """A sparse COO/CSR, 2D, square, float32/float64 tensor."""
    if not isinstance(A, torch.Tensor):
        raise TypeError(
            f"{fn}: A must be a sparse COO or CSR tensor, got {type(A).__name__}; "
            "build one with tsgu.core.sparse_csr_tensor"
        )
    if A.layout not in _LAYOUTS:
        raise TypeError(
            f"{fn}: A must be a sparse COO or CSR tensor, got layout {A.layout}; "
            "convert with A.to_sparse_csr()"
        )
    if A.dim() != 2:
        raise ValueError(
            f"{fn}: A must be 2D (n, n), got shape {tuple(A.shape)}; factorize each matrix "
            "of a batch on its own"
        )
    if A.shape[0] != A.shape[1]:
        raise ValueError(
            f"{fn}: A must be square, got shape {tuple(A.shape)}; a factorization solves "
            "square systems (use tsgu.core.sparse_generic_lstsq for least squares)"
        )
    if A.dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"{fn}: A must have dtype float32 or float64, got {A.dtype}; convert with "
            "A.to(torch.float64)"
        )
    return A


def check_finite(fn: str, values: torch.Tensor) -> None:
    if not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(
            f"{fn}: A's values must be finite, got {bad} NaN or Inf value(s); fix them "
            "before factorizing"
        )


def check_rhs(fn: str, B: object, n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if not isinstance(B, torch.Tensor) or B.layout != torch.strided:
        got = type(B).__name__ if not isinstance(B, torch.Tensor) else f"layout {B.layout}"
        raise TypeError(f"{fn}: B must be a dense tensor, got {got}; convert with B.to_dense()")
    if B.dim() not in (1, 2) or B.shape[0] != n:
        raise ValueError(
            f"{fn}: B must have shape ({n},) or ({n}, k), got {tuple(B.shape)}; "
            "one column per right-hand side"
        )
    if B.dtype != dtype:
        raise ValueError(
            f"{fn}: A and B must have the same dtype, got {dtype} and {B.dtype}; "
            f"cast it with B.to({dtype})"
        )
    if B.device != device:
        raise ValueError(
            f"{fn}: A and B must be on the same device, got {device} and {B.device}; "
            f"move B with B.to({str(device)!r})"
        )
    return B
