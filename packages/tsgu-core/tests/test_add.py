"""sparse_add: the union pattern, gradients for A, B, alpha and beta, second derivatives, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.extend import values_of
from tsgu.core.testing import (
    BATCH_FORMS,
    assert_error_policy,
    case,
    generator,
    tol,
    values_at,
    weighted_sum,
    with_values,
)

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int32, id="coo-int32"),
    pytest.param(torch.sparse_coo, torch.int64, id="coo-int64"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


def _pair(layout, index_dtype, batch, dtype=torch.float64):
    # two 12 x 12 cases with different patterns: the union is larger than either
    make = {"layout": layout, "index_dtype": index_dtype, "batch": batch, "dtype": dtype}
    return case("nonsymmetric").make(**make), case("symmetric_indefinite").make(**make)


def _indices(S):
    if S.layout == torch.sparse_coo:
        return (S._indices(),)
    return (S.crow_indices(), S.col_indices())


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agrees_with_dense_on_the_union(layout, index_dtype, batch, dtype):
    A, B = _pair(layout, index_dtype, batch, dtype)
    C = tc.sparse_add(A, B, 2.0, -0.5)
    assert C.layout == layout and C.dtype == dtype and C.shape == A.shape
    torch.testing.assert_close(C.to_dense(), 2 * A.to_dense() - 0.5 * B.to_dense(), **tol(dtype))
    union = (A.to_dense() != 0) | (B.to_dense() != 0)
    if layout == torch.sparse_csr:
        assert C.crow_indices().dtype == index_dtype
        torch._validate_sparse_csr_tensor_args(
            C.crow_indices(), C.col_indices(), C.values(), C.shape
        )
        assert C.values().shape[-1] == int(
            union.reshape(-1, *union.shape[-2:]).sum(dim=(1, 2)).max()
        )
    else:
        assert C.is_coalesced()
        assert C._nnz() == int(union.sum())


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck_and_gradgradcheck(layout, index_dtype, batch):
    A, B = _pair(layout, index_dtype, batch)
    values_A, rebuild_A = with_values(A)
    values_B, rebuild_B = with_values(B)
    alpha = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(-1.3, dtype=torch.float64, requires_grad=True)
    W = torch.randn(A.shape, generator=generator(2)).double()

    def f(a, b, s, t):
        return weighted_sum(tc.sparse_add(rebuild_A(a), rebuild_B(b), s, t), W) ** 2

    inputs = (values_A, values_B, alpha, beta)
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradients_have_each_inputs_pattern_and_order(layout, index_dtype, batch):
    A, B = _pair(layout, index_dtype, batch)
    A.requires_grad_(True)
    B.requires_grad_(True)
    W = torch.randn(A.shape, generator=generator(4)).double()
    weighted_sum(tc.sparse_add(A, B, 3.0, -2.0), W).backward()
    for S, scale in ((A, 3.0), (B, -2.0)):
        grad = S.grad
        assert grad.layout == layout and grad.shape == S.shape
        for ours, theirs in zip(_indices(grad), _indices(S), strict=True):
            assert torch.equal(ours, theirs) and ours.dtype == theirs.dtype
        flat = grad.values().reshape(-1) if layout == torch.sparse_csr else grad._values()
        torch.testing.assert_close(flat, scale * values_at(S, W))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_a_second_call_reuses_the_union(layout, index_dtype, batch, monkeypatch):
    import tsgu.core.add as add

    A, B = _pair(layout, index_dtype, batch)
    values_A, rebuild_A = with_values(A)
    values_B, rebuild_B = with_values(B)
    first = tc.sparse_add(rebuild_A(values_A), rebuild_B(values_B), 1.0, -0.5)

    def no_union(*args):
        raise AssertionError("the second call found the union again")

    monkeypatch.setattr(add, "_union", no_union)
    again = tc.sparse_add(rebuild_A(values_A), rebuild_B(3 * values_B), 1.0, -0.5)
    for ours, theirs in zip(_indices(again), _indices(first), strict=True):
        assert ours.data_ptr() == theirs.data_ptr() and torch.equal(ours, theirs)
    expected = A.to_dense() - 1.5 * B.to_dense()
    torch.testing.assert_close(again.detach().to_dense(), expected)
    W = torch.randn(A.shape, generator=generator(3), dtype=torch.float64)
    weighted_sum(again, W).backward()
    torch.testing.assert_close(values_A.grad.reshape(-1), values_at(A, W).reshape(-1))


def test_same_indices_keep_the_pattern():
    A, _ = _pair(torch.sparse_csr, torch.int32, "unbatched")
    B = torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), 2 * A.values(), A.shape)
    C = tc.sparse_add(A, B, 1.0, -0.5)
    assert torch.equal(C.col_indices(), A.col_indices())
    assert C.crow_indices().dtype == torch.int32
    torch.testing.assert_close(C.values(), torch.zeros_like(A.values()))


def test_uncoalesced_coo_duplicates_are_summed():
    indices = torch.tensor([[1, 0, 1], [0, 1, 0]])
    values = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    A = tc.sparse_coo_tensor(indices, values, (2, 2))
    B = torch.tensor([[5.0, 0.0], [7.0, 0.0]], dtype=torch.float64).to_sparse()
    C = tc.sparse_add(A, B)
    assert C.is_coalesced() and C._nnz() == 3
    torch.testing.assert_close(C.to_dense(), torch.tensor([[5.0, 2.0], [11.0, 0.0]]).double())
    weighted_sum(C, torch.tensor([[1.0, 2.0], [3.0, 4.0]]).double()).backward()
    torch.testing.assert_close(values.grad, torch.tensor([3.0, 2.0, 3.0]).double())


def test_batched_csr_items_of_different_patterns_share_the_union():
    dense_A = torch.zeros(2, 3, 3, dtype=torch.float64)
    dense_A[0, 0, 0] = dense_A[1, 2, 2] = 1.0
    dense_B = torch.zeros(2, 3, 3, dtype=torch.float64)
    dense_B[0, 0, 0] = dense_B[1, 1, 2] = 2.0
    A, B = dense_A.to_sparse_csr(), dense_B.to_sparse_csr()  # 1 entry per item in each
    C = tc.sparse_add(A, B)
    # item 0 has one entry, item 1 two: both store the union (3 entries), zeros where absent
    assert C.values().shape == (2, 3)
    torch.testing.assert_close(C.to_dense(), dense_A + dense_B)


def test_identity_minus_a_sparse_matrix():
    M, _ = _pair(torch.sparse_csr, torch.int64, "unbatched")
    values, rebuild = with_values(M)
    eye = tc.sparse_eye(12, layout=torch.sparse_csr)
    R = tc.sparse_add(eye, rebuild(values), 1.0, -1.0)
    torch.testing.assert_close(R.to_dense(), torch.eye(12).double() - M.to_dense())
    loss = (values_of(R) ** 2).sum()  # the Frobenius norm squared of I - M
    loss.backward()
    expected = -2 * values_at(M, torch.eye(12).double() - M.to_dense())
    torch.testing.assert_close(values.grad, expected)


def _bad(**kw):
    A = torch.eye(3, dtype=torch.float64).to_sparse_csr()
    args = {"A": A, "B": A, "alpha": 1.0, "beta": 1.0}
    args.update(kw)
    return args


@pytest.mark.parametrize(
    ("args", "error", "start"),
    [
        (_bad(A=torch.eye(3)), TypeError, "sparse_add: A must be a sparse COO or CSR tensor"),
        (_bad(B=torch.eye(3)), TypeError, "sparse_add: B must be a sparse COO or CSR tensor"),
        (
            _bad(B=torch.eye(3).double().to_sparse()),
            TypeError,
            "sparse_add: B must have A's layout",
        ),
        (
            _bad(B=torch.eye(4).double().to_sparse_csr()),
            ValueError,
            "sparse_add: B must have A's shape",
        ),
        (
            _bad(B=torch.eye(3).to_sparse_csr()),
            ValueError,
            "sparse_add: A and B must have the same dtype",
        ),
        (
            _bad(
                A=torch.eye(3, dtype=torch.int64).to_sparse_csr(),
                B=torch.eye(3, dtype=torch.int64).to_sparse_csr(),
            ),
            ValueError,
            "sparse_add: A must have dtype float32 or float64",
        ),
        (
            _bad(alpha="2"),
            TypeError,
            "sparse_add: alpha must be a number or a 0-dimensional tensor",
        ),
        (
            _bad(beta=torch.ones(2)),
            ValueError,
            "sparse_add: beta must be a number or a 0-dimensional",
        ),
        (
            _bad(beta=torch.tensor(2)),
            ValueError,
            "sparse_add: beta must have a floating-point dtype",
        ),
    ],
    ids=[
        "A-dense",
        "B-dense",
        "layouts",
        "shapes",
        "dtypes",
        "int-values",
        "alpha-str",
        "beta-1d",
        "beta-int",
    ],
)
def test_bad_input(args, error, start):
    with pytest.raises(error) as info:
        tc.sparse_add(**args)
    assert_error_policy(info.value, start)


def test_merge_of_sorted_keys_matches_a_sort():
    from tsgu.core.add import _union

    gen = generator(0)
    for _ in range(100):
        sizes = torch.randint(0, 20, (2,), generator=gen).tolist()
        a, b = (torch.unique(torch.randint(0, 50, (k,), generator=gen)) for k in sizes)
        union, where = _union(a, b)
        expected, inverse = torch.unique(torch.cat([a, b]), sorted=True, return_inverse=True)
        assert torch.equal(union, expected)
        assert torch.equal(where, inverse)


def _disjoint_pair():
    # the benchmark's union: a tridiagonal A and a second superdiagonal B (no shared entry)
    i = torch.arange(8)
    A = torch.sparse_coo_tensor(torch.stack([i, i]), torch.ones(8), (8, 8)).coalesce()
    j = torch.arange(6)
    B = torch.sparse_coo_tensor(torch.stack([j, j + 2]), torch.ones(6), (8, 8)).coalesce()
    return A.double().to_sparse_csr(), B.double().to_sparse_csr()


def _triplicate_pair():
    # an uncoalesced COO A with three values in one slot, and a B sharing that slot
    A = torch.sparse_coo_tensor(torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]]), torch.ones(4), (2, 2))
    B = torch.tensor([[0.0, 0.0], [7.0, 1.0]]).to_sparse()
    return A.double(), B.double()


def _padded_pair():
    dense_A = torch.zeros(2, 3, 3, dtype=torch.float64)
    dense_A[0, 0, 0] = dense_A[1, 2, 2] = 1.0
    dense_B = torch.zeros(2, 3, 3, dtype=torch.float64)
    dense_B[0, 0, 0] = dense_B[1, 1, 2] = 2.0
    return dense_A.to_sparse_csr(), dense_B.to_sparse_csr()


@pytest.mark.parametrize(
    ("make", "gathers", "adds"),
    [
        pytest.param(_disjoint_pair, True, False, id="disjoint"),
        pytest.param(
            lambda: _pair(torch.sparse_csr, torch.int32, "unbatched"), True, True, id="overlap"
        ),
        pytest.param(_triplicate_pair, True, True, id="coo-duplicates"),
        pytest.param(_padded_pair, False, True, id="batched-csr-padding"),
    ],
)
def test_placing_values_is_the_scatter_add_bit_for_bit(make, gathers, adds):
    # the output's values are a gather (plus an add of the entries that share a slot):
    # the same bits, in the same order of addition, as a scatter-add into zeros
    from tsgu.core.add import _Union
    from tsgu.core.extend import Pattern

    A, B = make()
    union = _Union(Pattern.of(A), Pattern.of(B))
    assert (union.first is not None) == gathers
    assert (union.first is None or union.rest is not None) == adds
    both = torch.randn(union.where.numel(), generator=generator(5), dtype=torch.float64) / 3
    expected = both.new_zeros(union.output.nnz).index_add(0, union.where, both)
    assert torch.equal(union.place(both), expected)
    both.requires_grad_(True)
    assert gradcheck(union.place, (both,))
    assert gradgradcheck(union.place, (both,))
