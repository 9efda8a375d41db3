"""COO/CSR conversion, stacking, block diagonals and the identity."""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import generator, to_layout


def _random(shape, nnz, layout=torch.sparse_coo, index_dtype=torch.int64, seed=0):
    return tc.rand_sparse(
        shape,
        nnz,
        layout,
        indices_dtype=index_dtype,
        values_dtype=torch.float64,
        generator=generator(seed),
    )


# ------------------------------------------------------------------- COO -> CSR
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_coo_to_csr_indices_equal_torchs_conversion(index_dtype):
    A = _random((30, 20), 80)
    perm = torch.randperm(80, generator=generator(1))
    indices, values = A.indices()[:, perm].to(index_dtype), A.values()[perm]
    crow, col, out = tc.convert_coo_to_csr_indices_values(indices, 30, values)
    ref = A.to_sparse_csr()
    assert crow.dtype == col.dtype == index_dtype
    assert torch.equal(crow.long(), ref.crow_indices())
    assert torch.equal(col.long(), ref.col_indices())
    assert torch.equal(out, ref.values())
    _, _, perm_out = tc.convert_coo_to_csr_indices_values(indices, 30)
    assert torch.equal(values[perm_out], ref.values())


def test_coo_to_csr_sums_duplicates_and_keeps_lengths_consistent():
    indices = torch.tensor([[0, 1, 0, 1], [2, 0, 2, 1]])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0])
    crow, col, summed = tc.convert_coo_to_csr_indices_values(indices, 2, values)
    assert torch.equal(crow, torch.tensor([0, 1, 3]))
    assert torch.equal(col, torch.tensor([2, 0, 1]))
    assert torch.equal(summed, torch.tensor([4.0, 2.0, 4.0]))
    crow, col, perm = tc.convert_coo_to_csr_indices_values(indices, 2)
    assert col.numel() == perm.numel() == 4  # duplicates kept, lengths agree
    dense = torch.sparse_csr_tensor(crow, col, values[perm], (2, 3)).to_dense()
    assert torch.equal(dense, torch.sparse_coo_tensor(indices, values, (2, 3)).to_dense())


def test_batched_coo_to_csr():
    A = _random((3, 10, 8), 12)
    crow, col, values = tc.convert_coo_to_csr_indices_values(A.indices(), 10, A.values())
    assert crow.shape == (3, 11) and col.shape == values.shape == (3, 12)
    rebuilt = torch.sparse_csr_tensor(crow, col, values, (3, 10, 8))
    assert torch.equal(rebuilt.to_dense(), A.to_dense())


def test_batched_coo_to_csr_with_unequal_nnz_is_an_error():
    indices = torch.tensor([[0, 0, 1], [0, 1, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="same nnz"):
        tc.convert_coo_to_csr_indices_values(indices, 2, torch.ones(3))


def test_convert_coo_to_csr_and_its_gradient():
    A = _random((3, 10, 8), 12)
    v = A.values().clone().requires_grad_(True)
    M = tc.sparse_coo_tensor(A.indices(), v, A.shape)
    C = tc.convert_coo_to_csr(M)
    assert C.layout == torch.sparse_csr
    assert torch.equal(C.detach().to_dense(), A.to_dense())
    B = torch.randn(3, 8, 2, generator=generator(5), dtype=torch.float64)
    G = torch.randn(3, 10, 2, generator=generator(6), dtype=torch.float64)
    tc.sparse_mm(C, B).backward(G)
    b, r, c = A.indices()
    torch.testing.assert_close(v.grad, (G[b, r] * B[b, c]).sum(1))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: tc.convert_coo_to_csr(torch.eye(2)), TypeError, "must be a sparse COO tensor"),
        (lambda: tc.convert_coo_to_csr(torch.eye(2).to_sparse_csr()), TypeError, "got layout CSR"),
        (
            lambda: tc.convert_coo_to_csr_indices_values(torch.zeros(4, 2, dtype=torch.long), 2),
            ValueError,
            r"shape \(2, nnz\)",
        ),
        (
            lambda: tc.convert_coo_to_csr_indices_values(torch.zeros(2, 2), 2),
            ValueError,
            "int32 or int64",
        ),
        (
            lambda: tc.convert_coo_to_csr_indices_values(
                torch.zeros(2, 2, dtype=torch.long), 2, torch.ones(3)
            ),
            ValueError,
            "values must have 2 entries",
        ),
    ],
)
def test_conversion_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ----------------------------------------------------------------------- stack_csr
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_stack_csr_equals_per_matrix_csr(index_dtype):
    dense = torch.stack(
        [torch.tensor([[1.0, 0, 2], [0, 3, 0]]), torch.tensor([[0.0, 4, 0], [5, 0, 6]])]
    )
    mats = [to_layout(d, torch.sparse_csr, index_dtype) for d in dense]
    S = tc.stack_csr(mats)
    assert S.shape == (2, 2, 3) and S.crow_indices().dtype == index_dtype
    assert torch.equal(S.to_dense(), dense)
    for i in range(2):
        assert torch.equal(S.crow_indices()[i], mats[i].crow_indices())
        assert torch.equal(S.col_indices()[i], mats[i].col_indices())


def test_stack_csr_gradient_reaches_each_input():
    mats = []
    leaves = []
    for seed in range(2):
        A = _random((4, 4), 5, torch.sparse_csr, seed=seed)
        v = A.values().clone().requires_grad_(True)
        leaves.append(v)
        mats.append(tc.sparse_csr_tensor(A.crow_indices(), A.col_indices(), v, A.shape))
    S = tc.stack_csr(mats)
    tc.sparse_mm(S, torch.ones(2, 4, 1, dtype=torch.float64)).sum().backward()
    for v in leaves:
        torch.testing.assert_close(v.grad, torch.ones_like(v))


@pytest.mark.parametrize(
    ("tensors", "error", "message"),
    [
        (torch.eye(2).to_sparse_csr(), TypeError, "must be a list or tuple"),
        ([], ValueError, "must not be empty"),
        ([torch.eye(2).to_sparse()], TypeError, "must be a sparse CSR tensor"),
        (
            [torch.eye(2).to_sparse_csr(), torch.eye(3).to_sparse_csr()],
            ValueError,
            "the shape of tensors",
        ),
        ([torch.eye(2).to_sparse_csr(), torch.ones(2, 2).to_sparse_csr()], ValueError, "equal nnz"),
    ],
)
def test_stack_csr_errors(tensors, error, message):
    with pytest.raises(error, match=message):
        tc.stack_csr(tensors)


def test_stack_csr_dim_must_be_zero():
    with pytest.raises(ValueError, match="dim must be 0"):
        tc.stack_csr([torch.eye(2).to_sparse_csr()], dim=1)


# --------------------------------------------------------------------- block diagonal
@pytest.mark.parametrize(
    ("layout", "index_dtype"),
    [
        (torch.sparse_coo, torch.int64),
        (torch.sparse_csr, torch.int32),
        (torch.sparse_csr, torch.int64),
    ],
)
def test_block_diag_then_split_gives_back_the_inputs(layout, index_dtype):
    shapes = [(5, 4), (3, 3), (0, 2), (6, 7)]
    mats = [
        _random(s, min(6, s[0] * s[1]), layout, index_dtype, seed=i) for i, s in enumerate(shapes)
    ]
    D = tc.sparse_block_diag(*mats)
    assert D.shape == (14, 16) and D.layout == layout
    expected = torch.block_diag(*[m.to_dense() for m in mats])
    assert torch.equal(D.to_dense(), expected)
    if layout == torch.sparse_csr:
        assert D.crow_indices().dtype == index_dtype
    parts = tc.sparse_block_diag_split(D, *shapes)
    for part, m in zip(parts, mats, strict=True):
        assert part.layout == layout and part.shape == m.shape
        assert torch.equal(part.to_dense(), m.to_dense())


def test_block_diag_of_one_tensor_is_that_tensor():
    A = _random((3, 3), 4)
    assert tc.sparse_block_diag(A) is A


def test_block_diag_and_split_carry_gradients():
    leaves, mats = [], []
    for seed, shape in enumerate([(3, 2), (2, 4)]):
        A = _random(shape, 3, torch.sparse_csr, seed=seed)
        v = A.values().clone().requires_grad_(True)
        leaves.append(v)
        mats.append(tc.sparse_csr_tensor(A.crow_indices(), A.col_indices(), v, A.shape))
    D = tc.sparse_block_diag(*mats)
    parts = tc.sparse_block_diag_split(D, (3, 2), (2, 4))
    (
        2 * tc.sparse_mm(parts[0], torch.ones(2, 1, dtype=torch.float64)).sum()
        + 3 * tc.sparse_mm(parts[1], torch.ones(4, 1, dtype=torch.float64)).sum()
    ).backward()
    torch.testing.assert_close(leaves[0].grad, torch.full((3,), 2.0, dtype=torch.float64))
    torch.testing.assert_close(leaves[1].grad, torch.full((3,), 3.0, dtype=torch.float64))


def test_split_of_uncoalesced_coo_groups_entries_by_block():
    indices = torch.tensor([[3, 0, 2, 1], [3, 1, 2, 0]])  # blocks 1, 0, 1, 0
    D = torch.sparse_coo_tensor(indices, torch.tensor([1.0, 2.0, 3.0, 4.0]), (4, 4))
    top, bottom = tc.sparse_block_diag_split(D, (2, 2), (2, 2))
    assert torch.equal(top.to_dense(), torch.tensor([[0.0, 2.0], [4.0, 0.0]]))
    assert torch.equal(bottom.to_dense(), torch.tensor([[3.0, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: tc.sparse_block_diag(), TypeError, "at least one"),
        (lambda: tc.sparse_block_diag(torch.eye(2)), TypeError, "must be a sparse COO or CSR"),
        (
            lambda: tc.sparse_block_diag(torch.eye(2).to_sparse(), torch.eye(2).to_sparse_csr()),
            TypeError,
            "one layout",
        ),
        (
            lambda: tc.sparse_block_diag(
                torch.eye(2).to_sparse(), torch.eye(2).double().to_sparse()
            ),
            ValueError,
            "dtype and device",
        ),
        (
            lambda: tc.sparse_block_diag_split(torch.eye(4).to_sparse(), (2, 2), (1, 1)),
            ValueError,
            "add up",
        ),
        (
            lambda: tc.sparse_block_diag_split(torch.ones(4, 4).to_sparse(), (2, 2), (2, 2)),
            ValueError,
            "outside the diagonal blocks",
        ),
        (
            lambda: tc.sparse_block_diag_split(torch.eye(4).to_sparse(), (2, 2, 1)),
            ValueError,
            "pairs",
        ),
    ],
)
def test_block_diag_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# -------------------------------------------------------------------------- sparse_eye
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize("size", [4, (4, 4), (3, 4, 4)])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_sparse_eye(layout, size, index_dtype):
    eye = tc.sparse_eye(size, layout=layout, indices_dtype=index_dtype, values_dtype=torch.float32)
    shape = (size, size) if isinstance(size, int) else size
    expected = torch.eye(4).expand(shape)
    assert eye.layout == layout and eye.dtype == torch.float32
    assert torch.equal(eye.to_dense(), expected)
    if layout == torch.sparse_csr:
        assert eye.crow_indices().dtype == index_dtype
    else:
        assert eye.is_coalesced()


def test_sparse_eye_requires_grad():
    assert tc.sparse_eye(3, requires_grad=True).requires_grad


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": (3, 4)}, "size must be"),
        ({"size": 3, "layout": torch.sparse_csc}, "layout must be one of"),
        ({"size": 3, "values_dtype": torch.int64}, "values_dtype must be one of"),
        ({"size": 3, "indices_dtype": torch.int16}, "indices_dtype must be one of"),
    ],
)
def test_sparse_eye_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tc.sparse_eye(**kwargs)
