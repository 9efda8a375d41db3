"""Exceptions that satisfy both tsgu's error type and the one 0.2 raised."""

from __future__ import annotations

import torch

__all__ = ["ArgumentTypeError", "check_operator"]


class ArgumentTypeError(TypeError, RuntimeError):
    """An argument of the wrong type: a ``TypeError``, as tsgu raises for one, and a
    ``RuntimeError``, as 0.2's solvers raised (code that catches either keeps working)."""


def check_operator(fn: str, name: str, value: object) -> None:
    """Raise unless ``value`` is a tensor or a callable (0.2's solvers' operator check)."""
    if not isinstance(value, torch.Tensor) and not callable(value):
        raise ArgumentTypeError(
            f"{fn}: {name} must be a tensor, or a callable object, got {type(value).__name__}"
        )
