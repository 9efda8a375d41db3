"""Gradients of every parameter: gradcheck, gradgradcheck, the dense gradients, sparse patterns.

The factor's values enter through tsgu's constructors (``with_values``), as a trainable
factor does; rsample is checked with fixed noise (the seed is reset inside the function).
"""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from tsgu.core.testing import tol, with_values
from tsgu.distributions._factor import Coordinates

SMALL_FORMS = ["coo", "csr-int32"]
SMALL_BATCHES = ["unbatched", "batched"]


def _inputs(p, with_value: bool):
    """(function of the leaves, leaves): loc, the factor's values, diagonal, (value)."""
    values, rebuild = with_values(p.factor)
    leaves = [p.loc.clone().requires_grad_(True), values]
    if p.ldlt:
        leaves.append(p.diagonal.clone().requires_grad_(True))
    if with_value:
        x = (
            p.reference()
            .sample(
                (2,),
            )
            .detach()
            + 0.2
        )
        leaves.append(x.requires_grad_(True))

    def dist(loc, vals, *rest):
        d = rest[0] if p.ldlt else None
        return p.dist(loc=loc, diagonal=d, factor=rebuild(vals))

    return dist, leaves


def _log_prob_fn(p):
    dist, leaves = _inputs(p, with_value=True)
    return (lambda *a: dist(*a[:-1]).log_prob(a[-1])), leaves


def _rsample_fn(p, sample_shape=(2,)):
    dist, leaves = _inputs(p, with_value=False)

    def f(*a):
        torch.manual_seed(11)  # fixed noise
        return dist(*a).rsample(sample_shape)

    return f, leaves


def test_gradcheck_log_prob(make, param, form, batch):
    f, leaves = _log_prob_fn(make(param, form, batch))
    assert gradcheck(f, leaves)


def test_gradcheck_rsample(make, param, form, batch):
    f, leaves = _rsample_fn(make(param, form, batch))
    assert gradcheck(f, leaves)


@pytest.mark.parametrize("form", SMALL_FORMS)
@pytest.mark.parametrize("batch", SMALL_BATCHES)
def test_gradgradcheck_log_prob(make, param, form, batch):
    f, leaves = _log_prob_fn(make(param, form, batch))
    assert gradgradcheck(f, leaves)


@pytest.mark.parametrize("form", SMALL_FORMS)
@pytest.mark.parametrize("batch", SMALL_BATCHES)
def test_gradgradcheck_rsample(make, param, form, batch):
    f, leaves = _rsample_fn(make(param, form, batch), sample_shape=())
    assert gradgradcheck(f, leaves)


@pytest.mark.parametrize("batch", SMALL_BATCHES)
def test_gradcheck_entropy(make, param, form, batch):
    dist, leaves = _inputs(make(param, form, batch), with_value=False)
    assert gradcheck(lambda *a: dist(*a).entropy(), leaves)


@pytest.mark.parametrize("param", ["cov-llt", "cov-ldlt"])
@pytest.mark.parametrize("batch", SMALL_BATCHES)
def test_gradcheck_variance(make, param, form, batch):
    dist, leaves = _inputs(make(param, form, batch), with_value=False)
    assert gradcheck(lambda *a: dist(*a).variance, leaves)


def _scatter(A, vals):
    """Dense A with ``vals`` at its stored entries, differentiable in ``vals``."""
    c = Coordinates(A)
    flat = vals.new_zeros(c.b * c.n * c.n).index_add(0, c.slots * c.n + c.cols, vals.reshape(-1))
    return flat.reshape(A.shape)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("batch", ["unbatched", "batched", "batched-loc"])
def test_gradients_agree_with_dense(make, param, batch, dtype):
    """log_prob and rsample gradients equal those through torch's dense MultivariateNormal."""
    p = make(param, "csr-int64", batch, dtype)
    values, rebuild = with_values(p.factor)
    x = make(param, "csr-int64", batch).reference().sample((3,)).to(dtype) + 0.2

    def losses(use_dense):
        loc = p.loc.clone().requires_grad_(True)
        vals = values.detach().clone().requires_grad_(True)
        d = p.diagonal.clone().requires_grad_(True) if p.ldlt else None
        dense_factor = _scatter(p.factor, vals)
        if use_dense:
            dist = p.reference(loc=loc, dense_factor=dense_factor, diagonal=d)
        else:
            dist = p.dist(loc=loc, diagonal=d, factor=rebuild(vals))
        lp = dist.log_prob(x).sum()
        torch.manual_seed(5)
        if use_dense:
            eps = torch.empty((4, *dist.batch_shape, 7), dtype=dtype).normal_()
            sample = loc + p.dense_transform(eps, dense_factor, d)
        else:
            sample = dist.rsample((4,))
        loss = lp + (sample.sin() * torch.arange(7, dtype=dtype)).sum()
        leaves = [loc, vals] + ([d] if d is not None else [])
        return torch.autograd.grad(loss, leaves)

    for ours, dense in zip(losses(False), losses(True), strict=True):
        torch.testing.assert_close(ours, dense, **tol(dtype))


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_leaf_factor_gets_a_sparse_gradient_with_its_pattern(make, param, layout):
    p = make(param, "coo" if layout == torch.sparse_coo else "csr-int32", "batched")
    A = p.factor.detach().clone().requires_grad_(True)
    dist = p.dist(factor=A)
    (dist.log_prob(p.loc + 0.1).sum() + dist.rsample((2,)).sum() + dist.entropy().sum()).backward()
    g = A.grad
    assert g.layout == layout and g.shape == A.shape
    if layout == torch.sparse_coo:
        assert torch.equal(g._indices(), A._indices())
        assert g._nnz() == A._nnz()
    else:
        assert torch.equal(g.crow_indices(), A.crow_indices())
        assert torch.equal(g.col_indices(), A.col_indices())
        assert g.crow_indices().dtype == torch.int32
    assert torch.isfinite(g.to_dense()).all() and g.to_dense().abs().sum() > 0


def test_uncoalesced_factor_gradient_reaches_every_stored_entry(make, param):
    p = make(param, "coo-uncoalesced", "batched")
    values, rebuild = with_values(p.factor)
    dist = p.dist(factor=rebuild(values))
    dist.log_prob(p.loc + 0.3).sum().backward()
    # entries stored twice at one position get that position's gradient, each
    idx = p.factor._indices()
    keys = (idx[0] * 7 + idx[1]) * 7 + idx[2]
    _, inverse = torch.unique(keys, return_inverse=True)
    by_position = torch.zeros(int(inverse.max()) + 1, dtype=values.dtype).index_add(
        0, inverse, values.grad
    )
    count = torch.bincount(inverse).to(values.dtype)
    torch.testing.assert_close(values.grad, (by_position / count)[inverse])
    assert (keys.unsqueeze(0) == keys.unsqueeze(1)).sum() > keys.numel()  # duplicates exist


def test_unused_gradients_cost_nothing(make):
    # a factor that does not require grad is read directly, no autograd bridge
    p = make("prec-ldlt")
    loc = p.loc.clone().requires_grad_(True)
    out = p.dist(loc=loc).log_prob(p.loc + 1.0)
    (g,) = torch.autograd.grad(out, loc)
    assert torch.isfinite(g).all()
