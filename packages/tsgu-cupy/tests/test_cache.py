"""The direct solve's factorization: kept for the backward, cached per A, never stale."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import case, generator, tol
from tsgu.cupy import sparse_solve_c4t
from tsgu.cupy._cache import CAPACITY, factor_cache

LAYOUTS = [
    pytest.param(torch.sparse_coo, id="coo"),
    pytest.param(torch.sparse_csr, id="csr"),
]


def _rhs(k=2, seed=1, device="cpu"):
    return torch.randn(12, k, generator=generator(seed), dtype=torch.float64).to(device)


def _expect(A, B, X):
    torch.testing.assert_close(X, torch.linalg.solve(A.to_dense(), B), **tol(torch.float64))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("k", [None, 3], ids=["vector", "3-columns"])
def test_backward_reuses_the_forward_factorization(factorizations, layout, k, device):
    A = case("nonsymmetric").make(layout=layout, device=device).requires_grad_(True)
    B = _rhs(3, device=device)[:, 0] if k is None else _rhs(3, device=device)
    B.requires_grad_(True)
    sparse_solve_c4t(A, B).square().sum().backward()
    assert factorizations.calls == 1
    assert A.grad is not None and B.grad is not None


def test_second_order_gradients_reuse_it_too(factorizations):
    values, rebuild = tc.testing.with_values(case("nonsymmetric").make())
    A = rebuild(values)
    x = sparse_solve_c4t(A, _rhs(1)[:, 0])
    (g,) = torch.autograd.grad(x.square().sum(), values, create_graph=True)
    g.square().sum().backward()
    assert factorizations.calls == 1 and values.grad is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_repeated_solves_with_the_same_a_reuse_it(factorizations, layout, device):
    A = case("nonsymmetric").make(layout=layout, device=device)
    for seed in range(4):
        B = _rhs(seed=seed, device=device)
        _expect(A, B, sparse_solve_c4t(A, B))
    assert factorizations.calls == 1
    assert factor_cache.hits == 3 and factor_cache.misses == 1


def test_an_iterative_forward_with_a_direct_backward_uses_the_cache(factorizations):
    A = case("nonsymmetric").make().requires_grad_(True)
    for _ in range(2):
        b = _rhs(1)[:, 0]
        sparse_solve_c4t(A, b, solve="gmres", transpose_solve="spsolve").sum().backward()
    assert factorizations.calls == 1


def test_changing_values_in_place_forces_a_refactorization(factorizations, device):
    A = case("nonsymmetric").make(device=device)
    B = _rhs(device=device)
    sparse_solve_c4t(A, B)
    A.values().mul_(2.0)  # through torch: the version counter moves
    X = sparse_solve_c4t(A, B)
    assert factorizations.calls == 2
    _expect(A, B, X)
    A.mul_(0.5)  # on A itself
    X = sparse_solve_c4t(A, B)
    assert factorizations.calls == 3
    _expect(A, B, X)


def test_changes_that_bypass_version_counters_are_seen(factorizations):
    A = case("nonsymmetric").make(layout=torch.sparse_coo)
    B = _rhs()
    sparse_solve_c4t(A, B)
    A._values().data.add_(1.0)  # .data: no version counter moves
    X = sparse_solve_c4t(A, B)
    assert factorizations.calls == 2
    _expect(A, B, X)
    A._values().numpy()[0] += 5.0  # a NumPy view
    X = sparse_solve_c4t(A, B)
    assert factorizations.calls == 3
    _expect(A, B, X)


def test_values_leaf_of_a_tsgu_constructor_updated_by_an_optimizer(factorizations):
    """A built by tsgu's constructors shares its leaf's storage but not its version counter."""
    A0 = case("nonsymmetric").make()
    values = A0.values().clone().requires_grad_(True)
    A = tc.sparse_csr_tensor(A0.crow_indices(), A0.col_indices(), values, A0.shape)
    B = _rhs()
    opt = torch.optim.SGD([values], lr=0.05)
    for step in range(3):
        opt.zero_grad()
        X = sparse_solve_c4t(A, B)  # the same tensor A each step
        _expect(A.detach(), B, X.detach())
        X.square().sum().backward()
        opt.step()  # in place on the leaf: A's values change under it
        assert factorizations.calls == step + 1


def test_another_tensor_is_factored_anew_and_dead_tensors_leave(factorizations):
    A = case("nonsymmetric").make()
    B = _rhs()
    sparse_solve_c4t(A, B)
    alias = A.detach()  # same memory, another tensor: no identity, no reuse
    sparse_solve_c4t(alias, B)
    assert factorizations.calls == 2 and len(factor_cache) == 2
    del alias
    gc.collect()
    assert len(factor_cache) == 1


def test_the_cache_holds_a_few_matrices_only(factorizations):
    mats = [case("nonsymmetric").make(seed=s) for s in range(CAPACITY + 2)]
    B = _rhs()
    for A in mats:
        sparse_solve_c4t(A, B)
    assert len(factor_cache) == CAPACITY
    sparse_solve_c4t(mats[-1], B)  # the most recent are kept
    assert factorizations.calls == CAPACITY + 2
    sparse_solve_c4t(mats[0], B)  # the oldest went
    assert factorizations.calls == CAPACITY + 3


def test_other_factorization_options_are_a_miss(factorizations):
    A = case("nonsymmetric").make()
    B = _rhs()
    sparse_solve_c4t(A, B)
    X = sparse_solve_c4t(A, B, permc_spec="NATURAL")
    assert factorizations.calls == 2
    _expect(A, B, X)
    sparse_solve_c4t(A, B, permc_spec="NATURAL", rtol=1.0)  # iteration controls do not count
    assert factorizations.calls == 2


def test_the_cache_keeps_no_matrix_alive():
    A = case("nonsymmetric").make()
    sparse_solve_c4t(A, _rhs())
    ref = weakref.ref(A)
    del A
    gc.collect()
    assert ref() is None and len(factor_cache) == 0
