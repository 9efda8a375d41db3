"""sparse_mm keeps a matrix's pattern (and its transposed order) between calls, never stale."""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core import _pattern_cache
from tsgu.core._pattern import same_content
from tsgu.core._pattern_cache import cached_pattern, cached_patterns, clear_pattern_cache
from tsgu.core.testing import generator

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


def _parts(index_dtype=torch.int64, seed=0):
    """Row pointers, columns and values of a random nonsymmetric 7 x 5 matrix."""
    dense = torch.randn(7, 5, generator=generator(seed), dtype=torch.float64)
    dense[torch.rand(7, 5, generator=generator(seed + 1)) < 0.5] = 0.0
    csr = dense.to_sparse_csr()
    return csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype), csr.values()


_COO_INDICES: list[tuple[torch.Tensor, torch.Tensor]] = []  # (col, the indices made from it)


def _build(layout, crow, col, values):
    """A new tensor on the very index tensors given (COO: on one indices tensor per ``col``)."""
    if layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(crow, col, values, (7, 5))
    made = [indices for source, indices in _COO_INDICES if source is col]
    if not made:
        rows = torch.repeat_interleave(torch.arange(7), crow.diff().to(torch.int64))
        made = [torch.stack([rows, col.to(torch.int64)])]
        _COO_INDICES.append((col, made[0]))
    return torch.sparse_coo_tensor(made[0], values, (7, 5), is_coalesced=True)


def _check_against_dense(A):
    X = torch.randn(A.shape[1], 3, generator=generator(5), dtype=torch.float64)
    X.requires_grad_(True)
    G = torch.randn(A.shape[0], 3, generator=generator(6), dtype=torch.float64)
    tc.sparse_mm(A, X).backward(G)
    dense = A.to_dense()
    torch.testing.assert_close(tc.sparse_mm(A, X.detach()), dense @ X.detach())
    torch.testing.assert_close(X.grad, dense.mT @ G)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_same_tensor_gets_the_same_pattern(layout, index_dtype):
    clear_pattern_cache()
    A = _build(layout, *_parts(index_dtype))
    assert cached_pattern(A) is cached_pattern(A)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_new_tensor_on_the_same_indices_shares_the_pattern(layout, index_dtype):
    clear_pattern_cache()
    crow, col, values = _parts(index_dtype)
    first = cached_pattern(_build(layout, crow, col, values))
    A = _build(layout, crow, col, 2.0 * values)  # a training step: new values, same indices
    assert cached_pattern(A) is first
    _check_against_dense(A)  # and the products use the new values


def test_gradients_of_a_training_loop_match_dense():
    clear_pattern_cache()
    crow, col, values = _parts()
    values = values.clone().requires_grad_(True)
    X = torch.randn(5, 2, generator=generator(3), dtype=torch.float64, requires_grad=True)
    for step in range(3):
        A = tc.sparse_csr_tensor(crow, col, values * (step + 1), (7, 5))
        values.grad = X.grad = None
        tc.sparse_mm(A, X).square().sum().backward()
        dense_values = values.detach().clone().requires_grad_(True)
        dense_X = X.detach().clone().requires_grad_(True)
        Ad = torch.sparse_csr_tensor(crow, col, dense_values * (step + 1), (7, 5)).to_dense()
        (Ad @ dense_X).square().sum().backward()
        torch.testing.assert_close(values.grad, dense_values.grad)
        torch.testing.assert_close(X.grad, dense_X.grad)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_indices_edited_in_place_are_seen(layout, index_dtype):
    clear_pattern_cache()
    crow, col, values = _parts(index_dtype)
    A = _build(layout, crow, col, values)
    _check_against_dense(A)
    # the same tensor object, its indices edited through its own accessor
    index = A._indices() if layout == torch.sparse_coo else A.col_indices()
    row = 1 if layout == torch.sparse_coo else 0
    target = index[row] if layout == torch.sparse_coo else index
    with torch.no_grad():
        target.copy_(torch.remainder(target + 1, 5))  # still valid: columns in range
    if layout == torch.sparse_csr:  # columns no longer sorted in their rows: sort each row's
        order = torch.sort(crow_rows(crow) * 5 + target.to(torch.int64), stable=True).indices
        A = torch.sparse_csr_tensor(crow, target[order], values[order], (7, 5))
    else:  # a new tensor on the edited memory, no longer coalesced
        A = torch.sparse_coo_tensor(A._indices(), A._values(), A.shape)
    _check_against_dense(A)


def crow_rows(crow):
    return torch.repeat_interleave(torch.arange(crow.numel() - 1), crow.diff().to(torch.int64))


def test_rebuilt_on_edited_memory_is_not_stale():
    """A new tensor on the same (edited) index memory gets a new pattern: content is compared."""
    clear_pattern_cache()
    indices = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    _check_against_dense(torch.sparse_coo_tensor(indices, values, (4, 4)))
    with torch.no_grad():
        indices[1].copy_(torch.tensor([3, 0, 1, 2]))
    _check_against_dense(torch.sparse_coo_tensor(indices, values, (4, 4)))


def test_cache_is_bounded():
    clear_pattern_cache()
    kept = []
    for seed in range(_pattern_cache._MAX_OBJECTS + 10):
        A = _build(torch.sparse_csr, *_parts(seed=seed))
        kept.append(A)
        cached_pattern(A)
    assert len(_pattern_cache._BY_OBJECT) <= _pattern_cache._MAX_OBJECTS
    assert len(_pattern_cache._BY_CONTENT) <= _pattern_cache._MAX_SHARED


def test_entry_dies_with_its_tensor():
    clear_pattern_cache()
    A = _build(torch.sparse_csr, *_parts())
    cached_pattern(A)
    assert len(_pattern_cache._BY_OBJECT) == 1
    del A
    assert len(_pattern_cache._BY_OBJECT) == 0


def test_forget_structure_drops_the_pattern_of_an_edit_torch_cannot_see():
    """An index tensor handed to torch's constructor, edited in place: unseen until forgotten."""
    from tsgu.core.validation import forget_structure

    clear_pattern_cache()
    indices = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    values = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    A = torch.sparse_coo_tensor(indices, values, (4, 4))
    first = cached_pattern(A)
    with torch.no_grad():
        indices[1].copy_(torch.tensor([3, 0, 1, 2]))
    forget_structure(A)
    assert cached_pattern(A) is not first
    _check_against_dense(A)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_sampled_mm_on_a_kept_pattern_matches_dense(layout, index_dtype):
    clear_pattern_cache()
    crow, col, values = _parts(index_dtype)
    mask = _build(layout, crow, col, values).to_dense() != 0
    for step in range(2):  # the second call finds the pattern kept by the first
        A = _build(layout, crow, col, values * (step + 1))
        U = torch.randn(7, 3, generator=generator(step), dtype=torch.float64, requires_grad=True)
        V = torch.randn(3, 5, generator=generator(9), dtype=torch.float64, requires_grad=True)
        W = torch.randn(7, 5, generator=generator(4), dtype=torch.float64)
        out = tc.sparse_sampled_mm(A, U, V)
        torch.testing.assert_close(out.to_dense(), (U @ V).detach() * mask)
        gU, gV = torch.autograd.grad((out.to_dense() * W).sum(), (U, V))
        dU, dV = torch.autograd.grad(((U @ V) * mask * W).sum(), (U, V))
        torch.testing.assert_close(gU, dU)
        torch.testing.assert_close(gV, dV)


def test_derived_results_are_kept_per_pattern_objects_and_cleared():
    from tsgu.core._pattern_cache import cached_derived

    clear_pattern_cache()
    A = _build(torch.sparse_csr, *_parts(torch.int64))
    B = _build(torch.sparse_csr, *_parts(torch.int64, seed=3))
    p_A, p_B = cached_pattern(A), cached_pattern(B)
    made = []

    def make():
        made.append(object())
        return made[-1]

    first = cached_derived("op", (p_A, p_B), make)
    assert cached_derived("op", (p_A, p_B), make) is first and len(made) == 1
    assert cached_derived("op", (p_B, p_A), make) is not first  # order matters
    assert cached_derived("other", (p_A, p_B), make) is not first  # so does the kind
    assert len(made) == 3
    clear_pattern_cache()
    assert cached_derived("op", (p_A, p_B), make) is not first and len(made) == 4
    clear_pattern_cache()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (torch.arange(10), torch.arange(10)),
        (torch.arange(10), torch.arange(10).flip(0)),
        (torch.arange(10, dtype=torch.int32), torch.arange(10, dtype=torch.int32)),
        (torch.arange(10, dtype=torch.int32), torch.arange(10)),  # dtypes differ
        (torch.arange(10)[::2], torch.arange(10)[::2].clone()),  # not contiguous
        (torch.arange(12).reshape(2, 6), torch.arange(12).reshape(2, 6)),
        (torch.arange(12).reshape(2, 6), torch.arange(12).reshape(3, 4)),  # shapes differ
        (torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64)),
        (torch.tensor([0, 1, 2**40]), torch.tensor([0, 1, 2**40 + 1])),  # a high byte differs
    ],
)
def test_same_content_agrees_with_torch_equal(a, b):
    expected = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    assert same_content(a, b) == expected


def _edit_through(how, col):
    """Change col's first entry (0 <-> 1, still a valid column) through a tensor that does not
    share col's version counter, or through col itself."""
    new = 1 - int(col[0])
    if how == "numpy":
        col.numpy()[0] = new
    elif how == "data":
        col.data[0] = new
    elif how == "itself":
        with torch.no_grad():
            col[0] = new
    else:  # the index tensor of another sparse tensor built from col (its own counter)
        other = tc.sparse_csr_tensor(*how, torch.ones(col.numel(), dtype=torch.float64), (7, 5))
        with torch.no_grad():
            other.col_indices()[0] = new


@pytest.mark.parametrize("how", ["numpy", "data", "itself", "another tensor"])
def test_edits_of_constructor_inputs_are_seen_by_the_kept_pattern(how):
    """tsgu's constructors rebuild A on the same index tensors at every step: however those
    tensors are edited in place (their own counter, .data, NumPy, another sparse tensor made
    from them), the next A gets the pattern of its new indices, never the kept one."""
    clear_pattern_cache()
    crow, col, values = _parts()
    row0 = int(crow[1])  # columns of row 0 are col[:row0]; keep them sorted and unique
    assert row0 == 1 or int(col[1]) > 1  # the fixture's row 0: an edit 0 <-> 1 stays valid
    values = values.clone().requires_grad_(True)
    A = tc.sparse_csr_tensor(crow, col, values, (7, 5))
    first = cached_pattern(A)
    _check_against_dense(A)
    _edit_through((crow, col) if how == "another tensor" else how, col)
    A = tc.sparse_csr_tensor(crow, col, values, (7, 5))
    assert cached_pattern(A) is not first
    assert torch.equal(cached_pattern(A).cols, col)
    _check_against_dense(A)


def test_cached_patterns_shares_one_pattern_for_one_index_memory():
    clear_pattern_cache()
    crow, col, values = _parts()
    A = tc.sparse_csr_tensor(crow, col, values, (7, 5))
    B = tc.sparse_csr_tensor(crow, col, 2 * values, (7, 5))
    pattern_A, pattern_B = cached_patterns(A, B)
    assert pattern_A is pattern_B is cached_pattern(A)
    # the same content on other memory: compared, and the same indices found
    C = tc.sparse_csr_tensor(crow.clone(), col.clone(), values, (7, 5))
    pattern_A, pattern_C = cached_patterns(A, C)
    assert torch.equal(pattern_C.cols, pattern_A.cols)
    # other indices on other memory: their own pattern
    crow_D, col_D, values_D = _parts(seed=3)
    D = tc.sparse_csr_tensor(crow_D, col_D, values_D, (7, 5))
    pattern_A, pattern_D = cached_patterns(A, D)
    assert pattern_D is not pattern_A
    assert torch.equal(pattern_D.cols, col_D)
