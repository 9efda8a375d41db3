"""0.2's helpers that its users (and its own tests) import: generators, index helpers,
encoder offsets, the batched matrix-vector helper, the bidirectional log-sum-exp views,
and 0.2.7's triangular-solve compatibility function."""

from __future__ import annotations

import pytest
import torch

import tsgu.core
from torchsparsegradutils._compat import linalg_solve_triangular_compat
from torchsparsegradutils.distributions.sparse_multivariate_normal import _batch_sparse_mv
from torchsparsegradutils.encoders import PairwiseEncoder
from torchsparsegradutils.encoders.pairwise_encoder import (
    _gen_coords,
    _gen_coords_nd,
    _gen_offsets,
    _gen_offsets_nd,
    _trim_nd,
    calc_pairwise_coo_indices,
)
from torchsparsegradutils.sparse_logsumexp import _bidir_2d, _bidir_batched
from torchsparsegradutils.utils import random_sparse
from torchsparsegradutils.utils.utils import (
    _compress_row_indices,
    _demcompress_crow_indices,
    _sort_coo_indices,
)


@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("size", [(6, 6), (3, 6, 6)])
def test_generators_fix_layout_and_triangle(layout, size):
    want = {"coo": torch.sparse_coo, "csr": torch.sparse_csr}[layout]
    general = getattr(random_sparse, f"generate_random_sparse_{layout}_matrix")(size, 7)
    strict = getattr(random_sparse, f"generate_random_sparse_strictly_triangular_{layout}_matrix")(
        size, 7, upper=False
    )
    tri = getattr(random_sparse, f"generate_random_sparse_triangular_{layout}_matrix")(
        size, 9, upper=True, values_dtype=torch.float64
    )
    for A in (general, strict, tri):
        assert A.layout == want and A.shape == size
    assert torch.equal(strict.to_dense(), strict.to_dense().tril(-1))
    dense = tri.to_dense()
    assert dense.dtype == torch.float64 and torch.equal(dense, dense.triu())
    assert bool((dense.diagonal(dim1=-2, dim2=-1) != 0).all())  # the diagonal is stored


def test_coo_index_helpers_match_torch():
    g = torch.Generator().manual_seed(0)
    flat = torch.randperm(30, generator=g)[:12]
    indices = torch.stack([flat // 6, flat % 6])
    coalesced = torch.sparse_coo_tensor(indices, torch.arange(12), (5, 6)).coalesce()
    sorted_indices, permutation = _sort_coo_indices(indices)
    assert torch.equal(sorted_indices, coalesced.indices())
    assert torch.equal(permutation, coalesced.values())
    csr = coalesced.to_sparse_csr()
    assert torch.equal(_compress_row_indices(sorted_indices[0], 5), csr.crow_indices())
    assert torch.equal(_demcompress_crow_indices(csr.crow_indices(), 5), sorted_indices[0])


def test_offset_helpers_are_the_encoders_offsets():
    encoder = PairwiseEncoder(1.5, (2, 4, 4, 4), upper=False, channel_voxel_relation="inter")
    assert _gen_offsets_nd(1.5, 3, False, 2, "inter") == encoder.offsets
    assert _gen_offsets(1.5, False, 2, "inter") == encoder.offsets
    assert _gen_coords(1.5) == _gen_coords_nd(1.5, 3)
    assert len(_gen_coords_nd(1.5, 3)) == 18  # 6 faces and 12 edges of the cube
    assert _gen_coords_nd(1, 1) == {(-1,), (1,)}


def test_trim_and_the_4d_index_function():
    x = torch.arange(24).view(2, 3, 4)
    assert torch.equal(_trim_nd(x, (0, 1, -1)), x[:, 1:, :-1])
    with pytest.raises(ValueError, match="one entry per dimension"):
        _trim_nd(x, (1,))
    pairs = calc_pairwise_coo_indices(1, (1, 2, 2, 2))
    assert list(pairs) == _gen_offsets(1)
    with pytest.raises(ValueError, match="four positive integers"):
        calc_pairwise_coo_indices(1, (1, 2, 2))


@pytest.mark.parametrize(
    ("mat", "vec"), [((3, 3), (3,)), ((3, 3), (5, 3)), ((4, 3, 3), (4, 3)), ((4, 3, 3), (5, 4, 3))]
)
def test_batch_sparse_mv_is_a_batched_product(mat, vec):
    g = torch.Generator().manual_seed(1)
    M, v = torch.randn(*mat, generator=g), torch.randn(*vec, generator=g)
    expected = (M @ v.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(_batch_sparse_mv(tsgu.core.sparse_mm, M.to_sparse(), v), expected)


def test_batch_sparse_mv_rejects_other_shapes():
    with pytest.raises(ValueError, match="_batch_sparse_mv"):
        _batch_sparse_mv(tsgu.core.sparse_mm, torch.eye(3).to_sparse(), torch.ones(2, 2, 3))


def test_bidirectional_logsumexp_views_share_one_tensor():
    x = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]).to_sparse()
    col, row, padded = _bidir_2d(x, True)
    expected_col, expected_row = tsgu.core.sparse_bidir_logsumexp(x)
    torch.testing.assert_close(col, expected_col)
    torch.testing.assert_close(row, expected_row)
    assert padded.shape == (2, 3)
    assert col.untyped_storage().data_ptr() == padded.untyped_storage().data_ptr()
    col, row, padded = _bidir_batched(torch.stack([x, x]).coalesce(), False)
    assert (col.shape, row.shape, padded.shape) == ((2, 2), (2, 3), (2, 2, 3))


@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize("transpose", [True, False])
@pytest.mark.parametrize("unitriangular", [True, False])
def test_compat_triangular_solve_dense_and_sparse_agree(upper, transpose, unitriangular):
    g = torch.Generator().manual_seed(2)
    T = torch.randn(5, 5, dtype=torch.float64, generator=g) + 5 * torch.eye(5, dtype=torch.float64)
    T = T.triu() if upper else T.tril()
    B = torch.randn(5, 2, dtype=torch.float64, generator=g)
    kwargs = {"upper": upper, "unitriangular": unitriangular, "transpose": transpose}
    dense = linalg_solve_triangular_compat(T, B, **kwargs)
    stored = T.clone()
    if unitriangular:
        stored.fill_diagonal_(0)  # tsgu: a unit diagonal is implied, not stored
    sparse = linalg_solve_triangular_compat(stored.to_sparse_csr(), B, **kwargs)
    torch.testing.assert_close(sparse, dense)
    U = T.clone()
    if unitriangular:
        U.fill_diagonal_(1)
    torch.testing.assert_close((U.mT if transpose else U) @ dense, B)
