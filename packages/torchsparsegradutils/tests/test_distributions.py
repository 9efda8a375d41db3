"""torchsparsegradutils.distributions and dist_stats_helpers: tsgu's, with 0.2's defaults."""

from __future__ import annotations

import importlib

import pytest
import torch

import tsgu.distributions
import tsgu.distributions.stats
from torchsparsegradutils.distributions import SparseMultivariateNormal


@pytest.mark.parametrize(
    ("module", "name", "obj"),
    [
        (
            "torchsparsegradutils.distributions",
            "SparseMultivariateNormalNative",
            tsgu.distributions.SparseMultivariateNormalNative,
        ),
        (
            "torchsparsegradutils.utils",
            "mean_hotelling_t2_test",
            tsgu.distributions.stats.mean_hotelling_t2_test,
        ),
        ("torchsparsegradutils.utils", "cov_nagao_test", tsgu.distributions.stats.cov_nagao_test),
        (
            "torchsparsegradutils.utils.dist_stats_helpers",
            "cov_nagao_test",
            tsgu.distributions.stats.cov_nagao_test,
        ),
        (
            "torchsparsegradutils.distributions.sparse_multivariate_normal",
            "SparseMultivariateNormal",
            SparseMultivariateNormal,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_names_are_the_tsgu_objects(module, name, obj):
    assert getattr(importlib.import_module(module), name) is obj


def upper_factor() -> torch.Tensor:
    return torch.tensor([[1.0, 0.5], [0.0, 1.0]]).to_sparse_csr()


def test_the_adapter_is_tsgus_class():
    assert issubclass(SparseMultivariateNormal, tsgu.distributions.SparseMultivariateNormal)


def test_by_default_nothing_is_checked_as_in_0_2():
    dist = SparseMultivariateNormal(torch.zeros(2), scale_tril=upper_factor())
    assert dist._validate_args is False
    # tsgu's own class follows torch's default, set here: torch.compile turns that default
    # off for the whole process (torch._dynamo does so when it is first used)
    Distribution = torch.distributions.Distribution
    default = Distribution._validate_args
    Distribution.set_default_validate_args(True)
    try:
        with pytest.raises(ValueError, match="scale_tril"):
            tsgu.distributions.SparseMultivariateNormal(torch.zeros(2), scale_tril=upper_factor())
        adapter = SparseMultivariateNormal(torch.zeros(2), scale_tril=upper_factor())
        assert adapter._validate_args is False
    finally:
        Distribution.set_default_validate_args(default)


def test_validate_args_true_gets_tsgus_checks():
    with pytest.raises(ValueError, match="lower triangular"):
        SparseMultivariateNormal(torch.zeros(2), scale_tril=upper_factor(), validate_args=True)


def test_samples_equal_tsgus():
    L = torch.tensor([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, -0.3, 1.5]]).to_sparse_csr()
    loc = torch.tensor([1.0, -1.0, 0.5])
    ours = SparseMultivariateNormal(loc, scale_tril=L)
    theirs = tsgu.distributions.SparseMultivariateNormal(loc, scale_tril=L)
    torch.manual_seed(0)
    a = ours.rsample((4,))
    torch.manual_seed(0)
    b = theirs.rsample((4,))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ours.log_prob(a), theirs.log_prob(a))


def test_expand_keeps_the_class_and_its_checks():
    L = torch.tensor([[2.0, 0.0], [0.5, 1.0]]).to_sparse_coo()
    dist = SparseMultivariateNormal(torch.zeros(2), scale_tril=L)
    wider = dist.expand((5,))
    assert type(wider) is SparseMultivariateNormal
    assert wider.batch_shape == (5,)
    assert wider._validate_args is False
    assert wider.rsample((3,)).shape == (3, 5, 2)
