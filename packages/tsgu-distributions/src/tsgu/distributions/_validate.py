"""Input checks of tsgu.distributions, built on :mod:`tsgu.core.validation`.

Every error reads ``"<class or function>: <argument> must be <expected>, got <actual>[; fix]"``.
Types and layouts raise TypeError; shapes, dtypes, devices and values raise ValueError.
Structural checks always run; the value checks (triangularity, positive diagonals, no NaN)
run when the distribution validates its arguments, as torch's distributions do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.distributions import constraints

from tsgu.core.validation import (
    COO,
    CSR,
    check_float_dtype,
    check_same_device,
    check_same_dtype,
    check_sparse,
    check_tensor,
    layout_name,
)

from ._factor import Coordinates
from .constraints import sparse_lower_cholesky, sparse_strictly_lower


def check_sample_shape(fn: str, sample_shape: object) -> torch.Size:
    """A sample shape: a torch.Size or a sequence of non-negative ints (``(-1,)`` and
    ``(2.5,)`` are errors here, not deep inside torch)."""
    if isinstance(sample_shape, torch.Size):
        shape: tuple[object, ...] = tuple(sample_shape)
    elif isinstance(sample_shape, Sequence) and not isinstance(sample_shape, str):
        shape = tuple(sample_shape)
    else:
        raise TypeError(
            f"{fn}: sample_shape must be a tuple of ints or a torch.Size, "
            f"got {type(sample_shape).__name__}"
        )
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ValueError(
            f"{fn}: sample_shape must hold non-negative ints, got {sample_shape!r}; "
            "e.g. (100,) for 100 samples"
        )
    return torch.Size(shape)  # type: ignore[arg-type]


def check_vector(
    fn: str, name: str, value: object, what: str = "(*batch, n)", min_dim: int = 1
) -> torch.Tensor:
    """A dense floating-point tensor with at least ``min_dim`` dimensions."""
    t = check_tensor(fn, name, value)
    if t.layout != torch.strided:
        raise TypeError(
            f"{fn}: {name} must be a dense (strided) tensor, got layout {layout_name(t.layout)}; "
            f"convert with {name}.to_dense()"
        )
    if t.dim() < min_dim:
        plural = "dimension" if min_dim == 1 else "dimensions"
        raise ValueError(
            f"{fn}: {name} must have at least {min_dim} {plural} {what}, got shape {tuple(t.shape)}"
        )
    check_float_dtype(fn, name, t)
    return t


def check_factor(
    fn: str,
    name: str,
    factor: object,
    loc: torch.Tensor,
    layouts: Sequence[torch.layout] = (COO, CSR),
    dims: Sequence[int] = (2, 3),
) -> torch.Tensor:
    """A sparse square factor of loc's event size, dtype and device."""
    A = check_sparse(fn, name, factor, layouts=layouts, dims=dims)
    n = loc.shape[-1]
    if A.shape[-1] != A.shape[-2] or A.shape[-1] != n:
        expected = "(n, n) or (b, n, n)" if 3 in dims else "(n, n)"
        raise ValueError(
            f"{fn}: {name} must be {expected} with n = {n} (the last dimension of loc), "
            f"got shape {tuple(A.shape)}"
        )
    check_same_dtype(fn, ("loc", name), loc, A)
    check_same_device(fn, ("loc", name), loc, A)
    return A


def check_diagonal(fn: str, diagonal: object, loc: torch.Tensor) -> torch.Tensor:
    """A dense ``(*batch, n)`` vector with loc's event size, dtype and device."""
    d = check_vector(fn, "diagonal", diagonal)
    if d.shape[-1] != loc.shape[-1]:
        raise ValueError(
            f"{fn}: diagonal must have n = {loc.shape[-1]} entries in its last dimension "
            f"(the last dimension of loc), got shape {tuple(d.shape)}"
        )
    check_same_dtype(fn, ("loc", "diagonal"), loc, d)
    check_same_device(fn, ("loc", "diagonal"), loc, d)
    return d


def batch_shape_of(fn: str, shapes: dict[str, tuple[int, ...]]) -> torch.Size:
    """The broadcast of the arguments' batch shapes."""
    try:
        return torch.broadcast_shapes(*shapes.values())
    except RuntimeError:
        listed = ", ".join(f"{name} {tuple(s)}" for name, s in shapes.items())
        raise ValueError(
            f"{fn}: the batch shapes of the arguments must broadcast together, got {listed}; "
            "a batched factor (b, n, n) belongs to the last batch dimension of loc"
        ) from None


def check_real(fn: str, name: str, t: torch.Tensor) -> None:
    """No NaN (torch's ``real`` constraint)."""
    if not bool(constraints.real_vector.check(t).all()):
        k = int(torch.nonzero(torch.isnan(t.reshape(-1)))[0, 0])
        raise ValueError(f"{fn}: {name} must be real, got NaN at flat index {k}")


def check_positive(fn: str, name: str, t: torch.Tensor) -> None:
    """Every entry positive (torch's ``positive`` constraint)."""
    if not bool(constraints.independent(constraints.positive, 1).check(t).all()):
        flat = t.detach().reshape(-1)
        k = int(torch.nonzero(~(flat > 0))[0, 0])
        raise ValueError(
            f"{fn}: {name} must be positive, got {float(flat[k]):.6g} at flat index {k}"
        )


def check_factor_values(fn: str, name: str, A: torch.Tensor, ldlt: bool) -> None:
    """The factor's pattern and diagonal: lower Cholesky (LLᵀ) or strictly lower (LDLᵀ)."""
    constraint = sparse_strictly_lower if ldlt else sparse_lower_cholesky
    if bool(constraint.check(A).all()):
        return
    coords = Coordinates(A)
    batched = A.dim() == 3
    k = coords.first(coords.cols > coords.rows)
    if k is not None:
        raise ValueError(
            f"{fn}: {name} must be lower triangular, got a stored entry above the diagonal "
            f"at {coords.where(k, batched)}; drop the upper triangle from the pattern"
        )
    if ldlt:
        k = coords.first(coords.cols == coords.rows)
        assert k is not None
        raise ValueError(
            f"{fn}: {name} must be strictly lower triangular when diagonal is given "
            f"(L D Lᵀ: L has an implicit unit diagonal), got a stored diagonal entry at "
            f"{coords.where(k, batched)}; drop the diagonal from the pattern, or pass "
            "diagonal=None for the L Lᵀ form"
        )
    stored = coords.stored_diagonal()
    missing = coords.first(~stored)
    if missing is not None:
        row, item = missing % coords.n, missing // coords.n
        where = f"row {row}" + (f" of batch item {item}" if batched else "")
        raise ValueError(
            f"{fn}: {name} must store every diagonal entry (L Lᵀ: the diagonal is part of L), "
            f"got none at {where}; or pass diagonal= for the L D Lᵀ form"
        )
    diag = coords.diagonal(coords.raw_values)
    bad = coords.first(~(diag > 0))
    assert bad is not None
    row, item = bad % coords.n, bad // coords.n
    where = f"({row}, {row})" + (f" of batch item {item}" if batched else "")
    raise ValueError(
        f"{fn}: {name} must have a positive diagonal, got {float(diag[bad]):.6g} at {where}"
    )


def check_value(fn: str, value: object, loc: torch.Tensor) -> torch.Tensor:
    """A value to score: a dense tensor with loc's dtype, device and event size."""
    v = check_vector(fn, "value", value, "(*sample, *batch, n)")
    if v.shape[-1] != loc.shape[-1]:
        raise ValueError(
            f"{fn}: value must have n = {loc.shape[-1]} entries in its last dimension, "
            f"got shape {tuple(v.shape)}"
        )
    check_same_dtype(fn, ("loc", "value"), loc, v)
    check_same_device(fn, ("loc", "value"), loc, v)
    return v
