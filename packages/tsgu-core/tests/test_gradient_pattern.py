"""The contract the constructors rely on: every tsgu.core op's sparse gradient has its input's
layout, index tensors (same index dtype) and value order, so a constructor hands its values
straight back, and its output, where sparse, keeps the input's pattern."""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core import _pattern
from tsgu.core.testing import BATCH_FORMS, case, generator, weighted_sum, with_values

FORMS = [
    pytest.param(torch.sparse_coo, torch.int64, False, id="coo"),
    pytest.param(torch.sparse_coo, torch.int64, True, id="coo-uncoalesced"),
    pytest.param(torch.sparse_csr, torch.int32, False, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, False, id="csr-int64"),
    pytest.param(torch.sparse_csc, torch.int32, False, id="csc-int32"),
    pytest.param(torch.sparse_csc, torch.int64, False, id="csc-int64"),
]


def _mm(A):
    B = torch.randn((*A.shape[:-2], A.shape[-1], 2), generator=generator(1), dtype=A.dtype)
    return tc.sparse_mm(A, B).sum()


def _weights(S):
    return torch.randn(S.shape, generator=generator(2), dtype=torch.float64)


# op(A) -> a scalar loss; the layouts each op takes
OPS = {
    "sparse_mm": (_mm, (torch.sparse_coo, torch.sparse_csr)),
    "sparse_logsumexp": (lambda A: tc.sparse_logsumexp(A, -1).sum(), None),
    "sparse_logsumexp-all": (lambda A: tc.sparse_logsumexp(A, [-2, -1]).sum(), None),
    "sparse_bidir_logsumexp": (
        lambda A: sum(o.square().sum() for o in tc.sparse_bidir_logsumexp(A, False, False)),
        None,
    ),
    "sparse_softmax": (lambda A: weighted_sum(tc.sparse_softmax(A, -2), _weights(A)), None),
    "sparse_log_softmax": (
        lambda A: weighted_sum(tc.sparse_log_softmax(A, -1), _weights(A)),
        None,
    ),
}


def _matrix(layout, index_dtype, uncoalesced, batch):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    if uncoalesced:  # reversed order, one position stored twice
        indices, values = A._indices().flip(1), A._values().flip(0)
        indices = torch.cat([indices, indices[:, :1]], 1)
        values = torch.cat([values * 0.5, values[:1] * 0.5])
        A = torch.sparse_coo_tensor(indices, values, A.shape)
        assert not A.is_coalesced()
    return A


def _index_tensors(S):
    if S.layout == torch.sparse_coo:
        return (S._indices(),)
    if S.layout == torch.sparse_csr:
        return S.crow_indices(), S.col_indices()
    return S.ccol_indices(), S.row_indices()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("layout", "index_dtype", "uncoalesced"), FORMS)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradient_has_the_input_pattern_in_its_order(op, layout, index_dtype, uncoalesced, batch):
    loss, layouts = OPS[op]
    if layouts is not None and layout not in layouts:
        pytest.skip(f"{op} takes {layouts}")
    A = _matrix(layout, index_dtype, uncoalesced, batch).requires_grad_(True)
    # autograd.grad returns the gradient as the op hands it back (storing it in A.grad goes
    # through torch's AccumulateGrad, which drops COO's coalesced flag and cannot copy CSC)
    (grad,) = torch.autograd.grad(loss(A), A)
    assert grad.layout == A.layout and grad.shape == A.shape
    for ours, theirs in zip(_index_tensors(grad), _index_tensors(A), strict=True):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
    if layout == torch.sparse_coo:
        assert grad.is_coalesced() == A.is_coalesced()
    values = grad._values() if layout == torch.sparse_coo else grad.values()
    assert values.shape == (A._values() if layout == torch.sparse_coo else A.values()).shape


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize(("layout", "index_dtype", "uncoalesced"), FORMS)
def test_constructor_passes_the_gradient_straight_through(
    op, layout, index_dtype, uncoalesced, monkeypatch
):
    loss, layouts = OPS[op]
    if layouts is not None and layout not in layouts:
        pytest.skip(f"{op} takes {layouts}")
    A = _matrix(layout, index_dtype, uncoalesced, "unbatched")
    gathered = []
    original = _pattern.gather_at_pattern

    def spy(pattern, grad):
        gathered.append(grad.layout == torch.strided or not pattern.same_structure(grad))
        return original(pattern, grad)

    monkeypatch.setattr(_pattern, "gather_at_pattern", spy)
    values, rebuild = with_values(A)
    loss(rebuild(values)).backward()
    # A tsgu op reads a constructor-built matrix's values tensor directly (values_of), so
    # the constructor's backward never runs and nothing is gathered for it.
    if op.startswith("sparse_soft") or op.startswith("sparse_log_soft"):
        # weighted_sum hands the op's sparse output a dense gradient: that one is gathered
        assert gathered == [True]
    else:
        assert gathered == []


@pytest.mark.parametrize(("layout", "index_dtype", "uncoalesced"), FORMS)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_sparse_outputs_keep_the_input_pattern(layout, index_dtype, uncoalesced, batch):
    A = _matrix(layout, index_dtype, uncoalesced, batch)
    U = torch.randn((*A.shape[:-1], 2), generator=generator(3), dtype=A.dtype)
    V = torch.randn((*A.shape[:-2], 2, A.shape[-1]), generator=generator(4), dtype=A.dtype)
    for S in (
        tc.sparse_sampled_mm(A, U, V),
        tc.sparse_softmax(A, -1),
        tc.sparse_log_softmax(A, -2),
    ):
        assert S.layout == A.layout and S.shape == A.shape
        for ours, theirs in zip(_index_tensors(S), _index_tensors(A), strict=True):
            assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)
