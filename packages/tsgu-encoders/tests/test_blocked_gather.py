"""The encoder's gather over blocks of rows: every way of cutting the rows gives the same
matrix and gradients.

At the real scratch size the small test volumes fit in one block, so these tests shrink
the scratch: blocks of whole lines, blocks that divide a line, one line per block (a prime
line length), partial last blocks and blocks with no entry
(``test_block_kinds_through_the_encoder`` checks that each kind is reached).
"""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import pytest
import torch

from tsgu.core.testing import weighted_sum
from tsgu.encoders import PairwiseEncoder, _gather
from tsgu.encoders._gather import block_shape

SCRATCH_SIZES = [1, 7, 40, 2**19]
CASES = [
    # (shape, radius, diag, upper, relation)
    ((2, 5, 4), 1.5, True, None, "inter"),
    ((1, 3, 12), 2, False, False, "indep"),  # a long line: blocks divide it
    ((2, 13), 2, True, None, "intra"),  # a prime line length
    ((1, 2, 1, 3), 1, False, True, "indep"),  # rows without entries
]
# gradcheck perturbs every value: smaller volumes, the same kinds of blocks
GRAD_CASES = [
    ((2, 2, 3), 1, True, None, "inter"),
    ((1, 2, 6), 2, False, False, "indep"),
    ((1, 7), 2, True, None, "indep"),
]


def brute_force(offsets, shape, values):
    """Dense ``A[p, p - o] = values[k][p]`` over every voxel ``p`` and offset ``o``."""
    coords = list(itertools.product(*[range(n) for n in shape]))
    index = {p: i for i, p in enumerate(coords)}
    dense = torch.zeros(len(coords), len(coords), dtype=values.dtype)
    for k, o in enumerate(offsets):
        for p in coords:
            q = tuple(a - b for a, b in zip(p, o, strict=True))
            if q in index:
                dense[index[p], index[q]] = values[(k, *p)]
    return dense


@pytest.fixture(params=SCRATCH_SIZES, ids=lambda n: f"scratch{n}")
def scratch(request, monkeypatch):
    monkeypatch.setattr(_gather, "_SCRATCH_ELEMENTS", request.param)
    return request.param


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize(("shape", "radius", "diag", "upper", "relation"), CASES)
def test_every_block_size_gives_the_brute_force_matrix(
    scratch, layout, shape, radius, diag, upper, relation
):
    gen = torch.Generator().manual_seed(0)
    warns = upper and relation != "indep"
    with pytest.warns(UserWarning, match="pairs no channels") if warns else nullcontext():
        enc = PairwiseEncoder(radius, shape, diag, upper, relation, layout=layout)
    values = torch.randn(3, *enc.values_shape, dtype=torch.float64, generator=gen)
    expected = brute_force(enc.offsets, shape, values[1])
    assert enc.nnz == int((expected != 0).sum())
    assert torch.equal(enc(values[1]).to_dense(), expected)
    assert torch.equal(enc(values).to_dense()[1], expected)


@pytest.mark.parametrize("batch", [None, 2])
@pytest.mark.parametrize(("shape", "radius", "diag", "upper", "relation"), GRAD_CASES)
def test_every_block_size_passes_gradcheck(scratch, batch, shape, radius, diag, upper, relation):
    enc = PairwiseEncoder(radius, shape, diag, upper, relation, layout=torch.sparse_csr)
    size = (*(() if batch is None else (batch,)), *enc.values_shape)
    values = torch.randn(size, dtype=torch.float64).requires_grad_(True)
    nvox = enc.volume_numel
    W = torch.randn(*size[:1] if batch else (), nvox, nvox, dtype=torch.float64)

    def loss(v):
        return weighted_sum(enc(v), W) ** 2

    assert torch.autograd.gradcheck(loss, (values,))
    assert torch.autograd.gradgradcheck(loss, (values,))


@pytest.mark.parametrize(
    ("shape", "radius", "diag", "upper", "scratch_size", "rows", "row_counts"),
    [
        # blocks of whole lines, the last one partial
        ((1, 4, 3), 1, False, False, 20, 9, [9, 3]),
        ((1, 5, 5), 1, True, None, 60, 10, [10, 10, 5]),
        # a line too long to divide (13 is prime): one line per block
        ((1, 2, 13), 1, False, False, 20, 13, [13, 13]),
        # blocks that divide a line: the largest divisor of 12 up to 16 // 2 offsets
        ((1, 2, 12), 1, False, False, 16, 6, [6, 6, 6, 6]),
    ],
)
def test_block_kinds_through_the_encoder(
    monkeypatch, shape, radius, diag, upper, scratch_size, rows, row_counts
):
    monkeypatch.setattr(_gather, "_SCRATCH_ELEMENTS", scratch_size)
    for layout in (torch.sparse_coo, torch.sparse_csr):
        enc = PairwiseEncoder(radius, shape, diag, upper, layout=layout)
        blocks = enc._blocks
        assert blocks.rows == rows
        starts = range(0, enc.volume_numel, rows)
        assert [min(rows, enc.volume_numel - a) for a in starts] == row_counts
        assert len(blocks.bounds) == len(row_counts) + 1
        values = torch.randn(2, *enc.values_shape, dtype=torch.float64)
        expected = brute_force(enc.offsets, shape, values[1])
        assert enc.nnz == int((expected != 0).sum())
        assert torch.equal(enc(values[1]).to_dense(), expected)
        assert torch.equal(enc(values).to_dense()[1], expected)
        leaf = values.requires_grad_(True)
        W = torch.randn(2, enc.volume_numel, enc.volume_numel, dtype=torch.float64)
        assert torch.autograd.gradcheck(
            lambda v, enc=enc, W=W: weighted_sum(enc(v), W) ** 2, (leaf,)
        )


def test_unused_values_get_zero_gradient(scratch):
    # (1, 2, 7), offset (0, 0, 1) only: values at x = 0 are never used
    enc = PairwiseEncoder(1, (1, 2, 7), upper=False, layout=torch.sparse_csr)
    values = torch.ones(enc.values_shape, requires_grad=True)
    enc(values).values().sum().backward()
    assert enc.offsets == [(0, 0, 1), (0, 1, 0)]
    expected = torch.ones(enc.values_shape)
    expected[0, :, :, 0] = 0  # x - 1 leaves the volume
    expected[1, :, 0, :] = 0  # y - 1 leaves the volume
    assert torch.equal(values.grad, expected)


@pytest.mark.parametrize(
    ("num_offsets", "shape", "target", "rows"),
    [
        (4, (2, 10, 10), 100, 20),  # whole lines: a multiple of 10 up to 100 // 4
        (4, (1, 60), 100, 20),  # a long line: its largest divisor up to 25
        (2, (1, 101), 100, 101),  # a prime line: one line per block
        (1, (1, 3), 100, 3),  # never more rows than voxels
    ],
)
def test_block_shape(monkeypatch, num_offsets, shape, target, rows):
    monkeypatch.setattr(_gather, "_SCRATCH_ELEMENTS", target)
    got_rows, width = block_shape(num_offsets, shape)
    assert got_rows == rows
    # the slices of the scratch start 16 elements past a 1024 boundary from each other
    assert width >= rows and width % 1024 == 16


def test_gpu_blocks_are_larger():
    # 4 x 64³ at radius 2 (K = 32): 64 blocks on the CPU, 2 on a GPU
    assert block_shape(32, (4, 64, 64, 64), "cpu")[0] == 2**14
    assert block_shape(32, (4, 64, 64, 64), "cuda")[0] == 2**19
    # a long prime line is found without scanning every candidate
    assert block_shape(1, (1, 2**31 - 1), "cuda")[0] == 2**31 - 1
