"""Property-based fuzzing of tsgu.cupy's CPU path (SciPy), run in a child process by
test_fuzz.py: malformed or degenerate inputs give our error or a warning, never a crash."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

pytest.importorskip("hypothesis")  # a test dependency; absent: nothing to fuzz
from hypothesis import assume, given
from hypothesis import strategies as st

from tsgu.core import ConvergenceWarning
from tsgu.core.testing import CORRUPTIONS, corrupt, fuzz_profile, sparse_matrices
from tsgu.cupy import sparse_solve_c4t, t2c_coo, t2c_csr

fuzz_profile(examples=20)
warnings.filterwarnings("ignore", category=UserWarning)

F64 = torch.float64


def matrices() -> Any:
    return sparse_matrices(
        dominant=True, layouts=(torch.sparse_coo, torch.sparse_csr), batches=(None,), sizes=(1, 5)
    )


@given(
    A=matrices(),
    kind=st.sampled_from(CORRUPTIONS),
    offset=st.sampled_from([0, 5, 10_000_000]),
    position=st.integers(0, 20),
    where=st.sampled_from(["A", "M", "t2c"]),
    solve=st.sampled_from([None, "cg", "gmres"]),
)
def check_malformed_matrices_are_our_errors(
    A: torch.Tensor, kind: str, offset: int, position: int, where: str, solve: str | None
) -> None:
    bad = corrupt(A, kind, offset=offset, position=position)
    assume(bad is not None)
    b = torch.ones(A.shape[0], dtype=F64)
    if where == "A":
        call = lambda: sparse_solve_c4t(bad, b, solve=solve)  # noqa: E731
    elif where == "M":
        call = lambda: sparse_solve_c4t(A, b, solve=solve or "gmres", M=bad)  # noqa: E731
    else:
        call = lambda: (t2c_coo if bad.layout == torch.sparse_coo else t2c_csr)(bad)  # noqa: E731
    with pytest.raises(ValueError, match=r"^(sparse_solve_c4t|t2c_coo|t2c_csr): .*malformed"):
        call()


@given(
    A=matrices(),
    name=st.sampled_from(["tol", "rtol", "atol", "maxiter"]),
    value=st.one_of(st.floats(allow_nan=True), st.integers(-2, 3), st.text(max_size=2)),
    solve=st.sampled_from(["cg", "gmres", "minres", "cgs"]),
)
def check_solver_options_never_reach_scipy_unchecked(
    A: torch.Tensor, name: str, value: Any, solve: str
) -> None:
    b = torch.ones(A.shape[0], dtype=F64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            sparse_solve_c4t(A, b, solve=solve, **{name: value})
            error = None
        except (TypeError, ValueError) as err:
            error = str(err)
    if error is not None:
        assert error.startswith("sparse_solve_c4t: "), error
