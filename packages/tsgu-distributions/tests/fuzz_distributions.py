"""Property-based fuzzing of tsgu.distributions, run in a child process by test_fuzz.py:
malformed factors and sample shapes give our errors, never a crash."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

pytest.importorskip("hypothesis")  # a test dependency; absent: nothing to fuzz
from hypothesis import assume, given
from hypothesis import strategies as st

from tsgu.core.testing import CORRUPTIONS, corrupt, fuzz_profile, sparse_matrices
from tsgu.distributions import SparseMultivariateNormal, SparseMultivariateNormalNative

fuzz_profile(examples=20)
warnings.filterwarnings("ignore", category=UserWarning)

F64 = torch.float64
CLASSES = {
    "SparseMultivariateNormal": SparseMultivariateNormal,
    "SparseMultivariateNormalNative": SparseMultivariateNormalNative,
}


def factors() -> Any:
    return sparse_matrices(
        lower=True, layouts=(torch.sparse_coo, torch.sparse_csr), batches=(None,), sizes=(1, 5)
    )


@given(
    L=factors(),
    kind=st.sampled_from(CORRUPTIONS),
    offset=st.sampled_from([0, 5, 10_000_000]),
    position=st.integers(0, 20),
    name=st.sampled_from(sorted(CLASSES)),
)
def check_malformed_factors_are_our_errors(
    L: torch.Tensor, kind: str, offset: int, position: int, name: str
) -> None:
    if name == "SparseMultivariateNormalNative":  # CSR only
        L = L.to_sparse_csr()
    bad = corrupt(L, kind, offset=offset, position=position)
    assume(bad is not None)
    loc = torch.zeros(L.shape[-1], dtype=F64)
    with pytest.raises(ValueError, match=f"^{name}: scale_tril: "):
        CLASSES[name](loc, scale_tril=bad)


@given(
    L=factors(),
    sample_shape=st.one_of(
        st.lists(st.integers(-2, 3), max_size=2).map(tuple),
        st.tuples(st.floats(allow_nan=True)),
        st.text(max_size=2),
    ),
    name=st.sampled_from(sorted(CLASSES)),
)
def check_sample_shapes_are_checked(L: torch.Tensor, sample_shape: Any, name: str) -> None:
    if name == "SparseMultivariateNormalNative":  # CSR only
        L = L.to_sparse_csr()
    d = CLASSES[name](torch.zeros(L.shape[-1], dtype=F64), scale_tril=L)
    try:
        x = d.rsample(sample_shape)
        error = None
    except (TypeError, ValueError) as err:
        error = str(err)
    if error is not None:
        assert error.startswith(f"{name}.rsample: sample_shape must"), error
    else:
        assert x.shape == (*sample_shape, L.shape[-1])
