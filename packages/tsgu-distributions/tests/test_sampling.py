"""rsample draws from the right distribution: Hotelling T² and Nagao tests at 95% (fixed seeds).

The exact checks (samples equal the dense transform of their noise) are in
test_agrees_with_dense.py; these check the distribution of the draws against the dense
covariance, and that the tests would catch a wrong mean or covariance.
"""

from __future__ import annotations

import pytest
import torch

from tsgu.distributions.stats import cov_nagao_test, mean_hotelling_t2_test

DRAWS = 4000


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, p) and unbiased covariance (B, p, p) of draws x (S, B, p)."""
    mean = x.mean(0)
    centred = (x - mean).permute(1, 0, 2)
    return mean, centred.mT @ centred / (x.shape[0] - 1)


@pytest.mark.parametrize("form", ["coo", "csr-int32"])
def test_rsample_passes_hotelling_and_nagao(make, param, form):
    p = make(param, form, "batched")
    ref = p.reference()
    torch.manual_seed(20250101)
    x = p.dist().rsample((DRAWS,))
    mean, cov = _moments(x)
    passed, t2, _ = mean_hotelling_t2_test(mean, ref.mean, cov, DRAWS)
    assert passed.all(), t2
    passed, tn, _ = cov_nagao_test(cov, ref.covariance_matrix, DRAWS)
    assert passed.all(), tn


def test_the_tests_catch_a_wrong_mean_or_covariance(make, param):
    p = make(param, "csr-int64", "batched")
    ref = p.reference()
    torch.manual_seed(20250101)
    x = p.dist().rsample((DRAWS,))
    mean, cov = _moments(x)
    scale = ref.covariance_matrix.diagonal(dim1=-2, dim2=-1).sqrt()
    passed, _, _ = mean_hotelling_t2_test(mean, ref.mean + 0.1 * scale, cov, DRAWS)
    assert not passed.any()
    passed, _, _ = cov_nagao_test(cov, 1.15 * ref.covariance_matrix, DRAWS)
    assert not passed.any()
    # the transposed factor's covariance (Lᵀ L instead of L Lᵀ) is another distribution
    L = p.full_factor()
    wrong = L.mT @ L if not p.ldlt else L.mT @ torch.diag_embed(p.diagonal) @ L
    wrong = wrong if p.is_covariance else torch.linalg.inv(wrong)
    passed, _, _ = cov_nagao_test(cov, wrong, DRAWS)
    assert not passed.any()


def test_sample_is_rsample_without_grad(make):
    p = make("prec-llt")
    values = p.factor.values().clone().requires_grad_(True)
    factor = torch.sparse_csr_tensor(
        p.factor.crow_indices(), p.factor.col_indices(), values, p.factor.shape
    )
    dist = p.dist(factor=factor)
    torch.manual_seed(1)
    s = dist.sample((3,))
    torch.manual_seed(1)
    r = dist.rsample((3,))
    assert not s.requires_grad and r.requires_grad
    torch.testing.assert_close(s, r.detach())
