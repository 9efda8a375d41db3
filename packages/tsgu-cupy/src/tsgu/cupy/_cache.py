"""A small cache of LU factorizations, keyed by the very tensor A and the state of its values.

A hit needs the same tensor object (held by a weak reference, so the cache never keeps a
matrix alive and an id reused by a new tensor never matches), unchanged version counters
of A and of its value and index tensors, the same buffers, and values and indices equal
to a snapshot taken at factorization time. Version counters see every in-place change
made through torch (``A.values().mul_(2)``, an optimizer step); the snapshot also sees
changes that bypass them (writes through ``.data``, through a NumPy view, or to the
values leaf of a matrix built with tsgu's constructors, whose storage A shares). The
check is O(nnz): small beside the factorization it saves.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from tsgu.core.validation import COO

from ._factor import Factor

__all__ = ["CAPACITY", "FactorCache", "factor_cache"]

CAPACITY = 4  # factorizations can be large: keep only the few most recent matrices


def _parts(A: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if A.layout == COO:
        return (A._values(), A._indices())
    return (A.values(), A.crow_indices(), A.col_indices())


def _stamp(A: torch.Tensor) -> tuple[Any, ...]:
    parts = _parts(A)
    return (
        A._version,
        tuple(p._version for p in parts),
        tuple(p.data_ptr() for p in parts),
        A.is_coalesced() if A.layout == COO else None,
    )


@dataclass
class _Entry:
    ref: weakref.ref[torch.Tensor]
    stamp: tuple[Any, ...]
    snapshot: tuple[torch.Tensor, ...]
    options: dict[str, Any]
    factor: Factor


class FactorCache:
    """LRU map from a live sparse tensor to the factorization of its current values."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        # Re-entrant: a weak-reference callback may run (garbage collection) under the lock.
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def get(self, A: torch.Tensor, options: dict[str, Any]) -> Factor | None:
        """The factorization of A's current values with ``options``, or None."""
        key = id(A)
        with self._lock:
            entry = self._entries.get(key)
        fresh = (
            entry is not None
            and entry.ref() is A
            and entry.options == options
            and entry.stamp == _stamp(A)
            and all(
                torch.equal(now.detach(), then)
                for now, then in zip(_parts(A), entry.snapshot, strict=True)
            )
        )
        with self._lock:
            if not fresh:
                if entry is not None and self._entries.get(key) is entry:
                    del self._entries[key]  # stale: never hand it out again
                self.misses += 1
                return None
            assert entry is not None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.factor

    def put(self, A: torch.Tensor, options: dict[str, Any], factor: Factor) -> None:
        """Remember ``factor`` as the factorization of A's current values."""
        key = id(A)

        def forget(_: object) -> None:
            with self._lock:
                if self._entries.get(key) is entry:
                    del self._entries[key]

        snapshot = tuple(p.detach().clone() for p in _parts(A))
        entry = _Entry(weakref.ref(A, forget), _stamp(A), snapshot, dict(options), factor)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


factor_cache = FactorCache()
