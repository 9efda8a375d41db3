"""Patterns kept between calls, so a training loop pays for the transposed order once.

The backward of ``sparse_mm`` multiplies by the transpose, whose row-major order is a
stable sort of the column indices: on the 27-point 50³ matrix (3.4M entries) that sort costs
far more than the product itself (0.24-0.86 s against 15-50 ms). A :class:`Pattern` caches
that order (:attr:`Pattern.kernel_form` of its :attr:`Pattern.t`), but a pattern made
afresh at every call forgets it. :func:`cached_pattern` hands back the same pattern for
the same indices, at two levels:

* per tensor *object*, like the structure verdict (``_structure``): a table keyed by
  ``id(A)`` that holds A weakly (the entry dies with A) and A's index tensors strongly (their
  memory cannot be reused while the entry lives). It holds while A keeps those very index
  tensors, its shape and coalesced flag, and their version counters (an in-place edit
  through ``A.col_indices()`` and the like invalidates it; an edit through an index tensor
  handed to torch's own constructor shares A's memory but not its counter and goes unseen,
  as for the structure verdict: build A again, or call ``forget_structure(A)``, which drops
  this entry too). O(1) per call; at most
  :data:`_MAX_OBJECTS` entries, the oldest dropped first.
* per index *content*, for a new tensor on the same index memory (tsgu's constructors and
  ``torch.sparse_csr_tensor`` build a new A from the same index tensors at every training
  step): a small table keyed by the layout, shape, and the address, dtype and shape of
  every index tensor, which keeps a copy of the indices and hands the pattern back only when
  the indices still equal that copy (one O(nnz) comparison, no sort: a ``memcmp`` of the two
  buffers on the CPU, see :func:`same_content`). Memory reused or edited in place, by any
  means (a version counter torch does not share, ``.data``, a NumPy view), is thus never
  mistaken for the cached pattern. At most :data:`_MAX_SHARED` entries
  (least recently used dropped first), so at most that many patterns stay alive.

Nothing is stored on the tensor itself (an attribute would travel through ``torch.save``).

What an operation derives from one or more patterns (the symbolic product of two patterns,
the union of two) is kept by :func:`cached_derived`, keyed by those very pattern objects: a
loop whose operands' patterns come back from :func:`cached_pattern` does no symbolic work
after its first call. At most :data:`_MAX_DERIVED` results (least recently used dropped first).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from ._pattern import Pattern, same_content
from ._structure import _dropper, _index_tensors
from .validation import COO

__all__ = [
    "cached_derived",
    "cached_pattern",
    "cached_patterns",
    "clear_pattern_cache",
    "forget_pattern",
]

_T = TypeVar("_T")

_MAX_SHARED = 4  # patterns kept for new tensors on known index memory
_MAX_OBJECTS = 64  # tensor objects remembered (each entry also dies with its tensor)
_MAX_DERIVED = 8  # results derived from patterns (symbolic products, unions) kept


@dataclass(frozen=True)
class _Entry:
    signature: tuple[object, ...]
    held: tuple[torch.Tensor, ...]  # the index tensors the pattern was made from (kept alive)
    versions: tuple[int, ...]
    pattern: Pattern


_BY_OBJECT: dict[int, tuple[weakref.ref[torch.Tensor], _Entry]] = {}
# (kind, id of each pattern) -> (the patterns, held so that their ids stay theirs, result)
_DERIVED: OrderedDict[tuple[object, ...], tuple[tuple[Pattern, ...], object]] = OrderedDict()
_BY_CONTENT: OrderedDict[tuple[object, ...], tuple[tuple[torch.Tensor, ...], Pattern]] = (
    OrderedDict()
)


def _signature(A: torch.Tensor, index: tuple[torch.Tensor, ...]) -> tuple[object, ...]:
    values = A._values() if A.layout == COO else A.values()
    return (
        A.layout,
        tuple(A.shape),
        A.device,
        A.layout == COO and A.is_coalesced(),
        tuple(values.shape),
        tuple((t.data_ptr(), t.dtype, tuple(t.shape)) for t in index),
    )


def _versions(tensors: tuple[torch.Tensor, ...]) -> tuple[int, ...] | None:
    try:
        return tuple(t._version for t in tensors)
    except RuntimeError:  # inference tensors keep no version counter: never cached
        return None


def cached_pattern(A: torch.Tensor) -> Pattern:
    """``Pattern.of(A)``, or the pattern already made for A (or for A's very indices).

    Sparse COO, CSR or CSC ``A``, already validated. The pattern returned keeps the orders
    it computed (its own row-major form and its transpose's), so they are computed once
    while A, or its index tensors, stay unchanged.
    """
    if A.device.type == "meta":  # no memory to key on, no indices to compare
        return Pattern.of(A)
    index = _index_tensors(A)
    versions = _versions(index)
    try:
        signature = _signature(A, index)
    except RuntimeError:  # tensors without storage (traced, fake): never cached
        return Pattern.of(A)
    if versions is None:
        return Pattern.of(A)
    key = id(A)
    entry = _BY_OBJECT.get(key)
    if entry is not None and entry[0]() is A:
        then = entry[1]
        if then.signature == signature and then.versions == versions:
            return then.pattern
    shared = _BY_CONTENT.get(signature)
    pattern: Pattern | None = None
    if shared is not None:
        snapshot, candidate = shared
        if all(same_content(now, copy) for now, copy in zip(index, snapshot, strict=True)):
            _BY_CONTENT.move_to_end(signature)
            pattern = candidate
    if pattern is None:
        pattern = Pattern.of(A)
        _BY_CONTENT[signature] = (tuple(t.clone() for t in index), pattern)
        _BY_CONTENT.move_to_end(signature)
        while len(_BY_CONTENT) > _MAX_SHARED:
            _BY_CONTENT.popitem(last=False)
    _BY_OBJECT.pop(key, None)
    _BY_OBJECT[key] = (
        weakref.ref(A, _dropper(_BY_OBJECT, key)),
        _Entry(signature, index, versions, pattern),
    )
    while len(_BY_OBJECT) > _MAX_OBJECTS:  # the oldest first
        del _BY_OBJECT[next(iter(_BY_OBJECT))]
    return pattern


def _same_index_memory(A: torch.Tensor, B: torch.Tensor) -> bool:
    """Whether sparse A and B have one layout, shape and coalesced flag and their index
    tensors lie at the very same addresses (same dtypes and shapes): the same indices now."""
    if A.layout != B.layout or A.device != B.device or A.device.type == "meta":
        return False
    try:
        return _signature(A, _index_tensors(A)) == _signature(B, _index_tensors(B))
    except RuntimeError:  # tensors without storage (traced, fake)
        return False


def cached_patterns(*tensors: torch.Tensor) -> tuple[Pattern, ...]:
    """:func:`cached_pattern` of each tensor; a tensor on the same index memory as an earlier
    one (``A @ A`` or ``A + A`` rebuilt from one set of index tensors) gets that one's pattern
    without comparing its indices with the kept copy again (same memory, same indices)."""
    out: list[Pattern] = []
    for i, T in enumerate(tensors):
        for earlier, pattern in zip(tensors[:i], out, strict=True):
            if earlier is T or _same_index_memory(earlier, T):
                out.append(pattern)
                break
        else:
            out.append(cached_pattern(T))
    return tuple(out)


def cached_derived(kind: str, patterns: tuple[Pattern, ...], make: Callable[[], _T]) -> _T:
    """``make()``, or what it returned for the same ``kind`` and the very same pattern objects.

    The entry holds the patterns, so their ids cannot be reused while it lives; patterns made
    afresh (not by :func:`cached_pattern`) never hit. ``make`` must depend on nothing else
    than the patterns (values, dtypes of values and grad modes are not part of the key).
    """
    key = (kind, *(id(p) for p in patterns))
    entry = _DERIVED.get(key)
    if entry is not None and all(a is b for a, b in zip(entry[0], patterns, strict=True)):
        _DERIVED.move_to_end(key)
        return entry[1]  # type: ignore[return-value]  # stored by this function for kind
    result = make()
    _DERIVED[key] = (patterns, result)
    while len(_DERIVED) > _MAX_DERIVED:
        _DERIVED.popitem(last=False)
    return result


def forget_pattern(A: torch.Tensor) -> None:
    """Drop the pattern cached for the tensor object ``A`` (content entries are compared anyway)."""
    entry = _BY_OBJECT.get(id(A))
    if entry is not None and entry[0]() is A:
        del _BY_OBJECT[id(A)]


def clear_pattern_cache() -> None:
    """Forget every cached pattern (their sorted orders are computed again when needed)."""
    _BY_OBJECT.clear()
    _BY_CONTENT.clear()
    _DERIVED.clear()
