"""Constraints on sparse triangular factors, for torch's ``arg_constraints`` machinery.

torch's :data:`torch.distributions.constraints.lower_cholesky` reads a dense matrix; these
read only the stored entries of a sparse COO or CSR matrix (2D or batched 3D), in O(nnz).
A stored entry is part of the factor's pattern, and so of what its gradient trains, even
when its value is zero: the checks are on the pattern as well as on the values.

* :data:`sparse_lower_cholesky`: every stored entry on or below the diagonal, every
  diagonal entry stored and positive (the ``L`` of :math:`L L^\\top`).
* :data:`sparse_strictly_lower`: every stored entry strictly below the diagonal (the
  strict part of the unit triangular ``L`` of :math:`L D L^\\top`, whose unit diagonal is
  implicit).

``check`` returns one boolean per matrix: shape ``()`` for a 2D factor, ``(b,)`` for a
batch.

Examples
--------
>>> import torch
>>> from tsgu.distributions.constraints import sparse_lower_cholesky, sparse_strictly_lower
>>> L = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
>>> sparse_lower_cholesky.check(L)
tensor(True)
>>> sparse_strictly_lower.check(L)  # its diagonal is stored
tensor(False)
"""

from __future__ import annotations

import torch
from torch.distributions import constraints

from ._factor import Coordinates

__all__ = ["sparse_lower_cholesky", "sparse_strictly_lower"]


def _per_matrix(coords: Coordinates, bad_entry: torch.Tensor, batched: bool) -> torch.Tensor:
    """True for each matrix without a bad entry."""
    ok = torch.bincount(coords.items[bad_entry], minlength=coords.b) == 0
    return ok if batched else ok.reshape(())


class _SparseLowerCholesky(constraints.Constraint):
    """Sparse lower triangular with a stored, positive diagonal."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        coords = Coordinates(value)
        above = coords.cols > coords.rows
        ok = _per_matrix(coords, above, value.dim() == 3)
        diag = coords.diagonal(coords.raw_values)
        good_diag = (diag > 0) & coords.stored_diagonal()
        good_diag = good_diag.reshape(coords.b, coords.n).all(dim=1)
        return ok & (good_diag if value.dim() == 3 else good_diag.reshape(()))


class _SparseStrictlyLower(constraints.Constraint):
    """Sparse strictly lower triangular: no stored entry on or above the diagonal."""

    event_dim = 2

    def check(self, value: torch.Tensor) -> torch.Tensor:
        coords = Coordinates(value)
        return _per_matrix(coords, coords.cols >= coords.rows, value.dim() == 3)


sparse_lower_cholesky = _SparseLowerCholesky()
sparse_strictly_lower = _SparseStrictlyLower()
