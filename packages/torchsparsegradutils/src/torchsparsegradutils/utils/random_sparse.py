"""0.2's ``torchsparsegradutils.utils.random_sparse``.

``rand_sparse``, ``rand_sparse_tri`` and ``make_spd_sparse`` are tsgu's; 0.2's per-layout
generators are those two with the layout (and ``strict``) fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from tsgu.core import (
    convert_coo_to_csr,
    convert_coo_to_csr_indices_values,
    make_spd_sparse,
    rand_sparse,
    rand_sparse_tri,
)

__all__ = [
    "convert_coo_to_csr",
    "convert_coo_to_csr_indices_values",
    "generate_random_sparse_coo_matrix",
    "generate_random_sparse_csr_matrix",
    "generate_random_sparse_strictly_triangular_coo_matrix",
    "generate_random_sparse_strictly_triangular_csr_matrix",
    "generate_random_sparse_triangular_coo_matrix",
    "generate_random_sparse_triangular_csr_matrix",
    "make_spd_sparse",
    "rand_sparse",
    "rand_sparse_tri",
]

_CPU = torch.device("cpu")


class _Generator(Protocol):
    def __call__(
        self,
        size: Sequence[int],
        nnz: int,
        *,
        indices_dtype: torch.dtype = torch.int64,
        values_dtype: torch.dtype = torch.float32,
        device: torch.device | str = _CPU,
        well_conditioned: bool = False,
        min_diag_value: float = 1.0,
    ) -> torch.Tensor: ...


class _TriangularGenerator(Protocol):
    def __call__(
        self,
        size: Sequence[int],
        nnz: int,
        *,
        upper: bool = True,
        indices_dtype: torch.dtype = torch.int64,
        values_dtype: torch.dtype = torch.float32,
        device: torch.device | str = _CPU,
        value_range: tuple[float, float] = (0.0, 1.0),
        well_conditioned: bool = False,
        min_diag_value: float = 1.0,
    ) -> torch.Tensor: ...


def _name(fn: Callable[..., torch.Tensor], name: str, doc: str) -> None:
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc


def _general(layout: torch.layout, name: str, doc: str) -> _Generator:
    """0.2's generator of random matrices in one layout: :func:`tsgu.core.rand_sparse`."""

    def generate(
        size: Sequence[int],
        nnz: int,
        *,
        indices_dtype: torch.dtype = torch.int64,
        values_dtype: torch.dtype = torch.float32,
        device: torch.device | str = _CPU,
        well_conditioned: bool = False,
        min_diag_value: float = 1.0,
    ) -> torch.Tensor:
        return rand_sparse(
            size,
            nnz,
            layout,
            indices_dtype=indices_dtype,
            values_dtype=values_dtype,
            device=device,
            well_conditioned=well_conditioned,
            min_diag_value=min_diag_value,
        )

    _name(generate, name, doc)
    return generate


def _triangular(layout: torch.layout, strict: bool, name: str, doc: str) -> _TriangularGenerator:
    """0.2's generator of random triangular matrices in one layout, with or without the
    diagonal: :func:`tsgu.core.rand_sparse_tri`. (0.2's strictly triangular generators took
    no ``well_conditioned`` and ``min_diag_value``; they are accepted here.)"""

    def generate(
        size: Sequence[int],
        nnz: int,
        *,
        upper: bool = True,
        indices_dtype: torch.dtype = torch.int64,
        values_dtype: torch.dtype = torch.float32,
        device: torch.device | str = _CPU,
        value_range: tuple[float, float] = (0.0, 1.0),
        well_conditioned: bool = False,
        min_diag_value: float = 1.0,
    ) -> torch.Tensor:
        return rand_sparse_tri(
            size,
            nnz,
            layout,
            upper=upper,
            strict=strict,
            indices_dtype=indices_dtype,
            values_dtype=values_dtype,
            device=device,
            value_range=value_range,
            well_conditioned=well_conditioned,
            min_diag_value=min_diag_value,
        )

    _name(generate, name, doc)
    return generate


generate_random_sparse_coo_matrix = _general(
    torch.sparse_coo,
    "generate_random_sparse_coo_matrix",
    """``rand_sparse(size, nnz, torch.sparse_coo, ...)``: see :func:`tsgu.core.rand_sparse`.

    Examples
    --------
    >>> A = generate_random_sparse_coo_matrix((4, 5), 6)
    >>> A.layout, A.shape, A._nnz()
    (torch.sparse_coo, torch.Size([4, 5]), 6)
    """,
)

generate_random_sparse_csr_matrix = _general(
    torch.sparse_csr,
    "generate_random_sparse_csr_matrix",
    """``rand_sparse(size, nnz, torch.sparse_csr, ...)``: see :func:`tsgu.core.rand_sparse`.

    Examples
    --------
    >>> A = generate_random_sparse_csr_matrix((2, 4, 4), 5, indices_dtype=torch.int32)
    >>> A.layout, A.shape, A.col_indices().dtype
    (torch.sparse_csr, torch.Size([2, 4, 4]), torch.int32)
    """,
)

generate_random_sparse_strictly_triangular_coo_matrix = _triangular(
    torch.sparse_coo,
    True,
    "generate_random_sparse_strictly_triangular_coo_matrix",
    """``rand_sparse_tri(..., torch.sparse_coo, strict=True)``: no diagonal entry.

    See :func:`tsgu.core.rand_sparse_tri`.

    Examples
    --------
    >>> A = generate_random_sparse_strictly_triangular_coo_matrix((4, 4), 3, upper=False)
    >>> bool((A.indices()[0] > A.indices()[1]).all())
    True
    """,
)

generate_random_sparse_strictly_triangular_csr_matrix = _triangular(
    torch.sparse_csr,
    True,
    "generate_random_sparse_strictly_triangular_csr_matrix",
    """``rand_sparse_tri(..., torch.sparse_csr, strict=True)``: no diagonal entry.

    See :func:`tsgu.core.rand_sparse_tri`.

    Examples
    --------
    >>> A = generate_random_sparse_strictly_triangular_csr_matrix((4, 4), 3)
    >>> bool(torch.equal(A.to_dense(), A.to_dense().triu(1)))
    True
    """,
)

generate_random_sparse_triangular_coo_matrix = _triangular(
    torch.sparse_coo,
    False,
    "generate_random_sparse_triangular_coo_matrix",
    """``rand_sparse_tri(..., torch.sparse_coo)``: the whole diagonal is stored.

    See :func:`tsgu.core.rand_sparse_tri`.

    Examples
    --------
    >>> A = generate_random_sparse_triangular_coo_matrix((4, 4), 6)
    >>> A._nnz(), bool((A.to_dense().diagonal() != 0).all())
    (6, True)
    """,
)

generate_random_sparse_triangular_csr_matrix = _triangular(
    torch.sparse_csr,
    False,
    "generate_random_sparse_triangular_csr_matrix",
    """``rand_sparse_tri(..., torch.sparse_csr)``: the whole diagonal is stored.

    See :func:`tsgu.core.rand_sparse_tri`.

    Examples
    --------
    >>> A = generate_random_sparse_triangular_csr_matrix((2, 3, 3), 4, upper=False)
    >>> A.shape, bool(torch.equal(A.to_dense(), A.to_dense().tril()))
    (torch.Size([2, 3, 3]), True)
    """,
)
