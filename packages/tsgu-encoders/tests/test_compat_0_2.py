"""Interchangeable with torchsparsegradutils 0.2: offsets, their order, value placement.

A fixture recorded from 0.2.2 always runs; the live comparison runs where 0.2 is
installed (``pip install --no-deps torchsparsegradutils==0.2.2``) and skips otherwise.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import pytest
import torch

from tsgu.core.testing import torchsparsegradutils_0_2
from tsgu.encoders import PairwiseEncoder, calc_pairwise_coo_indices_nd

RECORDED = json.loads((Path(__file__).parent / "data" / "tsgu02_encoders.json").read_text())


def _build(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # upper=True with channel relations
        return PairwiseEncoder(**cfg)


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda c: str(c["config"]))
def test_recorded_offsets_and_placement(case):
    enc = _build(case["config"])
    assert enc.offsets == [tuple(o) for o in case["offsets"]]
    assert len(calc_pairwise_coo_indices_nd(**case["config"])) == len(case["offsets"])
    if "dense_of_arange_values" in case:
        count = len(enc.offsets) * enc.volume_numel
        values = torch.arange(1, count + 1, dtype=torch.float64).reshape(enc.values_shape)
        expected = torch.tensor(case["dense_of_arange_values"], dtype=torch.float64)
        for layout in (torch.sparse_coo, torch.sparse_csr):
            got = _build({**case["config"], "layout": layout})(values).to_dense()
            assert torch.equal(got, expected)


def test_fixture_covers_what_it_claims():
    dims = {len(c["config"]["volume_shape"]) - 1 for c in RECORDED["cases"]}
    relations = {c["config"].get("channel_voxel_relation", "indep") for c in RECORDED["cases"]}
    assert dims == {1, 2, 3, 4}
    assert relations == {"indep", "intra", "inter"}


def _old():
    return torchsparsegradutils_0_2("encoders")


LIVE = [
    (shape, radius, diag, upper, relation)
    for shape, radius, diag, upper, relation in itertools.product(
        [(1, 5), (3, 4), (2, 3, 4), (1, 3, 2, 3), (2, 2, 3, 2), (2, 2, 2, 2, 2)],
        [1, 1.5, 2, math.sqrt(3)],
        [False, True],
        [None, False, True],
        ["indep", "intra", "inter"],
    )
    if shape[0] > 1 or relation == "indep"
]


@pytest.mark.parametrize(("shape", "radius", "diag", "upper", "relation"), LIVE)
def test_same_as_installed_0_2(shape, radius, diag, upper, relation):
    old = _old()
    gen = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = old.PairwiseEncoder(radius, shape, diag, upper, relation)
        ours = PairwiseEncoder(radius, shape, diag, upper, relation)
        assert ours.offsets == theirs.offsets
        values = torch.randn(2, len(ours.offsets), *shape, dtype=torch.float64, generator=gen)
        for v in (values[0], values):  # unbatched and batched
            assert torch.equal(ours(v).to_dense(), theirs(v).to_dense())
        their_pairs = old.calc_pairwise_coo_indices_nd(radius, shape, diag, upper, relation)
    our_pairs = calc_pairwise_coo_indices_nd(radius, shape, diag, upper, relation)
    assert list(our_pairs) == list(their_pairs)
    for o, pairs in their_pairs.items():
        assert torch.equal(our_pairs[o], pairs)
