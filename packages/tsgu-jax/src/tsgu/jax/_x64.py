"""JAX's 64-bit mode: read it, and refuse 64-bit data when it is off.

Without ``jax_enable_x64`` JAX holds no 64-bit numbers: ``jax.dlpack.from_dlpack`` turns a
float64 tensor into float32 and an int64 one into int32, without a word. tsgu never lets
that happen to a user's data (the result would be silently less accurate), and never turns
the mode on for the user either (it is process-wide and changes every other JAX
computation's dtypes).
"""

from __future__ import annotations

import jax
import torch

__all__ = ["X64_FIX", "require_x64_for", "x64_enabled"]

X64_FIX = (
    'enable JAX\'s 64-bit mode first with jax.config.update("jax_enable_x64", True) '
    "(or the environment variable JAX_ENABLE_X64=1, or the jax.enable_x64() context), "
    "or cast to a 32-bit dtype yourself"
)

_NEEDS_X64 = (torch.float64, torch.int64, torch.complex128)


def x64_enabled() -> bool:
    """Whether JAX's 64-bit mode is on here (a ``jax.enable_x64`` context counts)."""
    return bool(jax.config.read("jax_enable_x64"))


def require_x64_for(fn: str, name: str, dtype: torch.dtype) -> None:
    """Raise ValueError when ``dtype`` needs JAX's 64-bit mode and it is off."""
    if dtype in _NEEDS_X64 and not x64_enabled():
        raise ValueError(
            f"{fn}: {name} has dtype {dtype}, which JAX holds only in 64-bit mode, and "
            f"jax_enable_x64 is off (JAX would silently downcast it); {X64_FIX}"
        )
