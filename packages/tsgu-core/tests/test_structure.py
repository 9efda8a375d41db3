"""Index-structure checks: every malformed sparse tensor is a clear ValueError, the verdict is
cached per tensor object and dropped by in-place edits, and tsgu's constructors check first."""

from __future__ import annotations

import gc
import io
import warnings

import pytest
import torch

import tsgu.core as tc
from tsgu.core import _structure
from tsgu.core.testing import corrupt
from tsgu.core.validation import check_sparse_structure, forget_structure

warnings.filterwarnings("ignore", message="Sparse invariant checks")

MALFORMED = "a malformed sparse tensor"


def _csr(crow, col, shape, values=None):
    crow, col = torch.tensor(crow), torch.tensor(col)
    if values is None:
        values = torch.ones(col.shape, dtype=torch.float64)
    return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _coo(indices, shape, coalesced=None):
    indices = torch.tensor(indices)
    values = torch.ones(indices.shape[1], dtype=torch.float64)
    return torch.sparse_coo_tensor(
        indices, values, shape, is_coalesced=coalesced, check_invariants=False
    )


@pytest.mark.parametrize(
    ("A", "message"),
    [
        (
            _csr([0, 1, 2], [0, 10_000_000], (2, 6)),
            "sparse_mm: A: col_indices[1] = 10000000 is out of range for 6 columns",
        ),
        (_csr([0, 1, 2], [0, -3], (2, 6)), "col_indices[1] = -3 is out of range for 6 columns"),
        (_csr([1, 1, 2], [0, 1], (2, 6)), r"crow_indices[0] must be 0, got 1"),
        (_csr([0, 1, 3], [0, 1], (2, 6)), "crow_indices[-1] must equal nnz = 2"),
        (_csr([0, 2, 1, 2], [0, 1], (3, 6)), "crow_indices must not decrease"),
        (
            _csr([[0, 1, 2], [0, 1, 2]], [[0, 1], [1, 9]], (2, 2, 6)),
            "col_indices[1, 1] = 9 is out of range for 6 columns",
        ),
        (_csr([[0, 1, 2], [0, 2, 1]], [[0, 1], [1, 0]], (2, 2, 6)), "must not decrease"),
        (_coo([[0, 2], [1, 1]], (2, 6)), "indices[0, 1] = 2 is out of range for 2 rows"),
        (_coo([[0, 1], [1, 6]], (2, 6)), "indices[1, 1] = 6 is out of range for 6 columns"),
        (_coo([[0, 1], [-1, 1]], (2, 6)), "indices[1, 0] = -1 is out of range"),
        (
            _coo([[0, 2], [1, 0], [0, 0]], (2, 2, 6)),
            "indices[0, 1] = 2 is out of range for 2 batch items",
        ),
        (_coo([[1, 0], [0, 1]], (2, 6), coalesced=True), "flagged coalesced but its indices"),
        (_coo([[0, 0], [1, 1]], (2, 6), coalesced=True), "flagged coalesced but its indices"),
    ],
)
def test_malformed_tensors_are_named_errors(A, message):
    B = torch.ones(A.shape[-1], 1, dtype=torch.float64)
    if A.dim() == 3:
        B = B.expand(A.shape[0], -1, -1)
    with pytest.raises(ValueError, match=MALFORMED) as err:
        tc.sparse_mm(A, B)
    assert message in str(err.value)


def test_csc_is_checked_by_the_operations_that_take_it():
    crow = torch.tensor([0, 1, 2])
    A = torch.sparse_csc_tensor(
        crow, torch.tensor([0, 5]), torch.ones(2), (3, 2), check_invariants=False
    )
    with pytest.raises(ValueError, match=r"row_indices\[1\] = 5 is out of range for 3 rows"):
        tc.sparse_softmax(A, dim=1)


def test_the_verdict_is_cached_per_tensor_and_dropped_by_in_place_edits():
    A = tc.poisson_2d(4)
    B = torch.ones(16, 1, dtype=torch.float64)
    tc.sparse_mm(A, B)
    assert _structure._holds(A)
    assert not _structure._holds(A.detach())  # another object: checked on its own
    A.col_indices()[3] = 100  # an edit through A's own index tensor bumps its version
    assert not _structure._holds(A)
    with pytest.raises(ValueError, match=r"col_indices\[3\] = 100"):
        tc.sparse_mm(A, B)


def test_forget_structure_drops_the_verdict():
    crow, col = torch.tensor([0, 1, 2]), torch.tensor([0, 1])
    A = torch.sparse_csr_tensor(crow, col, torch.ones(2), (2, 2))
    check_sparse_structure("f", "A", A)
    col[1] = 7  # shares A's memory, not its version counter: unseen by the cache
    assert _structure._holds(A)
    forget_structure(A)
    with pytest.raises(ValueError, match=r"col_indices\[1\] = 7"):
        check_sparse_structure("f", "A", A)


def test_replaced_indices_are_checked_again():
    A = torch.tensor([[1.0, 0.0], [0.0, 2.0]]).to_sparse()
    check_sparse_structure("f", "A", A)
    bad = torch.sparse_coo_tensor(
        torch.tensor([[0, 1], [0, 5]]), torch.ones(2), (2, 2), check_invariants=False
    )
    A.copy_(bad)  # same object, new index tensor (same nnz): the cache must not vouch for it
    with pytest.raises(ValueError, match="out of range"):
        check_sparse_structure("f", "A", A)


def test_verdicts_die_with_their_tensors():
    before = len(_structure._VERDICTS)
    A = tc.poisson_2d(3)
    check_sparse_structure("f", "A", A)
    assert len(_structure._VERDICTS) == before + 1
    del A
    gc.collect()
    assert len(_structure._VERDICTS) == before


def test_the_verdict_does_not_travel_through_torch_save():
    A = tc.poisson_2d(3)
    check_sparse_structure("f", "A", A)
    assert not A.__dict__  # nothing stored on the tensor
    buffer = io.BytesIO()
    torch.save(A, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert not _structure._holds(loaded)


def test_inference_tensors_are_checked_every_time():
    with torch.inference_mode():
        A = _csr([0, 1, 2], [0, 1], (2, 2))
        check_sparse_structure("f", "A", A)
        assert not _structure._holds(A)


# ------------------------------------------------------------------- constructors
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda v: tc.sparse_csr_tensor(
                torch.tensor([0, 1, 3]), torch.tensor([0, 1]), v, (2, 2)
            ),
            r"sparse_csr_tensor: crow_indices\[-1\] must equal nnz = 2",
        ),
        (
            lambda v: tc.sparse_csr_tensor(
                torch.tensor([0, 2, 1]), torch.tensor([0, 1]), v, (2, 2)
            ),
            "sparse_csr_tensor: crow_indices must not decrease",
        ),
        (
            lambda v: tc.sparse_csc_tensor(
                torch.tensor([0, 1, 2]), torch.tensor([0, 2]), v, (2, 2)
            ),
            r"sparse_csc_tensor: row_indices\[1\] = 2 is out of range for 2 rows",
        ),
        (
            lambda v: tc.sparse_coo_tensor(torch.tensor([[0, 1], [1, 5]]), v, (2, 2)),
            r"sparse_coo_tensor: indices\[1, 1\] = 5 is out of range for 2 columns",
        ),
        (
            lambda v: tc.sparse_coo_tensor(
                torch.tensor([[1, 0], [0, 1]]), v, (2, 2), is_coalesced=True
            ),
            "flagged coalesced",
        ),
    ],
)
def test_constructors_check_by_default(build, message):
    with pytest.raises(ValueError, match=message):
        build(torch.ones(2, requires_grad=True))


def test_constructor_checks_once_while_its_index_tensors_are_unchanged(monkeypatch):
    crow, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
    calls = []
    real = _structure.check_compressed_indices
    monkeypatch.setattr(
        _structure, "check_compressed_indices", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    for _ in range(3):  # a training loop rebuilding A from trainable values
        values = torch.ones(2, requires_grad=True)
        A = tc.sparse_csr_tensor(crow, col, values, (2, 2))
        tc.sparse_mm(A, torch.ones(2, 1)).sum().backward()
    assert len(calls) == 1
    col[0] = 5  # an in-place edit of an index tensor: checked again
    with pytest.raises(ValueError, match="out of range"):
        tc.sparse_csr_tensor(crow, col, torch.ones(2), (2, 2))


def test_check_invariants_false_trusts_the_indices():
    A = tc.sparse_csr_tensor(
        torch.tensor([0, 1, 2]), torch.tensor([0, 9]), torch.ones(2), (2, 2), check_invariants=False
    )
    assert _structure._holds(A)  # the caller vouched for it: no check later either


def test_check_invariants_true_adds_torchs_checks():
    with pytest.raises(RuntimeError):  # torch's own: columns sorted within a row
        tc.sparse_csr_tensor(
            torch.tensor([0, 2]), torch.tensor([1, 0]), torch.ones(2), (1, 2), check_invariants=True
        )


# --------------------------------------------------------------------- conversions
@pytest.mark.parametrize(
    ("indices", "num_rows", "message"),
    [
        ([[0, 3], [0, 1]], 2, r"coo_indices\[0, 1\] = 3 is not a valid row index"),
        ([[0, -1], [0, 1]], 2, r"coo_indices\[0, 1\] = -1 is not a valid row index"),
        ([[0, 1], [0, -1]], 2, r"coo_indices\[1, 1\] = -1 is not a valid column index"),
        ([[0, 1], [0, 1]], -1, "num_rows must be a non-negative int"),
        ([[0, 1], [0, 1]], 2.0, "num_rows must be a non-negative int"),
    ],
)
def test_coo_to_csr_indices_checks_num_rows(indices, num_rows, message):
    with pytest.raises(ValueError, match=message):
        tc.convert_coo_to_csr_indices_values(torch.tensor(indices), num_rows)


@pytest.mark.parametrize("kind", ["index_too_large", "index_negative", "false_coalesced"])
def test_corrupt_builds_what_the_checks_catch_for_coo(kind):
    A = tc.poisson_2d(3, layout=torch.sparse_coo)
    bad = corrupt(A, kind, offset=4, position=5)
    assert bad is not None
    with pytest.raises(ValueError, match=MALFORMED if kind != "false_coalesced" else "coalesced"):
        check_sparse_structure("f", "A", bad)
