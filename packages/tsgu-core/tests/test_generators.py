"""Random sparse generators and Poisson matrices: shapes, properties, edge cases, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import generator

LAYOUTS = [torch.sparse_coo, torch.sparse_csr]


def _nnz_per_item(A):
    if A.layout == torch.sparse_csr:
        return A.crow_indices()[..., -1]
    if A.dim() == 3:
        return torch.bincount(A.indices()[0], minlength=A.shape[0])
    return torch.tensor(A._nnz())


# ----------------------------------------------------------------------- rand_sparse
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size", [(30, 20), (3, 30, 20)])
@pytest.mark.parametrize("nnz", [0, 1, 57, 400, 600])
def test_rand_sparse_shape_nnz_and_distinct_positions(layout, size, nnz):
    A = tc.rand_sparse(size, nnz, layout, indices_dtype=torch.int32, generator=generator(0))
    assert A.shape == size and A.layout == layout
    assert bool((_nnz_per_item(A) == nnz).all())
    dense = A.to_dense()
    assert int((dense != 0).sum()) == nnz * (size[0] if len(size) == 3 else 1)  # no repeats
    assert bool(((dense >= 0) & (dense < 1)).all())
    if layout == torch.sparse_csr:
        assert A.crow_indices().dtype == torch.int32
    else:
        assert A.is_coalesced()


def test_rand_sparse_nnz_zero_returns_at_once_for_a_huge_matrix():
    A = tc.rand_sparse((100_000, 100_000), 0)
    assert A._nnz() == 0 and A.shape == (100_000, 100_000)


def test_rand_sparse_is_reproducible_with_a_generator():
    a = tc.rand_sparse((50, 50), 100, generator=generator(3))
    b = tc.rand_sparse((50, 50), 100, generator=generator(3))
    assert torch.equal(a.to_dense(), b.to_dense())


def test_rand_sparse_positions_are_uniform():
    # Each of the 16 positions of a 4x4 matrix should be drawn about equally often.
    counts = torch.zeros(16)
    gen = generator(11)
    for _ in range(400):
        counts += (tc.rand_sparse((4, 4), 3, generator=gen).to_dense() != 0).reshape(-1)
    expected = 400 * 3 / 16
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 37.7  # 99.9% quantile of chi2 with 15 degrees of freedom


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rand_sparse_batched_well_conditioned(layout):
    # 0.2 raised IndexError for batched CSR with well_conditioned=True.
    A = tc.rand_sparse(
        (4, 10, 10),
        60,
        layout,
        values_dtype=torch.float64,
        well_conditioned=True,
        min_diag_value=2.0,
        generator=generator(1),
    )
    dense = A.to_dense()
    diag = torch.diagonal(dense, dim1=-2, dim2=-1)
    stored = diag != 0
    assert stored.any()
    assert bool((diag[stored] >= 2.0).all()) and bool((diag[stored] < 2.5).all())


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (((3, 3), 10), {}, "nnz must be between 0 and 9"),
        (((3, 3), -1), {}, "nnz must be between"),
        (((3,), 1), {}, "size must be"),
        (((3, 3), 1, torch.sparse_csc), {}, "layout must be one of"),
        (((3, 3), 1), {"indices_dtype": torch.int16}, "indices_dtype must be one of"),
        (((3, 3), 1), {"values_dtype": torch.int64}, "floating-point"),
    ],
)
def test_rand_sparse_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tc.rand_sparse(*args, **kwargs)


# ------------------------------------------------------------------- rand_sparse_tri
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize(("strict", "unit"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("size", [(12, 12), (2, 12, 12)])
def test_rand_sparse_tri(layout, upper, strict, unit, size):
    no_diag = strict or unit
    nnz = 30 if no_diag else 40
    A = tc.rand_sparse_tri(
        size,
        nnz,
        layout,
        upper=upper,
        strict=strict,
        unit_triangular=unit,
        value_range=(-1.0, 1.0),
        generator=generator(2),
    )
    dense = A.to_dense()
    other_side = dense.tril(-1) if upper else dense.triu(1)
    assert bool((other_side == 0).all())
    diag = torch.diagonal(dense, dim1=-2, dim2=-1)
    assert bool((diag == 0).all()) if no_diag else bool((diag != 0).all())
    assert bool((_nnz_per_item(A) == nnz).all())
    assert bool((dense.abs() <= 1.0).all())


def test_rand_sparse_tri_well_conditioned_is_row_diagonally_dominant():
    A = tc.rand_sparse_tri(
        (3, 40, 40),
        300,
        upper=False,
        well_conditioned=True,
        values_dtype=torch.float64,
        generator=generator(4),
    ).to_dense()
    diag = torch.diagonal(A, dim1=-2, dim2=-1)
    off = A.abs().sum(-1) - diag.abs()
    assert bool((diag > off).all())
    assert float(torch.linalg.cond(A).max()) < 100


def test_rand_sparse_tri_strict_coordinates_cover_the_triangle():
    # Every strictly-lower position can be drawn: the full triangle comes out.
    A = tc.rand_sparse_tri((30, 30), 435, upper=False, strict=True)
    assert bool((A.to_dense().tril(-1) != 0).sum() == 435)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (((4, 5), 4), {}, "must be square"),
        (((4, 4), 3), {}, r"nnz must be between 4 and 10"),
        (((4, 4), 7), {"strict": True}, r"nnz must be between 0 and 6"),
        (((4, 4), 7), {"unit_triangular": True}, "without the diagonal"),
    ],
)
def test_rand_sparse_tri_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tc.rand_sparse_tri(*args, **kwargs)


# -------------------------------------------------------------------- make_spd_sparse
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize(("ratio", "nz"), [(0.5, None), (0.9, None), (0.0, None), (0.5, 7)])
def test_make_spd_sparse(layout, index_dtype, ratio, nz):
    A, dense = tc.make_spd_sparse(
        20, layout, torch.float64, index_dtype, "cpu", ratio, nz, generator=generator(5)
    )
    assert torch.equal(A.to_dense(), dense)
    assert torch.equal(dense, dense.T)
    assert float(torch.linalg.eigvalsh(dense).min()) > 0
    pairs = 7 if nz is not None else round((1 - ratio) * 190)
    assert int((dense != 0).sum()) == 20 + 2 * pairs
    if layout == torch.sparse_csr:  # 0.2 returned int64 here regardless
        assert A.crow_indices().dtype == index_dtype


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0,), "n must be a positive int"),
        (
            (4, torch.sparse_coo, torch.float64, torch.int64, "cpu", 1.5),
            r"sparsity_ratio must be in \[0, 1\]",
        ),
        (
            (4, torch.sparse_coo, torch.float64, torch.int64, "cpu", 0.5, 7),
            "nz must be between 0 and 6",
        ),
        ((4, torch.sparse_csc), "layout must be one of"),
    ],
)
def test_make_spd_sparse_errors(args, message):
    with pytest.raises(ValueError, match=message):
        tc.make_spd_sparse(*args)


# -------------------------------------------------------------------------- Poisson
def _stencil_reference(grid, offsets, center):
    """Dense matrix of a stencil by plain loops over grid points (tiny grids only)."""
    points = list(itertools.product(*[range(g) for g in grid]))
    index = {p: i for i, p in enumerate(points)}
    M = torch.zeros(len(points), len(points), dtype=torch.float64)
    for p in points:
        for o in offsets:
            q = tuple(a + b for a, b in zip(p, o, strict=True))
            if q in index:
                M[index[p], index[q]] = center if all(x == 0 for x in o) else -1.0
    return M


@pytest.mark.parametrize("layout", LAYOUTS)
def test_poisson_2d_matches_the_stencil(layout):
    A = tc.poisson_2d(4, 3, layout=layout)
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)]
    assert torch.equal(A.to_dense(), _stencil_reference((4, 3), offsets, 4.0))


@pytest.mark.parametrize("stencil", [7, 27])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_poisson_3d_matches_the_stencil(stencil, layout):
    A = tc.poisson_3d(3, 2, 4, stencil=stencil, layout=layout, index_dtype=torch.int32)
    if stencil == 27:
        offsets = list(itertools.product((-1, 0, 1), repeat=3))
    else:
        offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if sum(map(abs, o)) <= 1]
    assert torch.equal(A.to_dense(), _stencil_reference((3, 2, 4), offsets, float(stencil - 1)))
    if layout == torch.sparse_csr:
        assert A.crow_indices().dtype == torch.int32
    else:
        assert A.is_coalesced()


def test_poisson_matrices_are_spd():
    for A in (tc.poisson_2d(5), tc.poisson_3d(3), tc.poisson_3d(3, stencil=27)):
        dense = A.to_dense()
        assert torch.equal(dense, dense.T)
        assert float(torch.linalg.eigvalsh(dense).min()) > 0


def test_poisson_3d_27_point_nnz_formula():
    # 27-point stencil on n^3: (3n - 2)^3 nonzeros.
    assert tc.poisson_3d(6, stencil=27).values().numel() == 16**3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: tc.poisson_2d(0), "positive ints"),
        (lambda: tc.poisson_3d(3, stencil=9), "stencil must be one of"),
        (lambda: tc.poisson_2d(3, dtype=torch.float16), "dtype must be one of"),
    ],
)
def test_poisson_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
