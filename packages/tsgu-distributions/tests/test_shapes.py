"""Shape semantics as torch defines them: batch, event and sample shapes, expand, broadcasting."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import MultivariateNormal, constraints

from tsgu.core.testing import tol
from tsgu.distributions import SparseMultivariateNormal
from tsgu.distributions.constraints import sparse_lower_cholesky, sparse_strictly_lower

N, B = 7, 3


@pytest.mark.parametrize(
    ("batch", "batch_shape"),
    [("unbatched", ()), ("batched", (B,)), ("batched-loc", (B,)), ("nested", (2, B))],
)
@pytest.mark.parametrize("sample_shape", [(), (1,), (5,), (2, 3), (2, 1, 4)])
def test_sample_and_batch_shapes(make, param, batch, batch_shape, sample_shape):
    dist = make(param, "coo", batch).dist()
    assert dist.batch_shape == torch.Size(batch_shape)
    assert dist.event_shape == torch.Size([N])
    x = dist.rsample(torch.Size(sample_shape))
    assert x.shape == torch.Size(sample_shape) + dist.batch_shape + dist.event_shape
    assert dist.log_prob(x).shape == torch.Size(sample_shape) + dist.batch_shape
    assert dist.entropy().shape == dist.batch_shape
    assert dist.mean.shape == dist.mode.shape == dist.batch_shape + dist.event_shape


def test_sample_shape_as_a_list(make):
    assert make("cov-llt").dist().rsample([2, 3]).shape == (2, 3, N)


@pytest.mark.parametrize("param", ["cov-ldlt", "prec-ldlt"])  # the forms with a diagonal
def test_batched_diagonal_with_an_unbatched_factor_and_loc(make, param):
    p = make(param)
    d = torch.stack([p.diagonal, 2 * p.diagonal, 0.5 * p.diagonal])
    dist = p.dist(diagonal=d)
    assert dist.batch_shape == (B,)
    x = torch.randn(4, B, N, dtype=torch.float64)
    torch.testing.assert_close(
        dist.log_prob(x), p.reference(diagonal=d).log_prob(x), **tol(torch.float64)
    )
    assert dist.rsample((2,)).shape == (2, B, N)


def test_a_single_item_factor_broadcasts_over_the_batch(make, param):
    p = make(param, "csr-int32")
    one = p.dense_factor.unsqueeze(0)  # (1, n, n)
    factor = torch.sparse_csr_tensor(
        p.factor.crow_indices().unsqueeze(0),
        p.factor.col_indices().unsqueeze(0),
        p.factor.values().unsqueeze(0),
        (1, N, N),
    )
    loc = torch.randn(5, N, dtype=torch.float64)
    dist = p.dist(loc=loc, factor=factor)
    assert dist.batch_shape == (5,)
    ref = p.reference(loc=loc, dense_factor=one)
    x = ref.sample((2,))
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x), **tol(torch.float64))
    torch.testing.assert_close(dist.entropy(), ref.entropy(), **tol(torch.float64))
    torch.manual_seed(0)
    s = dist.rsample((2,))
    torch.manual_seed(0)
    eps = torch.empty(2, 5, N, dtype=torch.float64).normal_()
    torch.testing.assert_close(s, loc + p.dense_transform(eps), **tol(torch.float64))


@pytest.mark.parametrize("batch", ["unbatched", "batched", "batched-loc"])
def test_expand(make, param, batch):
    p = make(param, "coo", batch)
    dist = p.dist(validate_args=True)
    new_shape = (4, *dist.batch_shape)
    big = dist.expand(new_shape)
    assert big.batch_shape == new_shape and big.event_shape == (N,)
    assert big._validate_args
    assert big.rsample((2,)).shape == (2, *new_shape, N)
    ref = p.reference().expand(new_shape)
    x = ref.sample()
    torch.testing.assert_close(big.log_prob(x), ref.log_prob(x), **tol(torch.float64))
    torch.testing.assert_close(big.entropy(), ref.entropy(), **tol(torch.float64))
    torch.testing.assert_close(big.mean, ref.mean)
    if p.is_covariance:
        torch.testing.assert_close(big.variance, ref.variance, **tol(torch.float64))
    assert big.scale_tril is dist.scale_tril and big.precision_tril is dist.precision_tril


def test_expand_a_size_one_batch(make):
    p = make("cov-llt", "csr-int64")
    dist = p.dist(loc=p.loc.unsqueeze(0))
    big = dist.expand((6,))
    ref = p.reference(loc=p.loc.unsqueeze(0)).expand((6,))
    x = ref.sample((2,))
    torch.testing.assert_close(big.log_prob(x), ref.log_prob(x), **tol(torch.float64))


def test_expand_rejects_a_shape_the_batch_does_not_broadcast_to(make):
    dist = make("cov-llt", "coo", "batched").dist()
    with pytest.raises(ValueError, match=r"expand: batch_shape must be one that the batch shape"):
        dist.expand((4, 5))
    with pytest.raises(ValueError, match=r"got \(\)"):
        dist.expand(())


def test_properties(make, param):
    p = make(param, "coo", "batched-loc")
    dist = p.dist()
    assert dist.is_ldlt_parameterization == p.ldlt
    assert dist.diagonal is p.diagonal
    if p.is_covariance:
        assert dist.scale_tril is p.factor and dist.precision_tril is None
    else:
        assert dist.precision_tril is p.factor and dist.scale_tril is None
    assert dist.loc.shape == (B, N)
    assert dist.has_rsample
    assert dist.support is constraints.real_vector
    keys = set(dist.arg_constraints)
    assert keys == {"loc", p.factor_name} | ({"diagonal"} if p.ldlt else set())
    factor_constraint = dist.arg_constraints[p.factor_name]
    assert factor_constraint is (sparse_strictly_lower if p.ldlt else sparse_lower_cholesky)
    assert bool(factor_constraint.check(p.factor).all())
    text = repr(dist)
    assert text.startswith("SparseMultivariateNormal(loc: (3, 7)")
    assert f"{p.factor_name}: COO (7, 7)" in text


def test_one_dimensional_event(param):
    ldlt = param.endswith("ldlt")
    indices = torch.zeros(2, 0 if ldlt else 1, dtype=torch.int64)
    values = torch.tensor([] if ldlt else [2.0], dtype=torch.float64)
    factor = torch.sparse_coo_tensor(indices, values, (1, 1))
    d = torch.tensor([4.0], dtype=torch.float64) if ldlt else None
    kw = {"scale_tril" if param.startswith("cov") else "precision_tril": factor}
    dist = SparseMultivariateNormal(torch.zeros(1, dtype=torch.float64), diagonal=d, **kw)
    var = 4.0 if param.startswith("cov") else 0.25
    ref = MultivariateNormal(torch.zeros(1, dtype=torch.float64), torch.tensor([[var]]).double())
    x = torch.tensor([[0.3], [-1.0]], dtype=torch.float64)
    torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x))
    assert dist.rsample((3,)).shape == (3, 1)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_diagonal_only_ldlt_factor_with_no_stored_entries(layout):
    # L D Lᵀ with L = I: an empty strictly lower pattern is a diagonal Gaussian
    n = 5
    empty = torch.zeros(n, n, dtype=torch.float64)
    factor = empty.to_sparse() if layout == torch.sparse_coo else empty.to_sparse_csr()
    d = torch.arange(1.0, n + 1, dtype=torch.float64)
    x = torch.randn(3, n, dtype=torch.float64)
    for name, cov in (("scale_tril", torch.diag(d)), ("precision_tril", torch.diag(1 / d))):
        dist = SparseMultivariateNormal(torch.zeros(n, dtype=torch.float64), d, **{name: factor})
        ref = MultivariateNormal(torch.zeros(n, dtype=torch.float64), cov)
        torch.testing.assert_close(dist.log_prob(x), ref.log_prob(x))
        torch.testing.assert_close(dist.entropy(), ref.entropy())
        assert dist.rsample((4,)).shape == (4, n)
