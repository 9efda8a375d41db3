"""Module-level ``__getattr__`` for 0.2 names that are deprecated: warn, then forward."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def forwarding(
    module: str, names: dict[str, tuple[Callable[[], Any], str]]
) -> Callable[[str], Any]:
    """A ``__getattr__`` resolving each deprecated name to its replacement, with a warning.

    ``names`` maps a 0.2 name to (a function returning the object, the name to use instead).
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        get, instead = names[name]
        warnings.warn(
            f"{module}.{name} is deprecated; use {instead}", DeprecationWarning, stacklevel=2
        )
        return get()

    return __getattr__


class FunctionAlias:
    """0.2 exposed its autograd Functions (``SparseMatMul.apply(A, B)``); tsgu's internals
    differ, so the name keeps working through ``apply``, which calls the tsgu function.

    The solves' Functions took the solver options as one trailing dict
    (``SparseGenericSolve.apply(A, B, solve, transpose_solve, kwargs)``): it is unpacked.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def apply(self, *args: Any) -> Any:
        if args and isinstance(args[-1], dict):
            return self.fn(*args[:-1], **args[-1])
        return self.fn(*args)
