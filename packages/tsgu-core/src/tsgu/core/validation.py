"""Input checks shared by every tsgu package.

Each check raises before any work is done, with a message of the form
``"<function>: <argument> must be <expected>, got <actual>; <fix>"``.
Wrong types and layouts raise :class:`TypeError`; shapes, dims, dtypes and
devices that do not fit raise :class:`ValueError`. The satellites' own ``_validate``
modules build on these, so that every tsgu error reads the same way.

Examples
--------
>>> import torch
>>> from tsgu.core.validation import check_sparse
>>> check_sparse("my_op", "A", torch.eye(2))
Traceback (most recent call last):
    ...
TypeError: my_op: A must be a sparse COO or CSR tensor, got layout dense (strided); ...
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from ._structure import check_structure, forget

__all__ = [
    "COO",
    "CSC",
    "CSR",
    "FLOAT_DTYPES",
    "INDEX_DTYPES",
    "check_bools",
    "check_choice",
    "check_count",
    "check_dense",
    "check_device",
    "check_float_dtype",
    "check_index_dtype",
    "check_maxiter",
    "check_operand",
    "check_same_device",
    "check_same_dtype",
    "check_sparse",
    "check_sparse_structure",
    "check_square",
    "check_tensor",
    "check_tolerance",
    "forget_structure",
    "layout_name",
]

COO = torch.sparse_coo
CSR = torch.sparse_csr
CSC = torch.sparse_csc

FLOAT_DTYPES = (torch.float32, torch.float64)
INDEX_DTYPES = (torch.int32, torch.int64)

_LAYOUT_NAMES = {
    torch.strided: "dense (strided)",
    COO: "COO",
    CSR: "CSR",
    CSC: "CSC",
    torch.sparse_bsr: "BSR",
    torch.sparse_bsc: "BSC",
}


def layout_name(layout: torch.layout) -> str:
    """A short human name of a layout: ``"COO"``, ``"CSR"``, ``"dense (strided)"``."""
    return _LAYOUT_NAMES.get(layout, str(layout))


def _names(layouts: Sequence[torch.layout]) -> str:
    names = [layout_name(lay) for lay in layouts]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check_tensor(fn: str, name: str, value: object) -> torch.Tensor:
    """``value`` must be a torch.Tensor (TypeError otherwise)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}; "
            f"convert it with torch.as_tensor({name})"
        )
    return value


def check_sparse(
    fn: str,
    name: str,
    value: object,
    layouts: Sequence[torch.layout] = (COO, CSR),
    dims: Sequence[int] = (2, 3),
) -> torch.Tensor:
    """``value`` must be a sparse tensor of one of ``layouts`` with ``dims`` sparse dimensions,
    with a valid index structure (:func:`check_sparse_structure`).

    Hybrid tensors (with dense dimensions) are rejected: every tsgu operation works on
    matrices whose stored values are scalars.
    """
    t = check_tensor(fn, name, value)
    if t.layout not in layouts:
        fix = ""
        if t.layout == torch.strided:
            fix = f"; convert with {name}.to_sparse_csr() or {name}.to_sparse()"
        elif CSR in layouts:
            fix = f"; convert with {name}.to_sparse_csr()"
        raise TypeError(
            f"{fn}: {name} must be a sparse {_names(layouts)} tensor, "
            f"got layout {layout_name(t.layout)}{fix}"
        )
    if t.dense_dim() != 0:
        raise ValueError(
            f"{fn}: {name} must have scalar values (no dense dimensions), "
            f"got a hybrid tensor with {t.dense_dim()} dense dimension(s); build it with "
            "scalar values (one sparse tensor per dense slice)"
        )
    if t.dim() not in dims:
        raise ValueError(
            f"{fn}: {name} must have {' or '.join(map(str, dims))} dimensions, "
            f"got shape {tuple(t.shape)}; reshape it"
        )
    check_structure(fn, name, t)
    return t


def check_sparse_structure(fn: str, name: str, A: torch.Tensor) -> None:
    """The index structure of sparse ``A`` must be valid, or a ValueError names what is wrong.

    COO: every index within its dimension, and sorted and unique when A is flagged coalesced.
    CSR (CSC): row (column) pointers that start at 0, never decrease and end at each
    matrix's nnz; column (row) indices within range. O(nnz) vectorised work and one host
    read, done once per tensor: the verdict is cached on the tensor object (see
    :func:`forget_structure`), so a training loop or a solver's iterations pay it once.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.validation import check_sparse_structure
    >>> crow, col = torch.tensor([0, 1, 2]), torch.tensor([0, 7])
    >>> A = torch.sparse_csr_tensor(crow, col, torch.ones(2), (2, 3), check_invariants=False)
    >>> check_sparse_structure("my_op", "A", A)
    Traceback (most recent call last):
        ...
    ValueError: my_op: A: col_indices[1] = 7 is out of range for 3 columns (...)
    """
    check_structure(fn, name, A)


def forget_structure(A: torch.Tensor) -> None:
    """Drop the cached structure verdict of ``A`` (its next use checks its indices again),
    and the sparsity pattern ``sparse_mm`` keeps for it.

    Needed only after editing in place an index tensor that was handed to torch's own
    constructor: it shares A's memory but not A's version counter, so the edit goes unseen.
    Edits through ``A``'s own index tensors (``A.col_indices()[...] = ...``) are seen.
    """
    from ._pattern_cache import forget_pattern  # imported here: it imports this module

    forget(A)
    forget_pattern(A)


def check_dense(fn: str, name: str, value: object, dims: Sequence[int]) -> torch.Tensor:
    """``value`` must be a dense (strided) tensor with one of ``dims`` dimensions."""
    t = check_tensor(fn, name, value)
    if t.layout != torch.strided:
        raise TypeError(
            f"{fn}: {name} must be a dense (strided) tensor, got layout {layout_name(t.layout)}; "
            f"convert with {name}.to_dense()"
        )
    if t.dim() not in dims:
        raise ValueError(
            f"{fn}: {name} must have {' or '.join(map(str, dims))} dimensions, "
            f"got shape {tuple(t.shape)}; reshape it"
        )
    return t


def check_float_dtype(fn: str, name: str, t: torch.Tensor) -> None:
    """``t`` must hold float32 or float64 values."""
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(
            f"{fn}: {name} must have dtype float32 or float64, got {t.dtype}; "
            f"cast it with {name}.to(torch.float64)"
        )


def check_index_dtype(fn: str, name: str, t: torch.Tensor) -> None:
    """``t`` must hold int32 or int64 indices."""
    if t.dtype not in INDEX_DTYPES:
        raise ValueError(
            f"{fn}: {name} must have dtype int32 or int64, got {t.dtype}; "
            f"cast it with {name}.to(torch.int64)"
        )


def check_same_dtype(fn: str, names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """``a`` and ``b`` must share a dtype."""
    if a.dtype != b.dtype:
        raise ValueError(
            f"{fn}: {names[0]} and {names[1]} must have the same dtype, "
            f"got {a.dtype} and {b.dtype}; cast one with .to({a.dtype})"
        )


def check_same_device(fn: str, names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """``a`` and ``b`` must live on the same device."""
    if a.device != b.device:
        raise ValueError(
            f"{fn}: {names[0]} and {names[1]} must be on the same device, "
            f"got {a.device} and {b.device}; move one with .to({str(a.device)!r})"
        )


def check_square(fn: str, name: str, t: torch.Tensor) -> None:
    """The last two dimensions of ``t`` must be equal."""
    if t.shape[-1] != t.shape[-2]:
        raise ValueError(
            f"{fn}: {name} must be square, got shape {tuple(t.shape)}; a solve needs a square "
            "matrix (sparse_generic_lstsq solves a tall one)"
        )


def check_choice(fn: str, name: str, value: object, choices: Sequence[object]) -> None:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} must be one of {options}, got {value!r}; pick one of those")


def check_bools(fn: str, **flags: object) -> None:
    """Each keyword's value must be a bool (``upper="yes"`` is a TypeError, not a truthy str)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{fn}: {name} must be True or False, got {value!r}; pass a bool")


def check_count(fn: str, name: str, value: object, minimum: int | None = 0) -> int:
    """An int (not a bool, not a float such as 3.5) of at least ``minimum`` (None: any)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}; pass int({name})"
        )
    if minimum is not None and value < minimum:
        raise ValueError(f"{fn}: {name} must be at least {minimum}, got {value}; pass a larger one")
    return value


def check_maxiter(fn: str, value: object, minimum: int = 0) -> int | None:
    """``maxiter``: None (the solver's default) or an int of at least ``minimum``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{fn}: maxiter must be an int or None, got {type(value).__name__}; pass an int, "
            "or None for the default"
        )
    if value < minimum:
        kind = (
            "a positive"
            if minimum == 1
            else f"an int >= {minimum}"
            if minimum
            else "a non-negative"
        )
        raise ValueError(
            f"{fn}: maxiter must be {kind} int or None, got {value}; pass None for the default"
        )
    return int(value)


def check_device(fn: str, name: str, value: object) -> torch.device:
    """Anything :class:`torch.device` takes (a str, an int or a device) naming a device."""
    if isinstance(value, bool) or not isinstance(value, str | int | torch.device):
        raise TypeError(
            f"{fn}: {name} must be a str, int or torch.device, got {type(value).__name__}; "
            "pass e.g. 'cpu' or 'cuda:0'"
        )
    try:
        return torch.device(value)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{fn}: {name} must name a torch device (e.g. 'cpu' or 'cuda:0'), got {value!r}; "
            "pass one of those"
        ) from err


def check_tolerance(fn: str, name: str, value: object) -> float:
    """A tolerance (``rtol``, ``tol``, ``atol``...): a real, non-negative number.

    NaN, a negative number, a string or a bool is an error: the one policy of every tsgu
    solver.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{fn}: {name} must be a real number, got {type(value).__name__} {value!r}; "
            "pass a float"
        )
    tol = float(value)
    if math.isnan(tol) or tol < 0:
        raise ValueError(
            f"{fn}: {name} must be a non-negative number, got {value!r}; pass a float >= 0"
        )
    return tol


def check_operand(fn: str, A: torch.Tensor, B: torch.Tensor, rows: int) -> None:
    """Dense ``B`` fits sparse ``A``: ``rows`` rows, A's batch size, dtype and device.

    B's row axis is 0 for a vector, 1 for a batch of vectors ``(b, n)`` beside a batched A,
    and -2 otherwise (a block, or a batch of blocks). A must be float32 or float64.
    """
    axis = 0 if B.dim() == 1 else (1 if A.dim() == 3 and B.dim() == 2 else -2)
    if B.shape[axis] != rows:
        raise ValueError(
            f"{fn}: B must have {rows} rows to match A of shape {tuple(A.shape)}, "
            f"got shape {tuple(B.shape)}; pass a B with {rows} rows"
        )
    if A.dim() == 3 and B.shape[0] != A.shape[0]:
        raise ValueError(
            f"{fn}: batch sizes must match, got {A.shape[0]} for A and {B.shape[0]} for B; "
            "pass one B per matrix of A"
        )
    check_float_dtype(fn, "A", A)
    check_same_dtype(fn, ("A", "B"), A, B)
    check_same_device(fn, ("A", "B"), A, B)
