"""t2j / j2t and their CSR / COO siblings: round trips, shared memory, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from jax.experimental import sparse as jsparse  # noqa: E402

from tsgu.core.testing import case, generator, to_layout  # noqa: E402
from tsgu.jax import j2t, j2t_coo, j2t_csr, t2j, t2j_coo, t2j_csr  # noqa: E402


def _same_buffer(j: jax.Array, t: torch.Tensor) -> bool:
    return j.unsafe_buffer_pointer() == t.data_ptr()


# ------------------------------------------------------------------------- dense
@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.int32, torch.bool, torch.float16, torch.complex64]
)
def test_t2j_shares_memory_and_round_trips(no_x64, dtype):
    x = (torch.arange(12) % 3).to(dtype).reshape(3, 4)
    j = t2j(x)
    assert j.shape == (3, 4)
    assert _same_buffer(j, x)
    back = j2t(j)
    assert back.data_ptr() == x.data_ptr()
    assert back.dtype == dtype
    torch.testing.assert_close(back, x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.complex128])
def test_t2j_64_bit_with_x64_shares_memory(x64, dtype):
    x = torch.arange(6).to(dtype)
    j = t2j(x)
    assert str(j.dtype) == str(dtype).removeprefix("torch.")
    assert _same_buffer(j, x)
    torch.testing.assert_close(j2t(j), x)


def test_shared_memory_is_visible_both_ways(no_x64):
    x = torch.zeros(4)
    j = t2j(x)
    x[1] = 5.0  # the one buffer: JAX sees the write (which is why the docs warn against it)
    assert float(j[1]) == 5.0
    y = jnp.arange(4.0)
    t = j2t(y)
    assert _same_buffer(y, t)
    np.testing.assert_array_equal(t.numpy(), np.asarray(y))


def test_t2j_detaches_and_makes_contiguous(no_x64):
    x = torch.randn(3, 4, generator=generator(0), requires_grad=True)
    j = t2j(x)
    np.testing.assert_array_equal(np.asarray(j), x.detach().numpy())
    xt = x.detach().T  # not contiguous: copied into row-major order
    jt = t2j(xt)
    np.testing.assert_array_equal(np.asarray(jt), xt.numpy())


def test_t2j_scalar(no_x64):
    assert float(t2j(torch.tensor(2.5))) == 2.5


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.complex128])
def test_t2j_refuses_64_bit_without_x64(no_x64, dtype):
    with pytest.raises(ValueError, match=r"t2j: x has dtype .*64.*jax_enable_x64.*True"):
        t2j(torch.zeros(3, dtype=dtype))


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_t2j_dtype_jax_lacks():
    with pytest.raises(ValueError, match=r"t2j: JAX cannot take x \(dtype torch\.complex32"):
        t2j(torch.zeros(2, dtype=torch.complex32))


def _huge_coo():
    """Two entries in a matrix with more rows than int32 counts (no memory to speak of)."""
    idx = torch.tensor([[0, 2**31 + 5], [0, 1]])
    return torch.sparse_coo_tensor(idx, torch.tensor([1.0, 2.0]), (2**31 + 10, 2))


def test_indices_beyond_int32_need_x64(no_x64):
    with pytest.raises(ValueError, match=r"t2j_coo: A needs 64-bit indices.*jax_enable_x64"):
        t2j_coo(_huge_coo())


def test_indices_beyond_int32_with_x64(x64):
    M = t2j_coo(_huge_coo())
    assert M.indices.dtype == jnp.int64
    assert M.indices.tolist() == [[0, 0], [2**31 + 5, 1]]


def test_t2j_errors():
    with pytest.raises(TypeError, match=r"t2j: x must be a torch\.Tensor, got list"):
        t2j([1.0, 2.0])
    with pytest.raises(TypeError, match="t2j: x must be a dense"):
        t2j(torch.eye(2).to_sparse_csr())


def test_j2t_errors(no_x64):
    with pytest.raises(TypeError, match=r"j2t: x must be a jax\.Array, got ndarray"):
        j2t(np.zeros(2))
    with pytest.raises(TypeError, match="use t2j"):
        j2t(torch.zeros(2))
    with pytest.raises(TypeError, match="got a BCOO matrix; use j2t_coo"):
        j2t(jsparse.BCOO.fromdense(jnp.eye(2)))
    with pytest.raises(TypeError, match="got a BCSR matrix; use j2t_csr"):
        j2t(jsparse.BCSR.fromdense(jnp.eye(2)))


# --------------------------------------------------------------------------- CSR
@pytest.mark.parametrize("batch", ["unbatched", "batched"])
def test_csr_round_trip_int32_shares_every_buffer(no_x64, batch):
    dense = case("nonsymmetric").dense(batch=batch, dtype=torch.float32)
    A = to_layout(dense, torch.sparse_csr, torch.int32)
    M = t2j_csr(A)
    assert isinstance(M, jsparse.BCSR)
    assert M.shape == tuple(A.shape)
    np.testing.assert_allclose(np.asarray(M.todense()), dense.numpy())
    assert _same_buffer(M.data, A.values())
    assert _same_buffer(M.indices, A.col_indices())
    assert _same_buffer(M.indptr, A.crow_indices())
    back = j2t_csr(M)
    assert back.layout == torch.sparse_csr and back.crow_indices().dtype == torch.int32
    assert back.values().data_ptr() == A.values().data_ptr()
    assert back.col_indices().data_ptr() == A.col_indices().data_ptr()
    torch.testing.assert_close(back.to_dense(), dense)


def test_csr_int64_with_x64_shares_indices(x64):
    A = to_layout(case("spd").dense(), torch.sparse_csr, torch.int64)
    M = t2j_csr(A)
    assert M.indices.dtype == jnp.int64
    assert _same_buffer(M.indices, A.col_indices()) and _same_buffer(M.data, A.values())
    back = j2t_csr(M)
    assert back.crow_indices().dtype == torch.int64
    torch.testing.assert_close(back.to_dense(), A.to_dense())


def test_csr_int64_without_x64_becomes_int32(no_x64):
    dense = case("spd").dense(dtype=torch.float32)
    A = to_layout(dense, torch.sparse_csr, torch.int64)
    M = t2j_csr(A)
    assert M.indices.dtype == jnp.int32 and M.indptr.dtype == jnp.int32
    assert _same_buffer(M.data, A.values())  # the values are still shared
    np.testing.assert_allclose(np.asarray(M.todense()), dense.numpy())


def test_csr_float64_needs_x64(no_x64):
    A = to_layout(case("spd").dense(), torch.sparse_csr, torch.int32)
    with pytest.raises(ValueError, match=r"t2j_csr: A has dtype torch.float64.*jax_enable_x64"):
        t2j_csr(A)


def test_j2t_csr_from_jax(no_x64):
    dense = jnp.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    A = j2t_csr(jsparse.BCSR.fromdense(dense))
    np.testing.assert_array_equal(A.to_dense().numpy(), np.asarray(dense))


def test_j2t_csr_drops_padding_as_a_view(no_x64):
    dense = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    M = jsparse.BCSR.fromdense(dense, nse=4)  # two padding entries after the last row
    A = j2t_csr(M)
    assert A.values().numel() == 2
    assert A.values().data_ptr() == M.data.unsafe_buffer_pointer()
    np.testing.assert_array_equal(A.to_dense().numpy(), np.asarray(dense))


def test_j2t_csr_errors(no_x64):
    with pytest.raises(TypeError, match=r"j2t_csr: M must be a jax\.experimental\.sparse\.BCSR"):
        j2t_csr(jsparse.BCOO.fromdense(jnp.eye(2)))
    with pytest.raises(ValueError, match="j2t_csr: M must have scalar values"):
        j2t_csr(jsparse.BCSR.fromdense(jnp.ones((2, 2, 3)), n_dense=1))
    uneven = jsparse.BCSR.fromdense(jnp.stack([jnp.eye(2), jnp.ones((2, 2))]), n_batch=1)
    with pytest.raises(ValueError, match="different numbers of entries"):
        j2t_csr(uneven)


def test_t2j_csr_errors():
    with pytest.raises(TypeError, match="t2j_csr: A must be a sparse CSR tensor, got layout COO"):
        t2j_csr(torch.eye(2).to_sparse())
    with pytest.raises(TypeError, match=r"t2j_csr: A must be a torch\.Tensor"):
        t2j_csr(np.eye(2))


# --------------------------------------------------------------------------- COO
@pytest.mark.parametrize("batch", ["unbatched", "batched"])
def test_coo_round_trip_shares_values(no_x64, batch):
    dense = case("nonsymmetric").dense(batch=batch, dtype=torch.float32)
    A = dense.to_sparse().coalesce()
    M = t2j_coo(A)
    assert isinstance(M, jsparse.BCOO) and M.n_batch == 0 and M.shape == tuple(A.shape)
    assert M.indices_sorted and M.unique_indices
    assert M.indices.dtype == jnp.int32  # int64 needs x64: the indices are an int32 copy
    assert _same_buffer(M.data, A.values())
    np.testing.assert_allclose(np.asarray(M.todense()), dense.numpy())
    back = j2t_coo(M)
    assert back.is_coalesced()
    assert back.values().data_ptr() == A.values().data_ptr()
    torch.testing.assert_close(back.to_dense(), dense)


def test_coo_int64_indices_with_x64(x64):
    A = case("spd").dense().to_sparse().coalesce()
    M = t2j_coo(A)
    assert M.indices.dtype == jnp.int64
    torch.testing.assert_close(j2t_coo(M).to_dense(), A.to_dense())


def test_coo_uncoalesced_is_passed_as_it_is(no_x64):
    idx = torch.tensor([[1, 0, 1], [0, 1, 0]])
    A = torch.sparse_coo_tensor(idx, torch.tensor([1.0, 2.0, 3.0]), (2, 2))
    assert not A.is_coalesced()
    M = t2j_coo(A)
    assert not M.indices_sorted and not M.unique_indices
    assert M.nse == 3  # nothing was summed or reordered
    np.testing.assert_array_equal(np.asarray(M.todense()), [[0.0, 2.0], [4.0, 0.0]])
    back = j2t_coo(M)
    assert not back.is_coalesced()
    torch.testing.assert_close(back.to_dense(), A.to_dense())


def test_j2t_coo_drops_padding_and_unfolds_batches(no_x64):
    dense = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    padded = jsparse.BCOO.fromdense(dense, nse=4)
    A = j2t_coo(padded)
    assert A._nnz() == 2
    np.testing.assert_array_equal(A.to_dense().numpy(), np.asarray(dense))
    batched = jsparse.BCOO.fromdense(jnp.stack([dense, 2 * dense]), n_batch=1)
    B = j2t_coo(batched)
    assert B.shape == (2, 2, 2)
    np.testing.assert_array_equal(B.to_dense().numpy(), np.asarray(batched.todense()))


def test_coo_float64_needs_x64(no_x64):
    with pytest.raises(ValueError, match=r"t2j_coo: A has dtype torch.float64.*jax_enable_x64"):
        t2j_coo(torch.eye(2, dtype=torch.float64).to_sparse())


def test_coo_errors(no_x64):
    with pytest.raises(TypeError, match="t2j_coo: A must be a sparse COO tensor, got layout CSR"):
        t2j_coo(torch.eye(2).to_sparse_csr())
    with pytest.raises(ValueError, match="t2j_coo: A must have scalar values"):
        t2j_coo(torch.ones(2, 2, 3).to_sparse(2))
    with pytest.raises(ValueError, match="t2j_coo: A must have 2 or 3 dimensions"):
        t2j_coo(torch.ones(2, 2, 2, 2).to_sparse())
    with pytest.raises(TypeError, match=r"j2t_coo: M must be a jax\.experimental\.sparse\.BCOO"):
        j2t_coo(jsparse.BCSR.fromdense(jnp.eye(2)))
    with pytest.raises(TypeError, match=r"j2t_coo: M must be a jax\.experimental\.sparse\.BCOO"):
        j2t_coo(jnp.eye(2))
    with pytest.raises(ValueError, match="j2t_coo: M must have scalar values"):
        j2t_coo(jsparse.BCOO.fromdense(jnp.ones((2, 2, 3)), n_dense=1))
    with pytest.raises(ValueError, match="j2t_coo: M must have 2 or 3 dimensions"):
        j2t_coo(jsparse.BCOO.fromdense(jnp.ones(3)))
