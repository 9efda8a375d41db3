"""SparseMultivariateNormal.from_precision / from_covariance: a sparse matrix, factorized."""

from __future__ import annotations

import math

import pytest
import torch

import tsgu.core as tc
from tsgu.distributions import SparseMultivariateNormal

pytest.importorskip("tsgu.factor", reason="from_precision needs tsgu-factor")


def _spd(side: int = 3) -> torch.Tensor:
    P = tc.poisson_2d(side, dtype=torch.float64)
    return P


def _trainable(P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values = P.values().clone().requires_grad_()
    return values, tc.sparse_csr_tensor(P.crow_indices(), P.col_indices(), values, P.shape)


@pytest.mark.parametrize("given", ["precision", "covariance"])
def test_log_prob_and_entropy_agree_with_torch(given):
    P = _spd()
    loc = torch.linspace(-1, 1, 9, dtype=torch.float64)
    x = torch.randn(5, 9, dtype=torch.float64)
    if given == "precision":
        ours = SparseMultivariateNormal.from_precision(loc, P)
        theirs = torch.distributions.MultivariateNormal(loc, precision_matrix=P.to_dense())
    else:
        ours = SparseMultivariateNormal.from_covariance(loc, P)
        theirs = torch.distributions.MultivariateNormal(loc, covariance_matrix=P.to_dense())
    assert isinstance(ours, SparseMultivariateNormal)
    torch.testing.assert_close(ours.log_prob(x), theirs.log_prob(x))
    torch.testing.assert_close(ours.entropy(), theirs.entropy())


def test_log_prob_gradient_for_the_precision_is_exact():
    """d log p / dQ_ij = ½ (Q⁻¹)_ij - ½ r_i r_j at Q's pattern (logdet by selected inversion)."""
    P = _spd()
    values, Q = _trainable(P)
    loc = torch.zeros(9, dtype=torch.float64)
    x = torch.randn(9, dtype=torch.float64)
    SparseMultivariateNormal.from_precision(loc, Q).log_prob(x).backward()
    dense = P.to_dense()
    expected = 0.5 * torch.linalg.inv(dense) - 0.5 * torch.outer(x, x)
    assert (values.grad - expected[dense != 0]).abs().max() < 1e-10


@pytest.mark.parametrize("given", ["precision", "covariance"])
def test_log_prob_gradcheck(given):
    P = _spd()
    x = torch.randn(2, 9, dtype=torch.float64)
    loc = torch.zeros(9, dtype=torch.float64, requires_grad=True)
    values = P.values().clone().requires_grad_()

    def f(v, m):
        M = tc.sparse_csr_tensor(P.crow_indices(), P.col_indices(), v, P.shape)
        make = getattr(SparseMultivariateNormal, f"from_{given}")
        return make(m, M).log_prob(x)

    assert torch.autograd.gradcheck(f, (values, loc))


@pytest.mark.parametrize("given", ["precision", "covariance"])
def test_rsample_has_the_right_covariance(given):
    P = _spd()
    make = getattr(SparseMultivariateNormal, f"from_{given}")
    x = make(torch.zeros(9, dtype=torch.float64), P).rsample((100_000,))
    expected = torch.linalg.inv(P.to_dense()) if given == "precision" else P.to_dense()
    torch.testing.assert_close(
        torch.cov(x.T), expected, atol=0.05 * math.sqrt(float(expected.abs().max())), rtol=0
    )


def test_rsample_is_differentiable_in_loc_and_batches():
    loc = torch.zeros(4, 9, dtype=torch.float64, requires_grad=True)
    mvn = SparseMultivariateNormal.from_precision(loc, _spd())
    x = mvn.rsample((3,))
    assert x.shape == (3, 4, 9)
    x.sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((4, 9), 3.0, dtype=torch.float64))


def test_bad_matrices():
    loc = torch.zeros(9, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"precision must be \(9, 9\) to match loc"):
        SparseMultivariateNormal.from_precision(loc, tc.poisson_2d(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="loc and covariance must have the same dtype"):
        SparseMultivariateNormal.from_covariance(loc.float(), _spd())
    bad = _spd().to_dense()
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match="must be positive definite"):
        SparseMultivariateNormal.from_precision(loc, bad.to_sparse_csr())
