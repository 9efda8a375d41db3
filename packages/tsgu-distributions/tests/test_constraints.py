"""The sparse factor constraints, one verdict per matrix, on the pattern and the values."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import constraints

from tsgu.distributions.constraints import sparse_lower_cholesky, sparse_strictly_lower

LAYOUTS = [torch.sparse_coo, torch.sparse_csr]


def _sparse(dense, layout):
    return dense.to_sparse() if layout == torch.sparse_coo else dense.to_sparse_csr()


def _batch():
    """Three 4x4 lower triangular matrices; item 1 gets a defect per test."""
    L = torch.tril(torch.full((3, 4, 4), 0.5)) + torch.eye(4)
    return L


@pytest.mark.parametrize("layout", LAYOUTS)
def test_lower_cholesky(layout):
    L = _batch()
    assert sparse_lower_cholesky.check(_sparse(L, layout)).tolist() == [True, True, True]
    assert sparse_lower_cholesky.check(_sparse(L[0], layout)).shape == ()
    bad = L.clone()
    bad[1, 2, 2] = -1.0  # a negative diagonal
    assert sparse_lower_cholesky.check(_sparse(bad, layout)).tolist() == [True, False, True]
    bad = L.clone()
    bad[1, 0, 3], bad[1, 3, 0] = 0.5, 0.0  # an entry above the diagonal (nnz kept equal)
    assert sparse_lower_cholesky.check(_sparse(bad, layout)).tolist() == [True, False, True]


def test_lower_cholesky_needs_every_diagonal_entry_stored():
    idx = torch.tensor([[0, 1, 2], [0, 0, 2]])
    A = torch.sparse_coo_tensor(idx, torch.ones(3), (3, 3))  # row 1 has no diagonal
    assert not bool(sparse_lower_cholesky.check(A))


def test_lower_cholesky_sums_repeated_coo_entries():
    idx = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 0]])
    A = torch.sparse_coo_tensor(idx, torch.tensor([2.0, -1.0, 1.0, 3.0]), (2, 2))
    assert bool(sparse_lower_cholesky.check(A))  # (0, 0) holds 2 - 1 = 1 > 0
    A = torch.sparse_coo_tensor(idx, torch.tensor([1.0, -1.0, 1.0, 3.0]), (2, 2))
    assert not bool(sparse_lower_cholesky.check(A))  # (0, 0) holds 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_strictly_lower(layout):
    S = torch.tril(torch.full((3, 4, 4), 0.5), -1)
    assert sparse_strictly_lower.check(_sparse(S, layout)).tolist() == [True, True, True]
    bad = S.clone()
    bad[1, 1, 1], bad[1, 3, 0] = 0.2, 0.0  # a stored diagonal entry
    assert sparse_strictly_lower.check(_sparse(bad, layout)).tolist() == [True, False, True]
    assert not bool(sparse_strictly_lower.check(_sparse(torch.eye(4), layout)))


def test_they_are_torch_constraints_on_matrices():
    for c in (sparse_lower_cholesky, sparse_strictly_lower):
        assert isinstance(c, constraints.Constraint)
        assert c.event_dim == 2 and not c.is_discrete
