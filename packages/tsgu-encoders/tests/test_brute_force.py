"""The encoder's matrix against a brute-force construction, for every option.

The reference below is written from the rules of the issue, in plain Python loops over
candidate offsets and over every pair of voxels, sharing no code with the package.
"""

from __future__ import annotations

import itertools
import math
from contextlib import nullcontext

import pytest
import torch

from tsgu.encoders import PairwiseEncoder, calc_pairwise_coo_indices_nd

# (C, *spatial): 1D, 2D, 3D and 4D volumes, and a single-channel one
SHAPES = [(2, 6), (2, 3, 4), (2, 2, 3, 3), (2, 2, 2, 2, 3), (1, 4, 5)]
RADII = [1, 1.5, 2]
RELATIONS = ["indep", "intra", "inter"]


def reference_offsets(radius, shape, diag, upper, relation):
    channels, ndim = shape[0], len(shape) - 1
    reach = math.ceil(radius) + 1  # look beyond the radius: the rules must reject those
    found = []
    for c in range(-(channels - 1), channels):
        for s in itertools.product(range(-reach, reach + 1), repeat=ndim):
            offset = (c, *s)
            if sum(x * x for x in s) > radius * radius or not any(offset):
                continue
            spatial = any(s)
            if c < 0:
                continue  # channel steps are only ever positive
            if c == 0:
                keep = spatial
            elif relation == "indep":
                keep = False
            elif relation == "intra":
                keep = not spatial
            else:
                keep = True
            first = next(x for x in offset if x != 0)
            if upper is False and first < 0:
                keep = False
            if upper is True and first > 0:
                keep = False
            if keep:
                found.append(offset)

    def key(o):
        c, *s = o
        return ((10 * c) ** 2 + sum(x * x for x in s), [abs(x) for x in o], [x >= 0 for x in o])

    found.sort(key=key)
    if diag:
        found.insert(0, (0,) * (ndim + 1))
    return found


def voxels(shape):
    """Every voxel's coordinates, in C order (its position is its linear index)."""
    return list(itertools.product(*[range(n) for n in shape]))


def reference_matrix(radius, shape, diag, upper, relation, values):
    """Dense V x V from every pair (p, q): A[p, q] = values[k][p] where offsets[k] = p - q."""
    offsets = reference_offsets(radius, shape, diag, upper, relation)
    slot = {o: k for k, o in enumerate(offsets)}
    coords = voxels(shape)
    nvox = len(coords)
    dense = torch.zeros(nvox, nvox, dtype=values.dtype)
    for i, p in enumerate(coords):
        for j, q in enumerate(coords):
            o = tuple(a - b for a, b in zip(p, q, strict=True))
            if o in slot:
                dense[i, j] = values[(slot[o], *p)]
    return offsets, dense


def reference_pairs(radius, shape, diag, upper, relation):
    offsets = reference_offsets(radius, shape, diag, upper, relation)
    coords = voxels(shape)
    index = {p: i for i, p in enumerate(coords)}
    out = {}
    for o in offsets:
        pairs = []
        for p in coords:
            q = tuple(a - b for a, b in zip(p, o, strict=True))
            if q in index:
                pairs.append((index[p], index[q]))
        out[o] = torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2).T
    return out


def options():
    for shape, radius, diag, upper, relation in itertools.product(
        SHAPES, RADII, [False, True], [None, False, True], RELATIONS
    ):
        if shape[0] == 1 and relation != "indep":
            continue
        yield pytest.param(
            shape, radius, diag, upper, relation, id=f"{shape}-r{radius}-{diag}-{upper}-{relation}"
        )


def make(*args, **kwargs):
    """The encoder; upper=True with channel relations warns that none is kept."""
    warns = args[3] is True and args[4] != "indep"
    with pytest.warns(UserWarning, match="pairs no channels") if warns else nullcontext():
        return PairwiseEncoder(*args, **kwargs)


@pytest.mark.parametrize(("shape", "radius", "diag", "upper", "relation"), list(options()))
def test_matrix_equals_brute_force(shape, radius, diag, upper, relation):
    gen = torch.Generator().manual_seed(0)
    expected_offsets = reference_offsets(radius, shape, diag, upper, relation)
    values = torch.randn(len(expected_offsets), *shape, dtype=torch.float64, generator=gen)
    offsets, expected = reference_matrix(radius, shape, diag, upper, relation, values)
    for layout, index_dtype in [
        (torch.sparse_coo, torch.int64),
        (torch.sparse_coo, torch.int32),
        (torch.sparse_csr, torch.int64),
        (torch.sparse_csr, torch.int32),
    ]:
        enc = make(radius, shape, diag, upper, relation, layout=layout, indices_dtype=index_dtype)
        assert enc.offsets == offsets
        A = enc(values)
        assert A.layout == layout
        assert A.shape == (math.prod(shape),) * 2
        assert torch.equal(A.to_dense(), expected)
        assert enc.nnz == int((expected != 0).sum())  # random values are never exactly 0
        if layout == torch.sparse_csr:
            assert A.crow_indices().dtype == index_dtype
            assert A.col_indices().dtype == index_dtype
        else:
            assert A.is_coalesced()
            assert torch.equal(A._indices(), A.coalesce().indices())  # truly sorted


@pytest.mark.parametrize(("shape", "radius", "diag", "upper", "relation"), list(options()))
def test_coo_indices_equal_brute_force(shape, radius, diag, upper, relation):
    expected = reference_pairs(radius, shape, diag, upper, relation)
    for dtype in (torch.int64, torch.int32):
        got = calc_pairwise_coo_indices_nd(radius, shape, diag, upper, relation, dtype=dtype)
        assert list(got) == list(expected)
        for o, pairs in expected.items():
            assert got[o].dtype == dtype
            assert got[o].shape == pairs.shape
            assert torch.equal(got[o].to(torch.int64), pairs), o


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_agrees_with_dense_in_both_precisions(dtype, layout):
    shape, radius = (2, 3, 3, 2), 1.5
    gen = torch.Generator().manual_seed(1)
    enc = PairwiseEncoder(radius, shape, True, False, "inter", layout=layout)
    values = torch.randn(len(enc.offsets), *shape, dtype=dtype, generator=gen)
    _, expected = reference_matrix(radius, shape, True, False, "inter", values)
    A = enc(values)
    assert A.dtype == dtype
    assert torch.equal(A.to_dense(), expected)
