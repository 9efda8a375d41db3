"""Fixtures of the reduction tests (logsumexp, softmax): small matrices and their references.

Every matrix has an empty row and an empty column, an explicitly stored zero, and (in the
batched form) one pattern shared by its three items, as batched CSR requires. The
"coo-uncoalesced" form stores the same matrix as a COO tensor in shuffled order with some
positions split into two entries that add up to the value.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import tsgu.core._segment as segment
from tsgu.core.testing import generator, to_layout, values_at

N, M, B = 7, 5, 3
EMPTY_ROW, EMPTY_COL = 2, 3


@dataclass(frozen=True)
class Form:
    layout: torch.layout
    index_dtype: torch.dtype
    uncoalesced: bool = False


_FORMS = {
    "coo": Form(torch.sparse_coo, torch.int64),
    "coo-uncoalesced": Form(torch.sparse_coo, torch.int64, True),
    "csr-int32": Form(torch.sparse_csr, torch.int32),
    "csr-int64": Form(torch.sparse_csr, torch.int64),
    "csc-int32": Form(torch.sparse_csc, torch.int32),
    "csc-int64": Form(torch.sparse_csc, torch.int64),
}


@pytest.fixture(params=list(_FORMS.values()), ids=list(_FORMS))
def form(request):
    """Each layout x index dtype, and an uncoalesced COO tensor with repeated positions."""
    return request.param


@pytest.fixture(params=["unbatched", "batched"])
def batch_form(request):
    return request.param


@pytest.fixture(params=["global-shift", "per-group-shift"])
def shift_mode(request):
    """Run a test with the one-shift shortcut allowed, and with the per-group shift only."""
    with segment.SHIFT_PATHS.force(None if request.param == "global-shift" else "per-group"):
        yield request.param


def reduction_mask(batch: str) -> torch.Tensor:
    """The stored positions: ~45% of (N, M), one empty row and one empty column."""
    m = torch.rand(N, M, generator=generator(11)) < 0.45
    m[EMPTY_ROW] = False
    m[:, EMPTY_COL] = False
    m[0, 0] = m[4, 1] = True  # (0, 0) stores an explicit zero
    return m.expand(B, N, M).clone() if batch == "batched" else m


def reduction_dense(batch: str, dtype: torch.dtype = torch.float64, scale: float = 1.0):
    """Random values at the pattern (an explicit 0.0 at (0, 0)), 0 elsewhere."""
    shape = (B, N, M) if batch == "batched" else (N, M)
    values = torch.randn(shape, generator=generator(12), dtype=torch.float64) * scale
    values[..., 0, 0] = 0.0
    return (values * reduction_mask(batch)).to(dtype)


def reduction_sparse(dense: torch.Tensor, batch: str, form: Form) -> torch.Tensor:
    """``dense`` at the pattern of :func:`reduction_mask` (explicit zeros kept) in ``form``."""
    pattern = reduction_mask(batch)
    indices = pattern.nonzero().T
    values = dense[tuple(indices)]
    if form.uncoalesced:
        nnz = values.numel()
        perm = torch.randperm(nnz, generator=generator(13))
        split = perm[: nnz // 3]  # stored twice: 0.25 and 0.75 of the value
        idx = torch.cat([indices[:, perm], indices[:, split]], 1)
        vals = torch.cat([values[perm], values[split]])
        vals[: split.numel()] *= 0.25  # perm starts with split
        vals[nnz:] *= 0.75
        A = torch.sparse_coo_tensor(idx, vals, dense.shape)
        assert not A.is_coalesced()
        return A
    if form.layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(indices, values, dense.shape, is_coalesced=True)
    A = to_layout(torch.ones_like(dense) * pattern, form.layout, form.index_dtype)
    at = values_at(A, dense).reshape(A.values().shape)
    if form.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), at, dense.shape)
    return torch.sparse_csc_tensor(A.ccol_indices(), A.row_indices(), at, dense.shape)


@dataclass
class ReductionCase:
    A: torch.Tensor  # the sparse input
    dense: torch.Tensor  # its values, 0 off the pattern
    mask: torch.Tensor  # its pattern (bool)

    def filled(self, fill: float) -> torch.Tensor:
        """The dense matrix with ``fill`` at the absent entries."""
        return torch.where(self.mask, self.dense, torch.full_like(self.dense, fill))


@pytest.fixture
def reduction_case(form, batch_form):
    """``make(dtype=..., scale=...) -> ReductionCase`` for this test's form and batch form."""

    def make(dtype: torch.dtype = torch.float64, scale: float = 1.0) -> ReductionCase:
        dense = reduction_dense(batch_form, dtype, scale)
        return ReductionCase(
            reduction_sparse(dense, batch_form, form), dense, reduction_mask(batch_form)
        )

    return make
