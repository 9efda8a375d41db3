"""The parts of a sparse matrix, as they travel through a compiled region.

:class:`SparseParts` is what tsgu's constructors return while ``torch.compile`` traces: a
plain object over the index tensors and the values, which Dynamo traces like any Python
object, and which every tsgu operation accepts in place of a sparse tensor. Its index
structure is checked when an op first runs on it (the constructors cannot read index values
while tracing), once while the same index tensors come back.
"""

from __future__ import annotations

import weakref
from typing import Any, cast

import torch

from .._pattern import Pattern, attach_values
from .._structure import _dropper, check_index_inputs
from ..validation import COO, CSC, CSR

__all__ = [
    "LAYOUTS",
    "SparseParts",
    "check_parts",
    "nnz_of",
    "pattern_of",
    "sparse_of",
    "tensor_of",
]

# custom ops take a layout as a string
LAYOUTS = {COO: "coo", CSR: "csr", CSC: "csc"}
_BY_NAME = {name: layout for layout, name in LAYOUTS.items()}
_CONSTRUCTOR = {"coo": "sparse_coo_tensor", "csr": "sparse_csr_tensor", "csc": "sparse_csc_tensor"}


class SparseParts:
    """A sparse COO, CSR or CSC matrix (or batch) as its parts, inside a compiled region.

    ``indices`` is ``(indices,)`` for COO, ``(crow_indices, col_indices)`` for CSR and
    ``(ccol_indices, row_indices)`` for CSC, as given to the constructor; ``values`` is the
    (differentiable) values tensor; ``shape`` is ``(n, m)`` or ``(b, n, m)``.
    """

    def __init__(
        self,
        layout: torch.layout,
        indices: tuple[torch.Tensor, ...],
        values: torch.Tensor,
        shape: tuple[int, ...],
    ) -> None:
        self.layout = layout
        self.indices = indices
        self._values = values
        self.shape = torch.Size(shape)

    @property
    def dtype(self) -> torch.dtype:
        return self._values.dtype

    @property
    def device(self) -> torch.device:
        return self._values.device

    @property
    def requires_grad(self) -> bool:
        return self._values.requires_grad

    def dim(self) -> int:
        return len(self.shape)

    def values(self) -> torch.Tensor:
        """The values, differentiable, as given to the constructor."""
        return self._values

    def args(self) -> tuple[str, torch.Tensor, torch.Tensor | None, list[int]]:
        """``(layout, index0, index1, shape)``: how a custom op takes the pattern."""
        second = self.indices[1] if len(self.indices) == 2 else None
        return LAYOUTS[self.layout], self.indices[0], second, list(self.shape)

    def __repr__(self) -> str:
        return f"SparseParts(layout={self.layout}, shape={tuple(self.shape)}, dtype={self.dtype})"


def nnz_of(layout: str, index0: torch.Tensor, index1: torch.Tensor | None) -> int:
    """Stored values over the whole batch, from the index tensors' shapes only."""
    if layout == "coo":
        return int(index0.shape[1])
    assert index1 is not None
    return int(index1.numel())


def sparse_of(
    layout: str,
    index0: torch.Tensor,
    index1: torch.Tensor | None,
    shape: list[int],
    values: torch.Tensor,
) -> tuple[torch.Tensor, Pattern]:
    """The torch sparse tensor holding ``values`` (flat, no autograd) at a set of parts, and
    its :class:`Pattern`; the indices are checked first (once while they stay unchanged)."""
    index_tensors = (index0,) if index1 is None else (index0, index1)
    check_index_inputs(_CONSTRUCTOR[layout], _BY_NAME[layout], index_tensors, shape)
    if layout == "coo":
        raw = torch.sparse_coo_tensor(index0, values.reshape(-1), shape)
    else:
        assert index1 is not None
        build = torch.sparse_csr_tensor if layout == "csr" else torch.sparse_csc_tensor
        raw = build(index0, index1, values.reshape(index1.shape), shape, check_invariants=False)
    return raw, _pattern(layout, index_tensors, shape, raw)


# Patterns of the index tensors that ops met last, keyed by the id of the last one (held
# weakly: an entry dies with it; the others are held and compared by identity), valid while
# their version counters stay. A compiled graph hands its ops the same index tensors (a
# SparseParameter's buffers) at every call and in the backward, so the sorted and
# compressed forms a pattern caches (the transpose's above all) are made once, not per op.
_PATTERNS: dict[int, tuple[Any, ...]] = {}
_MAX_PATTERNS = 16


def _pattern(
    layout: str, index_tensors: tuple[torch.Tensor, ...], shape: list[int], raw: torch.Tensor
) -> Pattern:
    last, others = index_tensors[-1], index_tensors[:-1]
    try:
        versions = tuple(t._version for t in index_tensors)
    except RuntimeError:  # inference tensors keep no version counter: never cached
        return Pattern.of(raw)
    signature = (layout, tuple(shape), versions)
    entry = _PATTERNS.get(id(last))
    if entry is not None:
        ref, then_others, then_signature, pattern = entry
        if (
            ref() is last
            and then_signature == signature
            and all(a is b for a, b in zip(others, then_others, strict=True))
        ):
            return cast(Pattern, pattern)
    pattern = Pattern.of(raw)
    if len(_PATTERNS) >= _MAX_PATTERNS:
        _PATTERNS.pop(next(iter(_PATTERNS)))
    key = id(last)
    _PATTERNS[key] = (weakref.ref(last, _dropper(_PATTERNS, key)), others, signature, pattern)
    return pattern


def pattern_of(
    layout: str,
    index0: torch.Tensor,
    index1: torch.Tensor | None,
    shape: list[int],
    like: torch.Tensor,
) -> Pattern:
    """The :class:`Pattern` of a set of parts, its indices checked first (cached).

    ``like`` gives the dtype and device of the placeholder values the pattern is read from.
    """
    placeholder = like.new_zeros(nnz_of(layout, index0, index1))
    return sparse_of(layout, index0, index1, shape, placeholder)[1]


def check_parts(
    fn: str,
    name: str,
    A: SparseParts,
    layouts: tuple[torch.layout, ...],
    dims: tuple[int, ...] = (2, 3),
) -> torch.Tensor:
    """``A``'s layout and dimensions, as :func:`tsgu.core.validation.check_sparse` checks a
    sparse tensor's (its index structure is checked when an op first runs on it).

    Returned typed as the tensor it stands for: the checks that follow in an entry point
    read only its shape, dtype and device, which it has.
    """
    if A.layout not in layouts:
        names = " or ".join(LAYOUTS[layout].upper() for layout in layouts)
        raise TypeError(
            f"{fn}: {name} must be a sparse {names} tensor, got layout {A.layout}; "
            "build it with another of tsgu's constructors"
        )
    if A.dim() not in dims:
        raise ValueError(
            f"{fn}: {name} must have {' or '.join(map(str, dims))} dimensions, "
            f"got shape {tuple(A.shape)}; reshape it"
        )
    return cast(torch.Tensor, A)


def tensor_of(layout: torch.layout, tensors: list[torch.Tensor], shape: list[int]) -> torch.Tensor:
    """The sparse tensor of ``tensors`` = (index tensors..., values), differentiable in the
    values as tsgu's constructors make it: what a registered eager function computes on."""
    *index_tensors, values = tensors
    second = index_tensors[1] if len(index_tensors) == 2 else None
    raw, _ = sparse_of(LAYOUTS[layout], index_tensors[0], second, shape, values.detach())
    return attach_values(raw, values.reshape(raw.values().shape if layout != COO else (-1,)))
