"""sparse_mm with a sparse B: the symbolic product's pattern, sparse gradients for both
factors at their own patterns, second derivatives, batches, compositions, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
import tsgu.core.matmul_sparse as matmul_sparse
from tsgu.core._pattern_cache import clear_pattern_cache
from tsgu.core.extend import values_of
from tsgu.core.testing import (
    BATCH_FORMS,
    assert_error_policy,
    case,
    generator,
    to_layout,
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
    # two 12 x 12 matrices of different patterns
    make = {"layout": layout, "index_dtype": index_dtype, "batch": batch, "dtype": dtype}
    return case("nonsymmetric").make(**make), case("symmetric_indefinite").make(**make)


def _symbolic(A, B):
    # the symbolic product's pattern, per batch item: entries reached by a stored A[i, k], B[k, j]
    return ((A.to_dense() != 0).double() @ (B.to_dense() != 0).double()) != 0


def _indices(S):
    if S.layout == torch.sparse_coo:
        return (S._indices(),)
    return (S.crow_indices(), S.col_indices())


def _flat_values(S):
    return S.values().reshape(-1) if S.layout != torch.sparse_coo else S._values()


@pytest.fixture(
    params=[(None, None), (7, None), (7, 0)], ids=["one-chunk", "small-chunks", "table-walk"]
)
def chunks(request, monkeypatch):
    # small chunks run the chunked walks with many chunks and tables; a padding allowance of
    # 0 turns the padded walk off, so the table walk computes every product
    size, waste = request.param
    if size is not None:
        monkeypatch.setattr(matmul_sparse, "_TRIPLES_PER_CHUNK", size)
        monkeypatch.setattr(matmul_sparse, "_TABLE_ENTRIES", 40)
    if waste is not None:
        monkeypatch.setattr(matmul_sparse, "_PAD_WASTE", waste)
    clear_pattern_cache()  # plans made under other settings are not reused
    yield size
    clear_pattern_cache()


@pytest.fixture(params=[None, 0], ids=["padded-walk", "table-walk"])
def walk(request, monkeypatch):
    # the two walks over the triples, each in one chunk (chunking: the fixture above)
    if request.param is not None:
        monkeypatch.setattr(matmul_sparse, "_PAD_WASTE", request.param)
    clear_pattern_cache()
    yield request.param
    clear_pattern_cache()


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_rectangular_factors(layout):
    A = case("rectangular").make(layout=layout, index_dtype=torch.int32, dtype=torch.float64)
    values, rebuild = with_values(A)

    def f(v):  # (16 x 10) @ (10 x 16), both factors from the same values
        S = rebuild(v)
        return (values_of(tc.sparse_mm(S, tc.sparse_transpose(S))) ** 2).sum()

    C = tc.sparse_mm(A, tc.sparse_transpose(A))
    assert C.shape == (16, 16)
    torch.testing.assert_close(C.to_dense(), A.to_dense() @ A.to_dense().mT)
    assert gradcheck(f, (values,))
    assert gradgradcheck(f, (values,))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agrees_with_dense_on_the_symbolic_pattern(layout, index_dtype, batch, dtype):
    A, B = _pair(layout, index_dtype, batch, dtype)
    C = tc.sparse_mm(A, B)
    assert C.layout == layout and C.dtype == dtype and C.shape == (*A.shape[:-1], B.shape[-1])
    torch.testing.assert_close(C.to_dense(), A.to_dense() @ B.to_dense(), **tol(dtype))
    pattern = _symbolic(A, B)
    if layout == torch.sparse_csr:
        assert C.crow_indices().dtype == index_dtype
        torch._validate_sparse_csr_tensor_args(
            C.crow_indices(), C.col_indices(), C.values(), C.shape
        )
        per_item = pattern.reshape(-1, *pattern.shape[-2:]).sum(dim=(1, 2))
        assert C.values().shape[-1] == int(per_item.max())
    else:
        assert C.is_coalesced() and C._nnz() == int(pattern.sum())
        dense_pattern = torch.zeros(C.shape, dtype=torch.bool)
        dense_pattern[tuple(C._indices())] = True
        assert torch.equal(dense_pattern, pattern)


def test_cancellation_keeps_the_structural_entry():
    A = torch.tensor([[1.0, 1.0]], dtype=torch.float64).to_sparse_csr()
    B = torch.tensor([[1.0], [-1.0]], dtype=torch.float64).to_sparse_csr()
    C = tc.sparse_mm(A, B)
    assert C.values().numel() == 1 and float(C.values()[0]) == 0.0


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck_and_gradgradcheck(layout, index_dtype, batch, walk):
    A, B = _pair(layout, index_dtype, batch)
    values_A, rebuild_A = with_values(A)
    values_B, rebuild_B = with_values(B)
    W = torch.randn((*A.shape[:-1], B.shape[-1]), generator=generator(2)).double()

    def f(a, b):  # squared, so that second derivatives in a and in b are not zero
        return weighted_sum(tc.sparse_mm(rebuild_A(a), rebuild_B(b)), W) ** 2

    assert gradcheck(f, (values_A, values_B))
    assert gradgradcheck(f, (values_A, values_B))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_at_each_inputs_pattern_agree_with_dense(
    layout, index_dtype, batch, dtype, chunks
):
    A, B = _pair(layout, index_dtype, batch, dtype)
    A.requires_grad_(True)
    B.requires_grad_(True)
    W = torch.randn((*A.shape[:-1], B.shape[-1]), generator=generator(4), dtype=dtype)
    weighted_sum(tc.sparse_mm(A, B), W).backward()
    dense_A = A.detach().to_dense().requires_grad_(True)
    dense_B = B.detach().to_dense().requires_grad_(True)
    ((dense_A @ dense_B) * W).sum().backward()
    for S, dense in ((A, dense_A), (B, dense_B)):
        grad = S.grad
        assert grad.layout == layout and grad.shape == S.shape
        for ours, theirs in zip(_indices(grad), _indices(S), strict=True):
            assert torch.equal(ours, theirs) and ours.dtype == theirs.dtype
        torch.testing.assert_close(_flat_values(grad), values_at(S, dense.grad), **tol(dtype))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_a_second_call_reuses_the_plan(layout, index_dtype, batch, walk, monkeypatch):
    A, B = _pair(layout, index_dtype, batch)
    values_A, rebuild_A = with_values(A)
    values_B, rebuild_B = with_values(B)
    first = tc.sparse_mm(rebuild_A(values_A), rebuild_B(values_B))

    def no_symbolic_work(*args):
        raise AssertionError("the second call found C's pattern again")

    monkeypatch.setattr(matmul_sparse._Plan, "first_product", no_symbolic_work)
    again = tc.sparse_mm(rebuild_A(values_A * 2), rebuild_B(values_B))
    for ours, theirs in zip(_indices(again), _indices(first), strict=True):
        # the very index memory: the next operation's pattern is cached too
        assert ours.data_ptr() == theirs.data_ptr() and torch.equal(ours, theirs)
    expected = 2 * (A.to_dense() @ B.to_dense())
    torch.testing.assert_close(again.detach().to_dense(), expected)
    W = torch.randn(first.shape, generator=generator(3), dtype=torch.float64)
    weighted_sum(again, W).backward()
    dense_A = A.to_dense().requires_grad_(True)
    (((2 * dense_A) @ B.to_dense()) * W).sum().backward()
    torch.testing.assert_close(values_A.grad.reshape(-1), values_at(A, dense_A.grad).reshape(-1))


def test_csc_B_and_mixed_layouts():
    A, B = _pair(torch.sparse_csr, torch.int32, "unbatched")
    for other in (B.to_sparse_csc(), B.to_sparse_coo()):
        values_B, rebuild_B = with_values(other)
        C = tc.sparse_mm(A, rebuild_B(values_B))
        assert C.layout == torch.sparse_csr and C.crow_indices().dtype == torch.int32
        torch.testing.assert_close(C.to_dense(), A.to_dense() @ B.to_dense())
        W = torch.randn(C.shape, generator=generator(1)).double()
        weighted_sum(C, W).backward()
        torch.testing.assert_close(values_B.grad, values_at(other, A.to_dense().mT @ W))


def test_uncoalesced_coo_duplicates_each_get_their_gradient():
    indices = torch.tensor([[1, 0, 1], [0, 1, 0]])
    values = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    A = tc.sparse_coo_tensor(indices, values, (2, 2))
    B = torch.tensor([[5.0, 0.0], [7.0, 1.0]], dtype=torch.float64).to_sparse()
    C = tc.sparse_mm(A, B)
    dense_A = torch.tensor([[0.0, 2.0], [4.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(C.to_dense(), dense_A @ B.to_dense())
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    weighted_sum(C, W).backward()
    G = W @ B.to_dense().mT
    torch.testing.assert_close(values.grad, G[indices[0], indices[1]])


def test_batched_csr_items_of_different_product_sizes():
    dense_A = torch.zeros(2, 3, 3, dtype=torch.float64)
    dense_A[0, 0, 0] = dense_A[0, 2, 1] = 1.0
    dense_A[1, 0, 1] = dense_A[1, 1, 1] = 2.0
    dense_B = torch.zeros(2, 3, 3, dtype=torch.float64)
    dense_B[0, 0, 2] = dense_B[0, 2, 0] = 3.0  # item 0's product: 1 entry
    dense_B[1, 1, 2] = dense_B[1, 0, 0] = 4.0  # item 1's product: 2 entries
    A, B = dense_A.to_sparse_csr(), dense_B.to_sparse_csr()
    values, rebuild = with_values(A)
    C = tc.sparse_mm(rebuild(values), B)
    torch._validate_sparse_csr_tensor_args(C.crow_indices(), C.col_indices(), C.values(), C.shape)
    assert C.values().shape == (2, 2)  # each item stores the union, zeros where absent
    torch.testing.assert_close(C.detach().to_dense(), dense_A @ dense_B)
    W = torch.randn(2, 3, 3, generator=generator(0), dtype=torch.float64)
    weighted_sum(C, W).backward()
    torch.testing.assert_close(values.grad.reshape(-1), values_at(A, W @ dense_B.mT))


def test_galerkin_product_differentiates_end_to_end():
    # P^T A P with trainable values in every factor; the loss is a Frobenius norm of values
    A = tc.poisson_2d(4, dtype=torch.float64, index_dtype=torch.int32)
    dense_P = torch.zeros(16, 4, dtype=torch.float64)
    dense_P[torch.arange(16), torch.arange(16) // 4] = 1.0
    P = dense_P.to_sparse_csr()
    values_A, rebuild_A = with_values(A)
    values_P, rebuild_P = with_values(P)

    def f(a, p):
        Pv = rebuild_P(p)
        coarse = tc.sparse_mm(tc.sparse_transpose(Pv), tc.sparse_mm(rebuild_A(a), Pv))
        return (values_of(coarse) ** 2).sum()

    assert gradcheck(f, (values_A, values_P))
    assert gradgradcheck(f, (values_A, values_P))
    loss = f(values_A, values_P)
    dense = dense_P.requires_grad_(True)
    dense_A = A.to_dense().requires_grad_(True)
    expected = ((dense.mT @ dense_A @ dense) ** 2).sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(values_A.grad.reshape(-1), values_at(A, dense_A.grad).reshape(-1))
    torch.testing.assert_close(values_P.grad, values_at(P, dense.grad))


def test_spai_loss_composes():
    # || I - M A ||_F^2 over the values of M, with mask(M) = mask(A)
    A = tc.poisson_2d(3, dtype=torch.float64)
    values_M, rebuild_M = with_values(A)
    values_M = (values_M / 4).detach().requires_grad_(True)
    eye = tc.sparse_eye(9, layout=torch.sparse_csr)
    R = tc.sparse_add(eye, tc.sparse_mm(rebuild_M(values_M), A), 1.0, -1.0)
    loss = (values_of(R) ** 2).sum()
    dense_M = torch.zeros(9, 9, dtype=torch.float64)
    dense_M[A.to_dense() != 0] = values_M.detach()
    dense_M.requires_grad_(True)
    expected = ((torch.eye(9, dtype=torch.float64) - dense_M @ A.to_dense()) ** 2).sum()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(values_M.grad, dense_M.grad[A.to_dense() != 0])


def _bad_args(**kw):
    A, B = _pair(torch.sparse_csr, torch.int64, "unbatched")
    args = {"A": A, "B": B}
    args.update(kw)
    return args


@pytest.mark.parametrize(
    ("make", "error", "start"),
    [
        (
            lambda: _bad_args(B=torch.ones(12, 3, dtype=torch.float64).to_sparse_bsr((2, 1))),
            TypeError,
            "sparse_mm: B must be a sparse COO, CSR or CSC tensor",
        ),
        (
            lambda: _bad_args(B=torch.ones(5, 3, dtype=torch.float64).to_sparse_csr()),
            ValueError,
            "sparse_mm: B must have 12 rows",
        ),
        (
            lambda: _bad_args(B=torch.ones(2, 12, 3, dtype=torch.float64).to_sparse_csr()),
            ValueError,
            "sparse_mm: B must have 2 dimensions",
        ),
        (
            lambda: _bad_args(B=torch.ones(12, 3).to_sparse_csr()),
            ValueError,
            "sparse_mm: A and B must have the same dtype",
        ),
        (
            lambda: {
                "A": torch.ones(2, 3, 3, dtype=torch.float64).to_sparse_csr(),
                "B": torch.ones(3, 3, 3, dtype=torch.float64).to_sparse_csr(),
            },
            ValueError,
            "sparse_mm: batch sizes must match",
        ),
        (
            lambda: _bad_args(A=torch.ones(12, 12, dtype=torch.float64)),
            TypeError,
            "sparse_mm: A must be a sparse COO or CSR tensor",
        ),
    ],
    ids=["bsr", "rows", "dims", "dtype", "batch", "dense-A"],
)
def test_bad_input(make, error, start):
    with pytest.raises(error) as info:
        tc.sparse_mm(**make())
    assert_error_policy(info.value, start)
    assert "to_dense" not in str(info.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_mismatch_is_a_value_error():
    A, B = _pair(torch.sparse_csr, torch.int64, "unbatched")
    with pytest.raises(ValueError, match="must be on the same device"):
        tc.sparse_mm(A, B.to("cuda"))


_NO_GRAD_OPS = {
    "sparse_mm dense": lambda A, B, x: tc.sparse_mm(A, x),
    "sparse_mm sparse": lambda A, B, x: tc.sparse_mm(A, B),
    "sparse_add": lambda A, B, x: tc.sparse_add(A, B, 2.0, -0.5),
    "sparse_add same pattern": lambda A, B, x: tc.sparse_add(A, A, 2.0, -0.5),
    "triangular": lambda A, B, x: tc.sparse_triangular_solve(
        tc.sparse_add(A, B), x, upper=False, unitriangular=True
    ),
}


@pytest.mark.parametrize("op", list(_NO_GRAD_OPS))
@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_no_grad_calls_give_the_values_of_recorded_ones(op, layout, index_dtype):
    """Without a graph to record (no_grad, or no input that requires grad) the operations
    skip autograd's Function: the same values, nothing recorded; a later recorded call on
    the kept patterns still has its gradients."""
    clear_pattern_cache()
    A, B = _pair(layout, index_dtype, "single")
    values_A, rebuild_A = with_values(A)
    values_B, rebuild_B = with_values(B)
    x = torch.randn(12, 2, generator=generator(3), dtype=torch.float64, requires_grad=True)
    call = _NO_GRAD_OPS[op]

    def dense(out):
        return out.to_dense() if out.layout != torch.strided else out

    recorded = call(rebuild_A(values_A), rebuild_B(values_B), x)
    with torch.no_grad():
        quiet = call(rebuild_A(values_A), rebuild_B(values_B), x)
    assert not quiet.requires_grad and quiet.grad_fn is None
    torch.testing.assert_close(dense(quiet), dense(recorded.detach()))
    plain = call(A, B, x.detach())  # grad enabled, no input that requires grad
    assert not plain.requires_grad
    torch.testing.assert_close(dense(plain), dense(recorded.detach()))
    W = torch.randn(
        12,
        12 if op != "sparse_mm dense" and op != "triangular" else 2,
        generator=generator(4),
        dtype=torch.float64,
    )
    again = call(rebuild_A(values_A), rebuild_B(values_B), x)
    grads = torch.autograd.grad((dense(again) * W).sum(), (values_A,), allow_unused=True)
    expected = torch.autograd.grad((dense(recorded) * W).sum(), (values_A,), allow_unused=True)
    for got, want in zip(grads, expected, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want)


def _aggregation(batch, layout, index_dtype, rows=12, columns=4):
    # a prolongator with one entry per row (row i in aggregate i // 3), values differ per item
    gen = generator(5)
    count = 3 if batch == "batched" else 1
    dense = torch.zeros(count, rows, columns, dtype=torch.float64)
    dense[:, torch.arange(rows), torch.arange(rows) // (rows // columns)] = 1 + torch.rand(
        count, rows, generator=gen, dtype=torch.float64
    )
    return to_layout(dense if batch == "batched" else dense[0], layout, index_dtype)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_one_entry_of_B_per_entry_of_A_walks_stored_indices(
    layout, index_dtype, batch, monkeypatch
):
    # A @ P with an aggregation P: each entry of A meets one entry of P, so every call after
    # the first (which finds C's pattern) and every gradient takes the stored-index walk
    clear_pattern_cache()
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    P = _aggregation(batch, layout, index_dtype)
    walks = []
    original = matmul_sparse._Plan._walk_one_each

    def counted(self, *args):
        walks.append(1)
        return original(self, *args)

    monkeypatch.setattr(matmul_sparse._Plan, "_walk_one_each", counted)
    values_A, rebuild_A = with_values(A)
    values_P, rebuild_P = with_values(P)
    expected = A.to_dense() @ P.to_dense()
    first = tc.sparse_mm(rebuild_A(values_A), rebuild_P(values_P))
    assert not walks  # the first call is torch's kernel, which finds C's pattern
    for _ in range(2):  # a later call: the walk, same values
        again = tc.sparse_mm(rebuild_A(values_A), rebuild_P(values_P))
        torch.testing.assert_close(again.detach().to_dense(), expected)
        torch.testing.assert_close(_flat_values(again), _flat_values(first))
    assert len(walks) == 2
    W = torch.randn(expected.shape, generator=generator(6), dtype=torch.float64)

    def f(a, p):
        return weighted_sum(tc.sparse_mm(rebuild_A(a), rebuild_P(p)), W) ** 2

    assert gradcheck(f, (values_A, values_P))
    assert gradgradcheck(f, (values_A, values_P))
    dense_A = A.to_dense().requires_grad_(True)
    dense_P = P.to_dense().requires_grad_(True)
    ((dense_A @ dense_P) * W).sum().backward()
    weighted_sum(tc.sparse_mm(rebuild_A(values_A), rebuild_P(values_P)), W).backward()
    torch.testing.assert_close(values_A.grad.reshape(-1), values_at(A, dense_A.grad).reshape(-1))
    torch.testing.assert_close(values_P.grad.reshape(-1), values_at(P, dense_P.grad).reshape(-1))
    clear_pattern_cache()


def test_a_row_of_B_with_two_entries_or_none_takes_the_other_walks(monkeypatch):
    # one entry per row is what the stored-index walk needs: a row with two, or an empty row
    # that an entry of A reaches, sends the product back to torch's kernel and the other walks
    def refuse(self, *args):
        raise AssertionError("stored-index walk on a B with a longer or an empty row")

    monkeypatch.setattr(matmul_sparse._Plan, "_walk_one_each", refuse)
    A = case("nonsymmetric").make(layout=torch.sparse_csr, index_dtype=torch.int32)
    for edit in ((0, 3), (5, None)):  # row 0 gets a second entry; row 5 loses its one
        clear_pattern_cache()
        dense = _aggregation("unbatched", torch.sparse_csr, torch.int32).to_dense()
        row, column = edit
        if column is None:
            dense[row] = 0
        else:
            dense[row, column] = 2.0
        P = to_layout(dense, torch.sparse_csr, torch.int32)
        values_P, rebuild_P = with_values(P)
        for _ in range(2):
            C = tc.sparse_mm(A, rebuild_P(values_P))
            torch.testing.assert_close(C.detach().to_dense(), A.to_dense() @ dense)
        weighted_sum(C, torch.ones(C.shape, dtype=torch.float64)).backward()
        torch.testing.assert_close(
            values_P.grad, values_at(P, A.to_dense().mT @ torch.ones(C.shape).double())
        )
    clear_pattern_cache()


def test_forward_only_calls_make_no_walk_tables(monkeypatch):
    # a B row with more than one entry: later forwards are torch's kernel, and the padded
    # walk's rank table (made for gradients) is not built by them
    clear_pattern_cache()
    A, B = _pair(torch.sparse_csr, torch.int32, "unbatched")

    def no_ranks(self):
        raise AssertionError("a forward-only call built the walk's rank table")

    monkeypatch.setattr(matmul_sparse._Plan, "ranks", property(no_ranks))
    values_A, rebuild_A = with_values(A)
    with torch.no_grad():
        for scale in (1.0, 2.0):  # the second call reuses the first one's plan
            C = tc.sparse_mm(rebuild_A(values_A * scale), B)
    torch.testing.assert_close(C.to_dense(), 2 * (A.to_dense() @ B.to_dense()))
    clear_pattern_cache()
