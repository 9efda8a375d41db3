"""sparse_mm: values, sparse gradients, second derivatives, batches, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import (
    BATCH_FORMS,
    LAYOUTS,
    case,
    devices,
    generator,
    to_layout,
    tol,
    values_at,
    with_values,
)

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


def _matrix(layout, index_dtype, batch, dtype=torch.float64, device="cpu"):
    return case("nonsymmetric").make(
        layout=layout, index_dtype=index_dtype, batch=batch, dtype=dtype, device=device
    )


def _dense_rhs(A, k=3, seed=1):
    shape = (*A.shape[:-2], A.shape[-1], k)
    return (
        torch.randn(shape, generator=generator(seed), dtype=torch.float64).to(A.dtype).to(A.device)
    )


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", devices())
def test_agrees_with_dense(layout, index_dtype, batch, dtype, device):
    A = _matrix(layout, index_dtype, batch, dtype, device)
    B = _dense_rhs(A)
    C = tc.sparse_mm(A, B)
    assert C.dtype == dtype and C.device == A.device
    torch.testing.assert_close(C, A.to_dense() @ B, **tol(dtype))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck_and_gradgradcheck(layout, index_dtype, batch):
    A = _matrix(layout, index_dtype, batch)
    values, rebuild = with_values(A)
    B = _dense_rhs(A).requires_grad_(True)

    def f(v, b):
        return tc.sparse_mm(rebuild(v), b)

    assert gradcheck(f, (values, B))
    assert gradgradcheck(f, (values, B))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sparse_gradient_has_the_pattern_and_dense_values(layout, index_dtype, batch, dtype):
    A = _matrix(layout, index_dtype, batch, dtype).requires_grad_(True)
    B = _dense_rhs(A).requires_grad_(True)
    G = torch.randn((*A.shape[:-1], B.shape[-1]), generator=generator(7), dtype=dtype)
    tc.sparse_mm(A, B).backward(G)

    dense_A = A.detach().to_dense().requires_grad_(True)
    dense_B = B.detach().clone().requires_grad_(True)
    (dense_A @ dense_B).backward(G)

    grad = A.grad
    assert grad.layout == layout and grad.shape == A.shape
    if layout == torch.sparse_csr:
        assert grad.crow_indices().dtype == index_dtype
        assert torch.equal(grad.crow_indices(), A.crow_indices())
        assert torch.equal(grad.col_indices(), A.col_indices())
        grad_values = grad.values().reshape(-1)
    else:
        assert torch.equal(grad._indices(), A._indices())
        grad_values = grad._values()
    torch.testing.assert_close(grad_values, values_at(A, dense_A.grad), **tol(dtype))
    torch.testing.assert_close(B.grad, dense_B.grad, **tol(dtype))


def test_uncoalesced_coo_gradient_lines_up_with_the_callers_values():
    # Entries out of order and one index stored twice: C uses their sum.
    indices = torch.tensor([[2, 0, 1, 0], [1, 2, 0, 2]])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    A = tc.sparse_coo_tensor(indices, values, (3, 3))
    assert not A.is_coalesced()
    B = torch.randn(3, 2, generator=generator(0), dtype=torch.float64)
    G = torch.randn(3, 2, generator=generator(1), dtype=torch.float64)
    C = tc.sparse_mm(A, B)
    dense = torch.zeros(3, 3, dtype=torch.float64).index_put_(
        (indices[0], indices[1]), values.detach(), accumulate=True
    )
    torch.testing.assert_close(C, dense @ B)
    C.backward(G)
    expected = (G[indices[0]] * B[indices[1]]).sum(1)  # one entry per stored value
    torch.testing.assert_close(values.grad, expected)
    assert values.grad[1] == values.grad[3]  # the duplicates get the same gradient


def test_uncoalesced_coo_leaf_gets_gradient_in_its_own_order():
    indices = torch.tensor([[1, 0, 1], [0, 1, 0]])
    A = torch.sparse_coo_tensor(indices, torch.tensor([1.0, 2.0, 3.0]), (2, 2)).requires_grad_(True)
    tc.sparse_mm(A, torch.ones(2, 1)).sum().backward()
    assert not A.grad.is_coalesced()
    assert torch.equal(A.grad._indices(), indices)
    torch.testing.assert_close(A.grad._values(), torch.ones(3))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_second_derivative_in_A_matches_dense(layout, index_dtype):
    # torchsparsegradutils 0.2.2 detached A in its backward: this quantity came out wrong.
    A = _matrix(layout, index_dtype, "unbatched")
    values, rebuild = with_values(A)
    B = _dense_rhs(A).requires_grad_(True)
    (grad_B,) = torch.autograd.grad(
        tc.sparse_mm(rebuild(values), B).square().sum(), B, create_graph=True
    )
    (second,) = torch.autograd.grad(grad_B.square().sum(), values)

    dense = A.to_dense().requires_grad_(True)
    B2 = B.detach().clone().requires_grad_(True)
    (grad_B2,) = torch.autograd.grad((dense @ B2).square().sum(), B2, create_graph=True)
    (second_dense,) = torch.autograd.grad(grad_B2.square().sum(), dense)
    torch.testing.assert_close(second, values_at(A, second_dense))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_batched_equals_per_item(layout, index_dtype):
    A = _matrix(layout, index_dtype, "batched")
    B = _dense_rhs(A)
    C = tc.sparse_mm(A, B)
    for i in range(A.shape[0]):
        item = to_layout(A.to_dense()[i], layout, index_dtype)
        torch.testing.assert_close(C[i], tc.sparse_mm(item, B[i]))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_vector_rhs(layout, index_dtype):
    A = _matrix(layout, index_dtype, "unbatched").requires_grad_(True)
    b = torch.randn(A.shape[1], generator=generator(3), dtype=torch.float64, requires_grad=True)
    c = tc.sparse_mm(A, b)
    assert c.shape == (A.shape[0],)
    torch.testing.assert_close(c, A.detach().to_dense() @ b.detach())
    c.sum().backward()
    torch.testing.assert_close(b.grad, A.detach().to_dense().sum(0))


def test_only_needed_gradients_are_computed():
    A = _matrix(torch.sparse_csr, torch.int64, "unbatched")
    B = _dense_rhs(A).requires_grad_(True)
    tc.sparse_mm(A, B).sum().backward()  # A needs no gradient: only B's is formed
    assert A.grad is None and B.grad is not None
    A.requires_grad_(True)
    tc.sparse_mm(A, B.detach()).sum().backward()
    assert A.grad is not None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_matrix_and_empty_rhs(layout):
    A = to_layout(torch.zeros(4, 3, dtype=torch.float64), layout).requires_grad_(True)
    B = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    C = tc.sparse_mm(A, B)
    assert torch.equal(C, torch.zeros(4, 2, dtype=torch.float64))
    C.sum().backward()
    assert torch.equal(B.grad, torch.zeros_like(B))
    assert tc.sparse_mm(A.detach(), torch.zeros(3, 0, dtype=torch.float64)).shape == (4, 0)


def test_index_dtype_is_int32_throughout_for_int32_csr():
    A = _matrix(torch.sparse_csr, torch.int32, "batched").requires_grad_(True)
    tc.sparse_mm(A, _dense_rhs(A)).sum().backward()
    assert A.grad.crow_indices().dtype == torch.int32
    assert A.grad.col_indices().dtype == torch.int32


# ----------------------------------------------------------------------------- errors
def _csr():
    return _matrix(torch.sparse_csr, torch.int64, "unbatched")


@pytest.mark.parametrize(
    ("make_A", "message"),
    [
        (lambda: _csr().to_dense(), "A must be a sparse COO or CSR tensor, got layout dense"),
        (lambda: _csr().to_sparse_csc(), "A must be a sparse COO or CSR tensor, got layout CSC"),
        (lambda: _csr().to_sparse_bsr((2, 2)), "got layout BSR"),
        (lambda: [[1.0]], "A must be a torch.Tensor, got list"),
    ],
)
def test_wrong_layout_of_A_is_a_type_error(make_A, message):
    with pytest.raises(TypeError, match=message):
        tc.sparse_mm(make_A(), torch.ones(12, 2, dtype=torch.float64))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda A: (A, torch.ones(5, 2, dtype=torch.float64)), "B must have 12 rows"),
        (
            lambda A: (A, torch.ones(2, 12, 2, dtype=torch.float64)),
            "B must have 1 or 2 dimensions when A is 2D",
        ),
        (lambda A: (A, torch.ones(12, 2, dtype=torch.float32)), "must have the same dtype"),
        (
            lambda A: (A.to(torch.int64), torch.ones(12, 2, dtype=torch.int64)),
            "A must have dtype float32 or float64",
        ),
        (
            lambda A: (
                torch.stack([A.to_dense()] * 2).to_sparse(),
                torch.ones(3, 12, 2, dtype=torch.float64),
            ),
            "batch sizes must match",
        ),
        (
            lambda A: (
                torch.stack([A.to_dense()] * 2).to_sparse(),
                torch.ones(12, 2, dtype=torch.float64),
            ),
            "B must have 3 dimensions",
        ),
        (lambda A: (A.to_dense().to_sparse(1), torch.ones(12, 2, dtype=torch.float64)), "hybrid"),
    ],
)
def test_shape_and_dtype_mismatches_are_value_errors(make, message):
    A, B = make(_csr())
    with pytest.raises(ValueError, match=message):
        tc.sparse_mm(A, B)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_mismatch_is_a_value_error():
    A = _csr()
    with pytest.raises(ValueError, match="must be on the same device"):
        tc.sparse_mm(A, torch.ones(12, 2, dtype=torch.float64, device="cuda"))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uninitialised_output_is_never_read(monkeypatch, layout, index_dtype, dtype):
    import tsgu.core._pattern as pattern_module

    dense = torch.randn(6, 5, generator=generator(3), dtype=torch.float64).to(dtype)
    dense[[1, 4]] = 0.0  # empty rows: nothing the kernel adds there
    dense[:, 2] = 0.0  # an empty column: an empty row of the backward's transpose
    A = to_layout(dense, layout)
    if layout == torch.sparse_csr:
        A = torch.sparse_csr_tensor(
            A.crow_indices().to(index_dtype), A.col_indices().to(index_dtype), A.values(), A.shape
        )
    B = torch.randn(5, 3, generator=generator(4), dtype=torch.float64).to(dtype)
    G = torch.randn(6, 3, generator=generator(5), dtype=torch.float64).to(dtype)

    def run():
        X = B.clone().requires_grad_(True)
        C = tc.sparse_mm(A, X)
        C.backward(G)
        return C.detach(), X.grad

    monkeypatch.setattr(pattern_module, "_MKL_CPU", False)  # torch's A @ B
    expected = run()
    monkeypatch.setattr(pattern_module, "_MKL_CPU", torch.backends.mkl.is_available())
    monkeypatch.setattr(
        pattern_module, "_new_output", lambda B, nrows: B.new_full((nrows, B.shape[1]), torch.nan)
    )
    got = run()
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    torch.testing.assert_close(got[0], dense @ B, **tol(dtype))
    torch.testing.assert_close(got[1], dense.T @ G, **tol(dtype))
