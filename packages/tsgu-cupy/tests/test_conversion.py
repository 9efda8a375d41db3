"""t2c_csr / t2c_coo / c2t_csr / c2t_coo on the CPU: round trips, shared memory, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tsgu.core.testing import generator, to_layout
from tsgu.cupy import c2t_coo, c2t_csr, t2c_coo, t2c_csr

DTYPES = [torch.float32, torch.float64]
INDEX_DTYPES = [torch.int32, torch.int64]


def _dense(dtype=torch.float64, shape=(7, 5)):
    """A rectangular matrix with an empty row and an empty column."""
    gen = generator(3)
    D = torch.randn(shape, generator=gen, dtype=torch.float64)
    D = D * (torch.rand(shape, generator=gen) < 0.45)
    D[2] = 0.0
    D[:, 3] = 0.0
    return D.to(dtype)


def _uncoalesced(D):
    """``D`` as a COO tensor in shuffled order, some positions stored twice (halves)."""
    idx = D.nonzero().T
    vals = D[tuple(idx)]
    perm = torch.randperm(vals.numel(), generator=generator(4))
    twice = perm[:3]
    indices = torch.cat([idx[:, perm], idx[:, twice]], 1)
    values = torch.cat([vals[perm], vals[twice] / 2])
    values[:3] /= 2
    A = torch.sparse_coo_tensor(indices, values, D.shape)
    assert not A.is_coalesced()
    return A


# ----------------------------------------------------------------------------- CSR
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_t2c_csr_shares_memory_and_keeps_dtypes(dtype, index_dtype):
    D = _dense(dtype)
    x = to_layout(D, torch.sparse_csr, index_dtype)
    X = t2c_csr(x)
    assert isinstance(X, sp.csr_matrix)
    assert X.shape == (7, 5)
    assert X.dtype == np.dtype(str(dtype).removeprefix("torch."))
    np_index = np.int32 if index_dtype == torch.int32 else np.int64
    assert X.indices.dtype == np_index and X.indptr.dtype == np_index
    assert np.shares_memory(X.data, x.values().numpy())
    assert np.shares_memory(X.indices, x.col_indices().numpy())
    assert np.shares_memory(X.indptr, x.crow_indices().numpy())
    np.testing.assert_array_equal(X.toarray(), D.numpy())
    x.values().mul_(2)  # one memory: the SciPy matrix sees the change
    np.testing.assert_array_equal(X.toarray(), 2 * D.numpy())


@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_csr_round_trips(index_dtype):
    x = to_layout(_dense(), torch.sparse_csr, index_dtype)
    y = c2t_csr(t2c_csr(x))
    assert y.layout == torch.sparse_csr and y.shape == x.shape and y.dtype == x.dtype
    assert y.crow_indices().dtype == index_dtype and y.col_indices().dtype == index_dtype
    assert torch.equal(y.crow_indices(), x.crow_indices())
    assert torch.equal(y.col_indices(), x.col_indices())
    assert y.values().data_ptr() == x.values().data_ptr()  # the same memory, there and back
    X = sp.random(6, 9, density=0.3, format="csr", random_state=0, dtype=np.float32)
    Y = t2c_csr(c2t_csr(X))
    assert Y.shape == X.shape and Y.dtype == X.dtype and Y.indices.dtype == X.indices.dtype
    assert (Y != X).nnz == 0


def test_c2t_csr_shares_memory_and_takes_sparse_arrays():
    X = sp.csr_array(np.array([[0.0, 1.5, 0.0], [2.0, 0.0, 3.0]]))
    x = c2t_csr(X)
    assert x.crow_indices().dtype == torch.int32
    assert np.shares_memory(x.values().numpy(), X.data)
    assert np.shares_memory(x.col_indices().numpy(), X.indices)
    torch.testing.assert_close(x.to_dense(), torch.from_numpy(X.toarray()))


def test_c2t_csr_canonicalizes_a_copy_with_a_warning():
    # row 0 stores column 2 before column 0, and column 2 twice
    X = sp.csr_matrix(
        (np.array([1.0, 2.0, 4.0, 3.0]), np.array([2, 0, 2, 1]), np.array([0, 3, 4])),
        shape=(2, 3),
    )
    before = X.indices.copy()
    with pytest.warns(UserWarning, match="c2t_csr: X has unsorted or repeated"):
        x = c2t_csr(X)
    np.testing.assert_array_equal(X.indices, before)  # the input is left alone
    assert torch.equal(x.col_indices(), torch.tensor([0, 2, 1], dtype=x.col_indices().dtype))
    torch.testing.assert_close(
        x.to_dense(), torch.tensor([[2.0, 0.0, 5.0], [0.0, 3.0, 0.0]]).double()
    )


# ----------------------------------------------------------------------------- COO
@pytest.mark.parametrize("dtype", DTYPES)
def test_t2c_coo_shares_memory(dtype):
    D = _dense(dtype)
    x = D.to_sparse().coalesce()
    X = t2c_coo(x)
    assert isinstance(X, sp.coo_matrix)
    assert X.shape == (7, 5) and X.dtype == np.dtype(str(dtype).removeprefix("torch."))
    assert X.row.dtype == np.int64 and X.col.dtype == np.int64  # torch's COO index dtype
    assert X.has_canonical_format
    assert np.shares_memory(X.data, x.values().numpy())
    assert np.shares_memory(X.row, x.indices().numpy())
    assert np.shares_memory(X.col, x.indices().numpy())
    np.testing.assert_array_equal(X.toarray(), D.numpy())


def test_t2c_coo_coalesces_with_a_warning():
    D = _dense()
    x = _uncoalesced(D)
    with pytest.warns(UserWarning, match="t2c_coo: x is not coalesced"):
        X = t2c_coo(x)
    assert X.has_canonical_format and X.nnz == int((D != 0).sum())
    np.testing.assert_allclose(X.toarray(), D.numpy())


def test_coo_round_trips():
    x = _dense().to_sparse().coalesce()
    y = c2t_coo(t2c_coo(x))
    assert y.is_coalesced() and y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y.indices(), x.indices())
    assert y.values().data_ptr() == x.values().data_ptr()
    X = sp.random(8, 4, density=0.4, format="coo", random_state=1)
    X.sum_duplicates()  # canonical: the tensor comes back coalesced, so no warning
    Y = t2c_coo(c2t_coo(X))
    assert (Y.tocsr() != X.tocsr()).nnz == 0


def test_c2t_coo_keeps_repeated_positions():
    X = sp.coo_matrix((np.array([1.0, 2.0, 3.0]), (np.array([1, 0, 1]), np.array([1, 0, 1]))))
    x = c2t_coo(X)
    assert not x.is_coalesced() and x._nnz() == 3
    assert np.shares_memory(x._values().numpy(), X.data)
    torch.testing.assert_close(x.to_dense(), torch.tensor([[2.0, 0.0], [0.0, 4.0]]).double())
    X.sum_duplicates()
    assert c2t_coo(X).is_coalesced()


# --------------------------------------------------------------------------- errors
def test_t2c_errors():
    D = _dense()
    with pytest.raises(TypeError, match=r"t2c_csr: x must be a sparse CSR tensor, got layout COO"):
        t2c_csr(D.to_sparse())
    with pytest.raises(TypeError, match=r"t2c_coo: x must be a sparse COO tensor, got layout CSR"):
        t2c_coo(D.to_sparse_csr())
    with pytest.raises(
        TypeError, match=r"t2c_csr: x must be a sparse CSR tensor, got layout dense"
    ):
        t2c_csr(D)
    with pytest.raises(TypeError, match=r"t2c_coo: x must be a torch.Tensor, got ndarray"):
        t2c_coo(D.numpy())
    with pytest.raises(
        ValueError, match=r"t2c_csr: x must have 2 dimensions, got shape \(2, 7, 5\)"
    ):
        t2c_csr(torch.stack([D, D]).to_sparse_csr())
    with pytest.raises(
        ValueError, match=r"t2c_coo: x must have a dtype that NumPy .*torch.bfloat16"
    ):
        t2c_coo(D.to(torch.bfloat16).to_sparse())
    meta = torch.sparse_coo_tensor(
        torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (3, 3), device="meta"
    )
    with pytest.raises(ValueError, match=r"t2c_coo: tensors must be on a CPU or CUDA device"):
        t2c_coo(meta)


def test_c2t_errors():
    X = sp.random(4, 4, density=0.5, format="csr", random_state=0)
    with pytest.raises(TypeError, match=r"c2t_csr: X must be a SciPy or CuPy sparse matrix"):
        c2t_csr(X.toarray())
    with pytest.raises(TypeError, match=r"c2t_csr: X must be in CSR format, got CSC; .*tocsr"):
        c2t_csr(X.tocsc())
    with pytest.raises(TypeError, match=r"c2t_coo: X must be in COO format, got CSR; .*tocoo"):
        c2t_coo(X)
    with pytest.raises(ValueError, match=r"c2t_coo: X must be 2D, got shape \(5,\)"):
        c2t_coo(sp.coo_array(np.array([0.0, 1.0, 0.0, 2.0, 0.0])))
