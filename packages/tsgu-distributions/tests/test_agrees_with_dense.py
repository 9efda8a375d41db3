"""log_prob, entropy, mean, variance and rsample agree with torch's dense MultivariateNormal."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import devices, tol, with_values

DTYPES = [torch.float32, torch.float64]


def _close(actual, expected):
    if actual.dtype == torch.float64:
        # the bar is 1e-5 relative; the computation is exact to rounding
        torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9)
    else:
        torch.testing.assert_close(actual, expected.to(actual.dtype), **tol(actual.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_prob(make, param, form, batch, dtype):
    p = make(param, form, batch, dtype)
    ref = make(param, form, batch, torch.float64).reference()
    x = ref.sample((4,)) + 0.3  # not at the mean; (4, *batch, n)
    _close(p.dist().log_prob(x.to(dtype)), ref.log_prob(x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_entropy_mean_mode(make, param, form, batch, dtype):
    p = make(param, form, batch, dtype)
    ref = make(param, form, batch, torch.float64).reference()
    dist = p.dist()
    _close(dist.entropy(), ref.entropy())
    _close(dist.mean, ref.mean)
    _close(dist.mode, ref.mode)
    assert dist.batch_shape == ref.batch_shape
    assert dist.event_shape == ref.event_shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_variance(make, param, form, batch, dtype):
    p = make(param, form, batch, dtype)
    dist = p.dist()
    if not p.is_covariance:
        with pytest.raises(NotImplementedError, match=r"variance of a precision factor"):
            dist.variance  # noqa: B018
        return
    ref = make(param, form, batch, torch.float64).reference()
    _close(dist.variance, ref.variance)


@pytest.mark.parametrize("sample_shape", [(), (5,), (2, 3)])
def test_rsample_is_the_dense_transform_of_its_noise(make, param, form, batch, sample_shape):
    p = make(param, form, batch)
    dist = p.dist()
    torch.manual_seed(7)
    x = dist.rsample(sample_shape)
    torch.manual_seed(7)
    shape = torch.Size(sample_shape) + dist.batch_shape + dist.event_shape
    eps = torch.empty(shape, dtype=torch.float64).normal_()  # what rsample draws
    assert x.shape == shape
    torch.testing.assert_close(x, p.loc + p.dense_transform(eps), **tol(torch.float64))


def test_coo_and_csr_give_the_same_samples(make, param):
    torch.manual_seed(3)
    a = make(param, "coo", "batched").dist().rsample((4,))
    torch.manual_seed(3)
    b = make(param, "csr-int32", "batched").dist().rsample((4,))
    torch.testing.assert_close(a, b, **tol(torch.float64))


def test_log_prob_of_a_broadcast_value(make, param):
    # a value with fewer batch dims, and one with a size-1 batch dim, broadcast as in torch
    p = make(param, "csr-int64", "nested")
    ref = p.reference()
    for x in (torch.randn(N_, dtype=torch.float64), torch.randn(5, 1, 1, N_, dtype=torch.float64)):
        _close(p.dist().log_prob(x), ref.log_prob(x))


N_ = 7  # the conftest's event size


@pytest.mark.parametrize("device", devices())
def test_on_device(make, param, device):
    """Every method on the device agrees with the CPU result; gradients arrive there."""
    p = make(param, "csr-int32", "batched")
    cpu = p.dist()
    moved = p.dist(
        loc=p.loc.to(device),
        diagonal=None if p.diagonal is None else p.diagonal.to(device),
        factor=p.factor.to(device),
    )
    x = cpu.sample((3,))
    torch.testing.assert_close(moved.log_prob(x.to(device)).cpu(), cpu.log_prob(x))
    torch.testing.assert_close(moved.entropy().cpu(), cpu.entropy())
    if p.is_covariance:
        torch.testing.assert_close(moved.variance.cpu(), cpu.variance)
    values, rebuild = with_values(p.factor.to(device))
    loc = p.loc.to(device).requires_grad_(True)
    dist = p.dist(
        loc=loc,
        diagonal=None if p.diagonal is None else p.diagonal.to(device),
        factor=rebuild(values),
    )
    sample = dist.rsample((2,))
    assert sample.device.type == torch.device(device).type
    (sample.sum() + dist.log_prob(x.to(device)).sum()).backward()
    assert values.grad.device == values.device and torch.isfinite(values.grad).all()
    assert torch.isfinite(loc.grad).all()
