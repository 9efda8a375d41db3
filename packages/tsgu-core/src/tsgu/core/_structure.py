"""The index structure of a sparse tensor: bounds, row pointers, batches, checked in O(nnz).

torch builds sparse tensors without checking their indices unless asked, and its kernels
trust them: a column index past the last column reads memory it does not own (or crashes
the process), a decreasing row pointer gives silent zeros. Every tsgu entry point checks the
structure of each sparse input here, with vectorised reductions and one host read, and
raises a :class:`ValueError` that names the first bad index.

The verdict is cached per tensor *object*, never per address (freed memory is reused by
other tensors): a table keyed by ``id(A)`` holds a weak reference to A, so an entry dies
with its tensor, and the index tensors A had when checked, so their memory cannot be reused
while the entry lives. A verdict holds while A keeps those very index tensors, its shape,
and the version counters of its index tensors (an in-place edit through ``A._indices()``,
``A.col_indices()`` or anything sharing their counters invalidates it). An index tensor
handed to torch's own constructor shares A's memory but not its counter, so editing *it* in
place afterwards goes unseen: build A again (tsgu's constructors watch the tensors they
are given) or call :func:`forget`.

Nothing is stored on the tensor itself: an attribute would travel through ``torch.save``
and a crafted file could carry a forged verdict.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

COO = torch.sparse_coo
CSR = torch.sparse_csr
CSC = torch.sparse_csc

__all__ = [
    "check_compressed_indices",
    "check_coo_indices",
    "check_structure",
    "forget",
    "mark_checked",
]

_FIX = "a malformed sparse tensor: fix the indices it was built from"


@dataclass(frozen=True)
class _Verdict:
    shape: tuple[int, ...]
    coalesced: bool
    held: tuple[torch.Tensor, ...]  # A's index tensors when checked (kept alive)
    watched: tuple[torch.Tensor, ...]  # held, and the constructor inputs they share memory with
    versions: tuple[int, ...]


_VERDICTS: dict[int, tuple[weakref.ref[torch.Tensor], _Verdict]] = {}


def _index_tensors(A: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if A.layout == COO:
        return (A._indices(),)
    if A.layout == CSR:
        return (A.crow_indices(), A.col_indices())
    return (A.ccol_indices(), A.row_indices())


def _holds(A: torch.Tensor) -> bool:
    entry = _VERDICTS.get(id(A))
    if entry is None or entry[0]() is not A:
        return False
    verdict = entry[1]
    if tuple(A.shape) != verdict.shape:
        return False
    if A.layout == COO and not verdict.coalesced and A.is_coalesced():
        return False
    for now, then in zip(_index_tensors(A), verdict.held, strict=True):
        if now.data_ptr() != then.data_ptr() or now.shape != then.shape or now.dtype != then.dtype:
            return False
    return all(t._version == v for t, v in zip(verdict.watched, verdict.versions, strict=True))


def _dropper(table: dict[int, Any], key: int) -> Callable[[object], None]:
    """A weakref callback that drops ``table[key]`` when its tensor dies."""

    def drop(_: object) -> None:
        table.pop(key, None)

    return drop


def mark_checked(A: torch.Tensor, inputs: Sequence[torch.Tensor] = ()) -> None:
    """Record that sparse ``A``'s structure is valid (it was just checked, or built from
    checked ``inputs``, whose version counters are then watched too)."""
    held = _index_tensors(A)
    watched = (*held, *inputs)
    try:
        versions = tuple(t._version for t in watched)
    except RuntimeError:  # inference tensors keep no version counter: never cached
        return
    key = id(A)
    verdict = _Verdict(
        tuple(A.shape), A.layout == COO and A.is_coalesced(), held, watched, versions
    )
    _VERDICTS[key] = (weakref.ref(A, _dropper(_VERDICTS, key)), verdict)


def forget(A: torch.Tensor) -> None:
    """Drop the cached verdict of ``A``: its next use checks its indices again."""
    entry = _VERDICTS.get(id(A))
    if entry is not None and entry[0]() is A:
        del _VERDICTS[id(A)]


# ------------------------------------------------------------------------- the checks
def _prefix(fn: str, name: str) -> str:
    return f"{fn}: {name}: " if name else f"{fn}: "


def _first(mask: torch.Tensor) -> int:
    return int(torch.nonzero(mask.reshape(-1))[0, 0])


def _at(shape: Sequence[int], flat: int) -> str:
    """``[i]`` or ``[i, j]``: the position of flat index ``flat`` in a tensor of ``shape``."""
    idx = []
    for size in reversed(shape):
        idx.append(flat % size)
        flat //= size
    return "[" + ", ".join(str(i) for i in reversed(idx)) + "]"


def _all(conditions: list[torch.Tensor]) -> bool:
    """Whether every condition holds: one host read for all of them."""
    if not conditions:
        return True
    return bool(torch.stack([c.reshape(()) for c in conditions]).all())


def _in_range(t: torch.Tensor, size: int) -> list[torch.Tensor]:
    if t.numel() == 0:
        return []
    lo, hi = torch.aminmax(t)
    return [lo >= 0, hi < size]


def _bad_entry(fn: str, name: str, what: str, t: torch.Tensor, size: int, unit: str) -> str:
    flat = _first((t < 0) | (t >= size))
    value = int(t.reshape(-1)[flat])
    return (
        f"{_prefix(fn, name)}{what}{_at(t.shape, flat)} = {value} is out of range for "
        f"{size} {unit} ({_FIX})"
    )


def check_compressed_indices(
    fn: str,
    name: str,
    compressed: torch.Tensor,
    plain: torch.Tensor,
    shape: Sequence[int],
    layout: torch.layout = CSR,
) -> None:
    """Row pointers (column pointers for CSC) and plain indices of a compressed tensor.

    Every matrix's pointers start at 0, never decrease and end at its nnz; every plain index
    lies in ``[0, size)``. Raises ValueError naming the first bad index.
    """
    names = ("crow_indices", "col_indices") if layout == CSR else ("ccol_indices", "row_indices")
    units = ("rows", "columns") if layout == CSR else ("columns", "rows")
    n_compressed = shape[-2] if layout == CSR else shape[-1]
    n_plain = shape[-1] if layout == CSR else shape[-2]
    for label, t in zip(names, (compressed, plain), strict=True):
        if t.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"{_prefix(fn, name)}{label} must have dtype int32 or int64, got {t.dtype}"
            )
    if compressed.shape[-1] != n_compressed + 1:
        raise ValueError(
            f"{_prefix(fn, name)}{names[0]} must have {n_compressed + 1} entries per matrix "
            f"({n_compressed} {units[0]}), got shape {tuple(compressed.shape)}"
        )
    if compressed.shape[:-1] != plain.shape[:-1]:
        raise ValueError(
            f"{_prefix(fn, name)}{names[0]} and {names[1]} must have the same batch shape, "
            f"got {tuple(compressed.shape)} and {tuple(plain.shape)}"
        )
    nnz = plain.shape[-1]
    first, last = compressed[..., 0], compressed[..., -1]
    steps = compressed[..., 1:] >= compressed[..., :-1]
    conditions = [(first == 0).all(), (last == nnz).all(), steps.all()]
    conditions += _in_range(plain, n_plain)
    if _all(conditions):
        return
    # Slow path, only for a malformed tensor: find the first problem and name it.
    batch = compressed.dim() == 2
    if not bool((first == 0).all()):
        k = _first(first != 0)
        where = f"[{k}, 0]" if batch else "[0]"
        got = int(first.reshape(-1)[k])
        raise ValueError(f"{_prefix(fn, name)}{names[0]}{where} must be 0, got {got} ({_FIX})")
    if not bool(steps.all()):
        flat = _first(~steps)
        pos = _at(steps.shape, flat)
        before = compressed.reshape(-1, compressed.shape[-1])[flat // steps.shape[-1]]
        j = flat % steps.shape[-1]
        raise ValueError(
            f"{_prefix(fn, name)}{names[0]} must not decrease, got {names[0]}{pos} = "
            f"{int(before[j])} followed by {int(before[j + 1])} ({_FIX})"
        )
    if not bool((last == nnz).all()):
        k = _first(last != nnz)
        where = f"[{k}, -1]" if batch else "[-1]"
        raise ValueError(
            f"{_prefix(fn, name)}{names[0]}{where} must equal nnz = {nnz} (the length of "
            f"{names[1]}), got {int(last.reshape(-1)[k])} ({_FIX})"
        )
    raise ValueError(_bad_entry(fn, name, names[1], plain, n_plain, units[1]))


def _coo_units(dims: int) -> tuple[str, ...]:
    return ("batch items", "rows", "columns") if dims == 3 else ("rows", "columns")


def check_coo_indices(
    fn: str, name: str, indices: torch.Tensor, shape: Sequence[int], coalesced: bool = False
) -> None:
    """COO indices ``(len(shape), nnz)``: each row within its dimension; when flagged
    coalesced, sorted and unique (torch's kernels trust the flag). ValueError otherwise."""
    if indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"{_prefix(fn, name)}indices must have dtype int32 or int64, got {indices.dtype}"
        )
    if indices.dim() != 2 or indices.shape[0] != len(shape):
        raise ValueError(
            f"{_prefix(fn, name)}indices must have shape ({len(shape)}, nnz), "
            f"got {tuple(indices.shape)}"
        )
    nnz = indices.shape[1]
    if nnz == 0:
        return
    increasing: bool | None = None
    conditions: list[torch.Tensor] = []
    if coalesced and nnz > 1:
        # Sorted keys with every later dimension in range make the first dimension
        # non-decreasing: its two ends bound it, and one reduction pass is saved.
        conditions.append(_all_increasing(indices, shape))
        increasing = True
        first = indices[0]
        conditions += [first[0] >= 0, first[-1] < shape[0]]
        later = range(1, len(shape))
    else:
        later = range(len(shape))
    for d in later:  # each row is contiguous: aminmax over it needs no temporary
        conditions += _in_range(indices[d], shape[d])
    if _all(conditions):
        return
    units = _coo_units(len(shape))
    for d, size in enumerate(shape):
        row = indices[d]
        if bool(((row < 0) | (row >= size)).any()):
            flat = _first((row < 0) | (row >= size))
            raise ValueError(
                f"{_prefix(fn, name)}indices[{d}, {flat}] = {int(row[flat])} is out of range for "
                f"{size} {units[d]} ({_FIX})"
            )
    assert increasing is not None
    k = _first(~_increasing(indices, shape))
    raise ValueError(
        f"{fn}: {name or 'the tensor'} is flagged coalesced but its indices are not sorted "
        f"and unique (entries {k} and {k + 1}), a malformed sparse tensor; build it with "
        "is_coalesced=None, or call .coalesce() on a tensor built without the flag"
    )


def _increasing(indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Whether each COO entry comes strictly after the one before it, in row-major order."""
    a, b = indices[:, :-1], indices[:, 1:]
    later = a[0] < b[0]
    tied = a[0] == b[0]
    for d in range(1, len(shape)):
        later = later | (tied & (a[d] < b[d]))
        tied = tied & (a[d] == b[d])
    return later


def _all_increasing(indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """``_increasing(...).all()`` as a 0-d tensor (no host read): one int64 row-major key per
    entry, each dimension added in one pass (``index[d] + size[d] * key``), then one compare.
    (Chunking it through a reused buffer was slower: the Python overhead of the chunks
    outweighed the page faults of one nnz-sized temporary.)"""
    numel = 1
    for size in shape:
        numel *= size
    if numel >= 2**62:  # keys would overflow int64: compare dimension by dimension
        return _increasing(indices, shape).all()
    keys = torch.add(indices[1], indices[0], alpha=shape[1])
    for d in range(2, len(shape)):
        keys = torch.add(indices[d], keys, alpha=shape[d])
    return torch.gt(keys[1:], keys[:-1]).all()


def _check_now(fn: str, name: str, A: torch.Tensor) -> None:
    shape = tuple(A.shape)
    if A.layout == COO:
        check_coo_indices(fn, name, A._indices(), shape, A.is_coalesced())
    else:
        compressed, plain = _index_tensors(A)
        check_compressed_indices(fn, name, compressed, plain, shape, A.layout)


def check_structure(fn: str, name: str, A: torch.Tensor) -> None:
    """Check (or find cached) the index structure of sparse COO, CSR or CSC ``A``."""
    if A.layout not in (COO, CSR, CSC) or A.device.type == "meta" or _holds(A):
        return  # a meta tensor holds no indices to read
    _check_now(fn, name, A)
    mark_checked(A)


# --------------------------------------------------------------- constructor inputs
# Verdicts on the dense index tensors given to tsgu's constructors, keyed by the id of the
# last one (held weakly); the others are held strongly and compared by identity.
_INPUT_VERDICTS: dict[int, tuple[weakref.ref[torch.Tensor], tuple[object, ...]]] = {}


def _versions(tensors: Sequence[torch.Tensor]) -> tuple[int, ...] | None:
    try:
        return tuple(t._version for t in tensors)
    except RuntimeError:  # inference tensors: never cached
        return None


def check_index_inputs(
    fn: str,
    layout: torch.layout,
    tensors: tuple[torch.Tensor, ...],
    shape: Sequence[int],
    coalesced: bool = False,
) -> None:
    """The index tensors of a sparse tensor about to be built (COO ``(indices,)``, CSR
    ``(crow, col)``, CSC ``(ccol, row)``), checked once while they stay unchanged."""
    if tensors[0].device.type == "meta":  # no indices to read
        return
    last, others = tensors[-1], tensors[:-1]
    signature = (layout, tuple(shape), bool(coalesced))
    entry = _INPUT_VERDICTS.get(id(last))
    versions = _versions(tensors)
    if entry is not None and entry[0]() is last and versions is not None:
        then_signature, then_others, then_versions = entry[1]
        if (
            then_signature == signature
            and len(then_others) == len(others)  # type: ignore[arg-type]
            and all(a is b for a, b in zip(others, then_others, strict=True))  # type: ignore[call-overload]
            and then_versions == versions
        ):
            return
    if layout == COO:
        check_coo_indices(fn, "", tensors[0], shape, coalesced)
    else:
        check_compressed_indices(fn, "", tensors[0], tensors[1], shape, layout)
    if versions is not None:
        key = id(last)
        _INPUT_VERDICTS[key] = (
            weakref.ref(last, _dropper(_INPUT_VERDICTS, key)),
            (signature, others, versions),
        )
