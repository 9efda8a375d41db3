"""SparseMultivariateNormalNative: 0.2's native variant, without its densification."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.distributions import MultivariateNormal

from tsgu.core.testing import tol, with_values
from tsgu.distributions import SparseMultivariateNormalNative
from tsgu.distributions.stats import cov_nagao_test, mean_hotelling_t2_test

N = 7
F = "SparseMultivariateNormalNative"
INDEX = [torch.int32, torch.int64]


def _problem(dtype=torch.float64, index_dtype=torch.int64):
    gen = torch.Generator().manual_seed(3)
    mask = torch.tril(torch.rand(N, N, generator=gen) < 0.5, -1)
    L = torch.randn(N, N, generator=gen, dtype=torch.float64) * 0.6 * mask
    L = L + torch.diag(0.6 + torch.rand(N, generator=gen, dtype=torch.float64))
    loc = torch.randn(N, generator=gen, dtype=torch.float64)
    A = L.to(dtype).to_sparse_csr()
    A = torch.sparse_csr_tensor(
        A.crow_indices().to(index_dtype), A.col_indices().to(index_dtype), A.values(), A.shape
    )
    return loc.to(dtype), A, L.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", INDEX)
def test_agrees_with_dense(dtype, index_dtype):
    loc, A, L = _problem(dtype, index_dtype)
    dist = SparseMultivariateNormalNative(loc, A)
    ref = MultivariateNormal(loc.double(), scale_tril=L.double())
    x = ref.sample((2, 3)) + 0.2
    t = tol(dtype)
    torch.testing.assert_close(dist.log_prob(x.to(dtype)), ref.log_prob(x).to(dtype), **t)
    torch.testing.assert_close(dist.entropy(), ref.entropy().to(dtype), **t)
    torch.testing.assert_close(dist.variance, ref.variance.to(dtype), **t)
    torch.testing.assert_close(dist.mean, loc)
    torch.testing.assert_close(dist.mode, loc)
    with pytest.warns(UserWarning, match=F + r".covariance_matrix builds a dense n x n matrix"):
        cov = dist.covariance_matrix
    torch.testing.assert_close(cov, ref.covariance_matrix.to(dtype), **t)
    assert dist.batch_shape == () and dist.event_shape == (N,)


@pytest.mark.parametrize("sample_shape", [(), (4,), (2, 3)])
def test_rsample_is_loc_plus_l_times_its_noise(sample_shape):
    loc, A, L = _problem()
    torch.manual_seed(9)
    x = SparseMultivariateNormalNative(loc, A).rsample(sample_shape)
    torch.manual_seed(9)
    eps = torch.empty(*sample_shape, N, dtype=torch.float64).normal_()
    torch.testing.assert_close(x, loc + eps @ L.T, **tol(torch.float64))


def test_rsample_passes_hotelling_and_nagao():
    loc, A, L = _problem()
    torch.manual_seed(20250101)
    draws = 4000
    x = SparseMultivariateNormalNative(loc, A).rsample((draws,))
    mean, cov = x.mean(0), x.T.cov()
    passed, _, _ = mean_hotelling_t2_test(mean[None], loc[None], cov[None], draws)
    assert passed.all()
    passed, _, _ = cov_nagao_test(cov[None], (L @ L.T)[None], draws)
    assert passed.all()


@pytest.mark.parametrize("index_dtype", INDEX)
def test_gradcheck(index_dtype):
    loc, A, _ = _problem(index_dtype=index_dtype)
    values, rebuild = with_values(A)
    loc = loc.clone().requires_grad_(True)
    x = torch.randn(3, N, dtype=torch.float64, requires_grad=True)

    def log_prob(loc, vals, x):
        return SparseMultivariateNormalNative(loc, rebuild(vals)).log_prob(x)

    def rsample(loc, vals):
        torch.manual_seed(4)
        return SparseMultivariateNormalNative(loc, rebuild(vals)).rsample((2,))

    def both(loc, vals):
        return SparseMultivariateNormalNative(loc, rebuild(vals)).entropy() + (
            SparseMultivariateNormalNative(loc, rebuild(vals)).variance.sum()
        )

    assert gradcheck(log_prob, (loc, values, x))
    assert gradgradcheck(log_prob, (loc, values, x))
    assert gradcheck(rsample, (loc, values))
    assert gradcheck(both, (loc, values))


def test_leaf_csr_factor_gets_a_csr_gradient_with_its_pattern():
    loc, A, _ = _problem(index_dtype=torch.int32)
    A = A.detach().clone().requires_grad_(True)
    dist = SparseMultivariateNormalNative(loc, A)
    (dist.rsample((3,)).sum() + dist.log_prob(loc + 0.5) + dist.entropy()).backward()
    assert A.grad.layout == torch.sparse_csr
    assert torch.equal(A.grad.col_indices().to(torch.int32), A.col_indices())


def test_expand_only_to_the_empty_batch():
    loc, A, _ = _problem()
    dist = SparseMultivariateNormalNative(loc, A)
    assert dist.expand(()) is dist
    with pytest.raises(
        ValueError, match=F + r".expand: this distribution is unbatched, got batch_shape \(2,\)"
    ):
        dist.expand((2,))


@pytest.mark.parametrize(
    ("loc", "factor", "error", "match"),
    [
        (
            torch.zeros(2, N, dtype=torch.float64),
            None,
            ValueError,
            r"loc must have 1 dimension \(n,\), got shape \(2, 7\); "
            r"use SparseMultivariateNormal for batches",
        ),
        (
            torch.tensor(0.0, dtype=torch.float64),
            None,
            ValueError,
            r"loc must have at least 1 dimension \(n,\)",
        ),
        (
            None,
            torch.eye(N, dtype=torch.float64).to_sparse(),
            TypeError,
            r"scale_tril must be a sparse CSR tensor, got layout COO; "
            r"convert with scale_tril.to_sparse_csr\(\)",
        ),
        (
            None,
            torch.eye(N, dtype=torch.float64),
            TypeError,
            r"scale_tril must be a sparse CSR tensor, got layout dense",
        ),
        (
            None,
            torch.eye(N, dtype=torch.float64).expand(2, N, N).to_sparse_csr(),
            ValueError,
            r"scale_tril must have 2 dimensions, got shape \(2, 7, 7\)",
        ),
        (
            None,
            torch.eye(5, dtype=torch.float64).to_sparse_csr(),
            ValueError,
            r"scale_tril must be \(n, n\) with n = 7",
        ),
        (
            None,
            torch.eye(N, dtype=torch.float32).to_sparse_csr(),
            ValueError,
            r"loc and scale_tril must have the same dtype",
        ),
        (
            None,
            torch.triu(torch.ones(N, N, dtype=torch.float64)).to_sparse_csr(),
            ValueError,
            r"scale_tril must be lower triangular, "
            r"got a stored entry above the diagonal at \(0, 1\)",
        ),
        (
            None,
            -torch.eye(N, dtype=torch.float64).to_sparse_csr(),
            ValueError,
            r"scale_tril must have a positive diagonal, got -1 at \(0, 0\)",
        ),
    ],
)
def test_bad_input(loc, factor, error, match):
    loc = torch.zeros(N, dtype=torch.float64) if loc is None else loc
    factor = torch.eye(N, dtype=torch.float64).to_sparse_csr() if factor is None else factor
    with pytest.raises(error, match=F + ": " + match):
        SparseMultivariateNormalNative(loc, factor, validate_args=True)


def test_bad_log_prob_value():
    loc, A, _ = _problem()
    dist = SparseMultivariateNormalNative(loc, A, validate_args=True)
    with pytest.raises(ValueError, match=F + r".log_prob: value must have n = 7 entries"):
        dist.log_prob(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=F + r".log_prob: loc and value must have the same dtype"):
        dist.log_prob(torch.zeros(N))
