"""The shared case catalogue delivers the properties its tags promise."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import BATCH_SIZE, CASES, case, cases, to_layout, with_values


@pytest.mark.parametrize("c", CASES, ids=str)
@pytest.mark.parametrize("batch", ["unbatched", "batched"])
def test_case_properties(c, batch):
    D = c.dense(batch=batch)
    items = D if batch == "batched" else D[None]
    if batch == "batched":
        assert D.shape[0] == BATCH_SIZE
        patterns = [(d != 0) for d in D]
        assert all(torch.equal(p, patterns[0]) for p in patterns)  # one pattern per batch
        assert not torch.equal(D[0], D[1])  # ... with different values
    for d in items:
        if "symmetric" in c.tags:
            assert torch.equal(d, d.T)
        if "spd" in c.tags:
            assert float(torch.linalg.eigvalsh(d).min()) > 0
        if "indefinite" in c.tags:
            ev = torch.linalg.eigvalsh(d)
            assert ev.min() < 0 < ev.max()
        if "lower" in c.tags:
            assert torch.equal(d, d.tril())
        if "upper" in c.tags:
            assert torch.equal(d, d.triu())
        if "nonsymmetric" in c.tags:
            assert not torch.equal(d, d.T)
        if "invertible" in c.tags:
            assert float(torch.linalg.cond(d)) < 1e4
        if "singular" in c.tags:
            assert int(torch.linalg.matrix_rank(d)) < d.shape[0]
        if "rectangular" in c.tags:
            assert d.shape[0] > d.shape[1]
            assert int(torch.linalg.matrix_rank(d)) == d.shape[1]


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr, torch.sparse_csc])
@pytest.mark.parametrize("batch", ["unbatched", "batched"])
def test_make_and_with_values_round_trip(layout, batch):
    A = case("spd").make(layout=layout, index_dtype=torch.int32, batch=batch)
    assert A.layout == layout
    values, rebuild = with_values(A)
    assert values.requires_grad
    assert torch.equal(rebuild(values).detach().to_dense(), A.to_dense())


def test_cases_filters_by_tags():
    names = {c.name for c in cases("symmetric")}
    assert names == {"poisson_2d", "poisson_3d", "spd", "symmetric_indefinite"}
    assert "spd" not in {c.name for c in cases("symmetric", exclude=("spd",))}
    with pytest.raises(KeyError, match="no matrix case"):
        case("nope")


def test_to_layout_keeps_index_dtype():
    A = to_layout(torch.eye(3), torch.sparse_csr, torch.int32)
    assert A.crow_indices().dtype == torch.int32
