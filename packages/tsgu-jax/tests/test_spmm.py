"""spmm_t4j and SparseMatvec: A @ x in JAX for a torch sparse A, and JAX's transformations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from tsgu.core.testing import case, generator, to_layout  # noqa: E402
from tsgu.jax import SparseMatvec, spmm_t4j, t2j  # noqa: E402

FORMS = {
    "coo": (torch.sparse_coo, torch.int64),
    "csr-int32": (torch.sparse_csr, torch.int32),
    "csr-int64": (torch.sparse_csr, torch.int64),
}


def _matrix(form, dtype=torch.float32, name="rectangular"):
    layout, index_dtype = FORMS[form]
    dense = case(name).dense(dtype=dtype)
    return dense, to_layout(dense, layout, index_dtype)


@pytest.mark.parametrize("form", list(FORMS))
def test_matches_dense_vector_and_block(no_x64, form):
    dense, A = _matrix(form)  # 16 x 10
    matvec = spmm_t4j(A)
    assert isinstance(matvec, SparseMatvec) and matvec.shape == (16, 10)
    assert matvec.values.unsafe_buffer_pointer() == A.values().data_ptr()  # shared
    x = torch.randn(10, generator=generator(0))
    X = torch.randn(10, 4, generator=generator(1))
    np.testing.assert_allclose(np.asarray(matvec(t2j(x))), (dense @ x).numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(matvec @ t2j(X)), (dense @ X).numpy(), rtol=1e-5)
    y = torch.randn(16, generator=generator(2))
    np.testing.assert_allclose(np.asarray(matvec.T(t2j(y))), (dense.T @ y).numpy(), rtol=1e-5)


def test_float64_with_x64(x64):
    dense, A = _matrix("csr-int64", dtype=torch.float64, name="nonsymmetric")
    x = torch.randn(12, generator=generator(0), dtype=torch.float64)
    out = spmm_t4j(A)(t2j(x))
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(out), (dense @ x).numpy(), rtol=1e-12)


def test_uncoalesced_coo_adds_repeated_entries(no_x64):
    idx = torch.tensor([[0, 1, 0], [1, 0, 1]])
    A = torch.sparse_coo_tensor(idx, torch.tensor([1.0, 2.0, 3.0]), (2, 2))
    out = spmm_t4j(A)(jnp.array([1.0, 10.0]))
    np.testing.assert_allclose(np.asarray(out), [40.0, 2.0])


def test_jit_takes_it_as_an_argument_without_retracing(no_x64):
    traces = []

    @jax.jit
    def apply(matvec, x):
        traces.append(1)
        return matvec(x)

    _, A = _matrix("csr-int32")
    x = jnp.ones(10)
    apply(spmm_t4j(A), x)
    other = torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), 2 * A.values(), A.shape)
    out = apply(spmm_t4j(other), x)  # same shapes, new values: a pytree argument
    assert len(traces) == 1
    expected = (other.to_dense() @ torch.ones(10)).numpy()
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5)


def test_vmap_grad_and_linear_transpose(no_x64):
    dense, A = _matrix("coo", name="nonsymmetric")
    matvec = spmm_t4j(A)
    X = jnp.asarray(np.random.default_rng(0).standard_normal((12, 3)), dtype=jnp.float32)
    batched = jax.vmap(matvec, in_axes=1, out_axes=1)(X)
    np.testing.assert_allclose(np.asarray(batched), np.asarray(matvec(X)), rtol=1e-5)
    grad = jax.grad(lambda x: matvec(x).sum())(jnp.ones(12))
    np.testing.assert_allclose(np.asarray(grad), dense.sum(0).numpy(), rtol=1e-5)
    (transposed,) = jax.linear_transpose(matvec, jnp.ones(12))(jnp.ones(12))
    np.testing.assert_allclose(np.asarray(transposed), np.asarray(matvec.T(jnp.ones(12))))


def test_repr():
    _, A = _matrix("csr-int32")
    expected = f"SparseMatvec(shape=(16, 10), nnz={A._nnz()}, dtype=float32)"
    assert repr(spmm_t4j(A)) == expected


def test_errors(no_x64):
    _, A = _matrix("csr-int32")
    with pytest.raises(TypeError, match="spmm_t4j: A must be a sparse COO or CSR tensor"):
        spmm_t4j(A.to_dense())
    with pytest.raises(TypeError, match=r"spmm_t4j: A must be a torch\.Tensor"):
        spmm_t4j(np.eye(2))
    with pytest.raises(ValueError, match="spmm_t4j: A must have 2 dimensions"):
        spmm_t4j(torch.ones(2, 2, 2).to_sparse_csr())
    with pytest.raises(ValueError, match=r"spmm_t4j: A has dtype torch\.float64.*jax_enable_x64"):
        spmm_t4j(torch.eye(2, dtype=torch.float64).to_sparse_csr())
    huge = torch.sparse_coo_tensor(torch.tensor([[2**31 + 5], [0]]), torch.ones(1), (2**31 + 9, 2))
    with pytest.raises(ValueError, match=r"spmm_t4j: A needs 64-bit indices.*jax_enable_x64"):
        spmm_t4j(huge)
    with pytest.raises(ValueError, match=r"SparseMatvec: x must have shape \(10,\)"):
        spmm_t4j(A)(jnp.ones(16))
    with pytest.raises(ValueError, match=r"SparseMatvec: x must have shape \(10,\)"):
        spmm_t4j(A)(jnp.ones((10, 2, 2)))
