"""Kernel paths that tests and benchmarks can pin: one context manager for every choice.

An operation with two ways to compute the same thing (torch's triangular kernel or a
level-scheduled solve; a grouped GEMM or a padded batched product) picks one by itself.
Tests must run each path on every machine, so each such choice is a :class:`KernelChoice`
whose :meth:`~KernelChoice.force` pins it for a ``with`` block and restores it after,
instead of a module global that tests overwrite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["KernelChoice"]


class KernelChoice:
    """The paths of one operation, and which one (if any) is pinned now.

    Parameters
    ----------
    name : str
        What the choice is about, for messages (``"sparse_triangular_solve"``).
    paths : tuple of str
        The path names.

    Examples
    --------
    >>> from tsgu.core.extend import KernelChoice
    >>> SOLVE_PATHS = KernelChoice("my_solve", ("kernel", "fallback"))
    >>> SOLVE_PATHS.forced() is None  # the operation chooses by itself
    True
    >>> with SOLVE_PATHS.force("fallback"):
    ...     SOLVE_PATHS.forced()
    'fallback'
    >>> SOLVE_PATHS.forced() is None
    True
    """

    def __init__(self, name: str, paths: tuple[str, ...]) -> None:
        self.name = name
        self.paths = tuple(paths)
        self._forced: str | None = None

    def forced(self) -> str | None:
        """The pinned path, or None when the operation chooses by itself."""
        return self._forced

    @contextmanager
    def force(self, path: str | None) -> Iterator[None]:
        """Pin ``path`` (None: the automatic choice) inside a ``with`` block."""
        if path is not None and path not in self.paths:
            raise ValueError(
                f"{self.name}: path must be one of {', '.join(map(repr, self.paths))} or None, "
                f"got {path!r}; pick one of those"
            )
        previous, self._forced = self._forced, path
        try:
            yield
        finally:
            self._forced = previous

    def __repr__(self) -> str:
        return f"KernelChoice({self.name!r}, {self.paths!r}, forced={self._forced!r})"
