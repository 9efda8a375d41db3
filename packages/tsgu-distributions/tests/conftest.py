"""Small distributions in every form, with their dense torch.distributions references.

A problem is one of the four parameterisations (covariance/precision x LLᵀ/LDLᵀ), one
storage form of the factor (COO, an uncoalesced COO with split entries in shuffled order,
CSR with int32 or int64 indices) and one batch form:

* ``unbatched``: loc (n,), factor (n, n), diagonal (n,);
* ``batched``: loc (B, n), factor (B, n, n), diagonal (B, n);
* ``batched-loc``: loc (B, n), factor (n, n), diagonal (n,) (0.2 failed on this);
* ``nested``: loc (2, B, n), factor (B, n, n), diagonal (B, n).

The factor's pattern (shared by the batch items, as batched CSR needs) has a row with no
off-diagonal entry and a column with none; the off-diagonal values are of either sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch.distributions import MultivariateNormal

from tsgu.core.testing import generator, to_layout
from tsgu.distributions import SparseMultivariateNormal

N, B = 7, 3
PARAMS = ("cov-llt", "cov-ldlt", "prec-llt", "prec-ldlt")
FORMS = ("coo", "coo-uncoalesced", "csr-int32", "csr-int64")
BATCHES = ("unbatched", "batched", "batched-loc", "nested")


def pattern_mask() -> torch.Tensor:
    """Strictly lower pattern: ~50% dense, row 3 and column 5 empty."""
    mask = torch.tril(torch.rand(N, N, generator=generator(101)) < 0.5, -1)
    mask[3, :] = False
    mask[:, 5] = False
    mask[6, 0] = mask[4, 2] = True
    return mask


def sparse_in_form(dense: torch.Tensor, mask: torch.Tensor, form: str) -> torch.Tensor:
    """``dense`` at ``mask`` (shared over the batch) stored in ``form``."""
    if form in ("csr-int32", "csr-int64"):
        index_dtype = torch.int32 if form == "csr-int32" else torch.int64
        return to_layout(dense, torch.sparse_csr, index_dtype)
    full = mask.expand(dense.shape) if dense.dim() == 3 else mask
    indices = full.nonzero().T
    values = dense[tuple(indices)]
    if form == "coo":
        return torch.sparse_coo_tensor(indices, values, dense.shape, is_coalesced=True)
    nnz = values.numel()
    perm = torch.randperm(nnz, generator=generator(102))
    split = perm[: nnz // 3]  # stored twice: 0.25 and 0.75 of the value
    idx = torch.cat([indices[:, perm], indices[:, split]], 1)
    vals = torch.cat([values[perm], values[split]])
    vals[: split.numel()] *= 0.25
    vals[nnz:] *= 0.75
    A = torch.sparse_coo_tensor(idx, vals, dense.shape)
    assert not A.is_coalesced()
    return A


@dataclass
class Problem:
    param: str
    form: str
    batch: str
    loc: torch.Tensor
    diagonal: torch.Tensor | None
    factor: torch.Tensor  # sparse, in form
    dense_factor: torch.Tensor  # L (LLᵀ) or its strict part (LDLᵀ), dense

    @property
    def is_covariance(self) -> bool:
        return self.param.startswith("cov")

    @property
    def ldlt(self) -> bool:
        return self.param.endswith("ldlt")

    @property
    def factor_name(self) -> str:
        return "scale_tril" if self.is_covariance else "precision_tril"

    def dist(self, **overrides: Any) -> SparseMultivariateNormal:
        """The distribution; ``loc``, ``diagonal``, ``factor`` and options may be overridden."""
        loc = overrides.pop("loc", self.loc)
        diagonal = overrides.pop("diagonal", self.diagonal)
        factor = overrides.pop("factor", self.factor)
        return SparseMultivariateNormal(
            loc, diagonal=diagonal, **{self.factor_name: factor}, **overrides
        )

    def full_factor(self, strict: torch.Tensor | None = None) -> torch.Tensor:
        """Dense L with its unit diagonal added in the LDLᵀ forms."""
        L = self.dense_factor if strict is None else strict
        return L + torch.eye(N, dtype=L.dtype) if self.ldlt else L

    def matrix(self, dense_factor=None, diagonal=None) -> torch.Tensor:
        """Dense Σ (covariance forms) or Σ⁻¹ (precision forms)."""
        L = self.full_factor(dense_factor)
        if not self.ldlt:
            return L @ L.mT
        d = self.diagonal if diagonal is None else diagonal
        return L @ torch.diag_embed(d) @ L.mT

    def reference(self, loc=None, dense_factor=None, diagonal=None) -> MultivariateNormal:
        """torch's dense MultivariateNormal of the same distribution."""
        loc = self.loc if loc is None else loc
        M = self.matrix(dense_factor, diagonal)
        if not self.is_covariance:
            return MultivariateNormal(loc, precision_matrix=M)
        if not self.ldlt:
            return MultivariateNormal(loc, scale_tril=self.full_factor(dense_factor))
        return MultivariateNormal(loc, covariance_matrix=M)

    def dense_transform(self, eps: torch.Tensor, dense_factor=None, diagonal=None) -> torch.Tensor:
        """The reparameterisation x - loc of noise ``eps`` (..., n), densely."""
        L = self.full_factor(dense_factor)
        d = self.diagonal if diagonal is None else diagonal
        if self.ldlt:
            eps = eps * (d.sqrt() if self.is_covariance else d.rsqrt())
        if self.is_covariance:
            return (L @ eps.unsqueeze(-1)).squeeze(-1)
        Lt = L.mT.expand(*eps.shape[:-1], N, N)
        return torch.linalg.solve_triangular(Lt, eps.unsqueeze(-1), upper=True).squeeze(-1)


def make_problem(
    param: str, form: str = "csr-int64", batch: str = "unbatched", dtype=torch.float64, seed=0
) -> Problem:
    gen = generator(seed)
    ldlt = param.endswith("ldlt")
    batched_factor = batch in ("batched", "nested")
    shape = (B, N, N) if batched_factor else (N, N)
    mask = pattern_mask()
    strict = torch.randn(shape, generator=gen, dtype=torch.float64) * 0.6 * mask
    if ldlt:
        dense = strict
        pattern = mask
    else:
        diag = 0.6 + torch.rand(shape[:-1], generator=gen, dtype=torch.float64)
        dense = strict + torch.diag_embed(diag)
        pattern = mask | torch.eye(N, dtype=torch.bool)
    loc_shape = {"unbatched": (N,), "batched": (B, N), "batched-loc": (B, N), "nested": (2, B, N)}
    loc = torch.randn(loc_shape[batch], generator=gen, dtype=torch.float64)
    diagonal = None
    if ldlt:
        d_shape = (B, N) if batch in ("batched", "nested") else (N,)
        diagonal = (0.5 + torch.rand(d_shape, generator=gen, dtype=torch.float64)).to(dtype)
    factor = sparse_in_form(dense.to(dtype), pattern, form)
    return Problem(param, form, batch, loc.to(dtype), diagonal, factor, dense.to(dtype))


@pytest.fixture(params=PARAMS)
def param(request):
    return request.param


@pytest.fixture(params=FORMS)
def form(request):
    return request.param


@pytest.fixture(params=BATCHES)
def batch(request):
    return request.param


@pytest.fixture
def make():
    """``make(param, form="csr-int64", batch="unbatched", dtype=float64, seed=0) -> Problem``."""
    return make_problem
