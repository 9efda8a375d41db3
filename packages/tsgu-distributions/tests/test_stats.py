"""Hotelling T² and Nagao tests: statistics, thresholds, batch shapes and bad input."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from tsgu.distributions.stats import cov_nagao_test, mean_hotelling_t2_test


def _spd(p, *batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    M = torch.randn(*batch, p, p, generator=gen, dtype=torch.float64)
    return M @ M.mT + p * torch.eye(p, dtype=torch.float64)


def test_hotelling_statistic_and_threshold():
    p, n = 4, 50
    S = _spd(p, 3)
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(3, p, generator=gen, dtype=torch.float64) * 0.2
    true = torch.zeros(3, p, dtype=torch.float64)
    passed, t2, threshold = mean_hotelling_t2_test(mean, true, S, n, confidence_level=0.9)
    expected = n * torch.einsum("bi,bij,bj->b", mean, torch.linalg.inv(S), mean)
    torch.testing.assert_close(t2, expected)
    assert threshold == pytest.approx(p * (n - 1) / (n - p) * stats.f.ppf(0.9, p, n - p))
    assert torch.equal(passed, expected <= threshold)
    assert passed.dtype == torch.bool and passed.device.type == "cpu"


def test_hotelling_rejects_a_far_mean_and_accepts_the_sample_mean():
    S = _spd(3)
    passed, t2, _ = mean_hotelling_t2_test(torch.ones(3), torch.ones(3), S, 20)
    assert bool(passed) and float(t2) == 0.0
    passed, _, _ = mean_hotelling_t2_test(torch.ones(3), -torch.ones(3), S, 200)
    assert not bool(passed)


def test_higher_confidence_is_a_larger_region():
    S, mean = _spd(2), torch.tensor([0.0, 0.45], dtype=torch.float64)
    thresholds = [
        mean_hotelling_t2_test(mean, torch.zeros(2), S, 30, c)[2] for c in (0.5, 0.95, 0.999)
    ]
    assert thresholds == sorted(thresholds)


def test_hotelling_broadcasts_batches():
    S = _spd(3, 2, 1)  # (2, 1, 3, 3)
    mean = torch.zeros(4, 3, dtype=torch.float64)  # (4, 3)
    passed, t2, _ = mean_hotelling_t2_test(mean + 0.1, mean, S, 10)
    assert passed.shape == t2.shape == (2, 4)


def test_nagao_statistic_and_threshold():
    p, n = 3, 40
    ref = _spd(p, 2)
    emp = _spd(p, 2, seed=5)
    passed, tn, threshold = cov_nagao_test(emp, ref, n, confidence_level=0.99)
    C = torch.linalg.cholesky(ref)
    W = torch.linalg.inv(C) @ emp @ torch.linalg.inv(C).mT
    expected = n / 2 * (W - torch.eye(p, dtype=torch.float64)).square().sum((-2, -1))
    torch.testing.assert_close(tn, expected)
    assert threshold == pytest.approx(stats.chi2.ppf(0.99, p * (p + 1) / 2))
    assert torch.equal(passed, expected <= threshold)


def test_nagao_accepts_the_reference_itself_and_rejects_a_scaled_one():
    ref = _spd(4)
    passed, tn, _ = cov_nagao_test(ref, ref, 100)
    assert bool(passed) and float(tn) == pytest.approx(0.0, abs=1e-20)
    passed, _, _ = cov_nagao_test(1.5 * ref, ref, 100)
    assert not bool(passed)


def test_float32_inputs():
    S = _spd(3).float()
    passed, t2, _ = mean_hotelling_t2_test(torch.zeros(3), torch.zeros(3), S, 10)
    assert bool(passed) and t2.dtype == torch.float32
    passed, _, _ = cov_nagao_test(S, S, 10)
    assert bool(passed)


HOT = "mean_hotelling_t2_test: "
NAG = "cov_nagao_test: "
M3, S3 = torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([0.0] * 3, M3, S3, 10), TypeError, r"sample_mean must be a torch.Tensor, got list"),
        (
            (M3.to_sparse(), M3, S3, 10),
            TypeError,
            r"sample_mean must be a dense \(strided\) tensor",
        ),
        ((M3.long(), M3, S3, 10), ValueError, r"sample_mean must have dtype float32 or float64"),
        (
            (M3, M3, torch.eye(4, dtype=torch.float64), 10),
            ValueError,
            r"sample_cov must be \(\*batch, p, p\) with p = 3, got shape \(4, 4\)",
        ),
        (
            (M3, M3, torch.ones(3, 2, dtype=torch.float64), 10),
            ValueError,
            r"sample_cov must be \(\*batch, p, p\)",
        ),
        (
            (M3, M3, M3, 10),
            ValueError,
            r"sample_cov must have at least 2 dimensions \(\*batch, p, p\), got shape \(3,\)",
        ),
        (
            (M3, torch.zeros(4), S3, 10),
            ValueError,
            r"true_mean must have p = 3 entries in its last dimension",
        ),
        (
            (M3, M3, S3, 3),
            ValueError,
            r"n \(the number of draws\) must be an int of at least 4, got 3",
        ),
        ((M3, M3, S3, 10.0), ValueError, r"n \(the number of draws\) must be an int"),
        ((M3, M3, S3, True), ValueError, r"n \(the number of draws\) must be an int"),
        ((M3, M3, S3, 10, 1.0), ValueError, r"confidence_level must be in \(0, 1\), got 1.0"),
        ((M3, M3, S3, 10, "0.9"), ValueError, r"confidence_level must be in \(0, 1\), got '0.9'"),
        ((M3, M3, -S3, 10), ValueError, r"sample_cov must be positive definite"),
        (
            (M3, M3, S3.to("meta"), 10),
            ValueError,
            r"sample_mean and sample_cov must be on the same device",
        ),
    ],
)
def test_hotelling_bad_input(args, error, match):
    with pytest.raises(error, match=HOT + match):
        mean_hotelling_t2_test(*args)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("S", S3, 10), TypeError, r"emp_cov must be a torch.Tensor, got str"),
        ((S3.to_sparse(), S3, 10), TypeError, r"emp_cov must be a dense \(strided\) tensor"),
        ((S3.long(), S3, 10), ValueError, r"emp_cov must have dtype float32 or float64"),
        (
            (torch.ones(3, 2, dtype=torch.float64), S3, 10),
            ValueError,
            r"emp_cov must be \(\*batch, p, p\), got shape \(3, 2\)",
        ),
        (
            (S3, torch.eye(2, dtype=torch.float64), 10),
            ValueError,
            r"ref_cov must be \(\*batch, p, p\) with p = 3",
        ),
        ((S3, S3, 1), ValueError, r"n \(the number of draws\) must be an int of at least 2, got 1"),
        ((S3, S3, 10, 0.0), ValueError, r"confidence_level must be in \(0, 1\), got 0.0"),
        ((S3, -S3, 10), ValueError, r"ref_cov must be positive definite"),
        ((S3, S3.to("meta"), 10), ValueError, r"emp_cov and ref_cov must be on the same device"),
    ],
)
def test_nagao_bad_input(args, error, match):
    with pytest.raises(error, match=NAG + match):
        cov_nagao_test(*args)
