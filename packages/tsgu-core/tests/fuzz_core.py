"""Property-based fuzzing of tsgu.core's public functions (run by test_fuzz.py in a child
process, so that a crash fails one test instead of killing the suite).

Every property states what a user may rely on for *any* input: a correct result, or a
TypeError / ValueError of ours (its message starts with the function's name), or a
ConvergenceWarning whose residual is the true one; never a crash, never an error from deep
inside torch, never a silent wrong answer. Profiles: ``TSGU_FUZZ_PROFILE=default`` (the
suite's, a minute or less) or ``nightly`` (many more examples).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

pytest.importorskip("hypothesis")  # a test dependency; absent: nothing to fuzz
from hypothesis import assume, given
from hypothesis import strategies as st

import tsgu.core as tc
from tsgu.core.testing import CORRUPTIONS, corrupt, fuzz_profile, sparse_matrices, to_layout

fuzz_profile(examples=40)

warnings.filterwarnings("ignore", category=UserWarning)  # torch's beta-state and check notes

COO, CSR, CSC = torch.sparse_coo, torch.sparse_csr, torch.sparse_csc
F64 = torch.float64


def _rhs(A: torch.Tensor, rows: int, k: int = 2) -> torch.Tensor:
    return torch.ones((*A.shape[:-2], rows, k), dtype=A.dtype)


def _split_shapes(A: torch.Tensor) -> list[tuple[int, int]]:
    return [(A.shape[-2], A.shape[-1])]


# Each public function that takes a sparse matrix, called on A, with the names its errors
# may carry (a generic solve reports its solver's errors).
OPS: dict[str, tuple[Callable[[torch.Tensor], Any], tuple[str, ...]]] = {
    "sparse_mm": (lambda A: tc.sparse_mm(A, _rhs(A, A.shape[-1])), ("sparse_mm",)),
    "sparse_sampled_mm": (
        lambda A: tc.sparse_sampled_mm(A, _rhs(A, A.shape[-2]), _rhs(A, 2, A.shape[-1])),
        ("sparse_sampled_mm",),
    ),
    "sparse_softmax": (lambda A: tc.sparse_softmax(A, dim=-1), ("sparse_softmax",)),
    "sparse_log_softmax": (lambda A: tc.sparse_log_softmax(A, dim=-2), ("sparse_log_softmax",)),
    "sparse_logsumexp": (lambda A: tc.sparse_logsumexp(A, dim=-1), ("sparse_logsumexp",)),
    "sparse_bidir_logsumexp": (
        lambda A: tc.sparse_bidir_logsumexp(A),
        ("sparse_bidir_logsumexp",),
    ),
    "sparse_triangular_solve": (
        lambda A: tc.sparse_triangular_solve(A, _rhs(A, A.shape[-2]), upper=False),
        ("sparse_triangular_solve",),
    ),
    "sparse_generic_solve": (
        lambda A: tc.sparse_generic_solve(A, _rhs(A, A.shape[-2]), solve="bicgstab"),
        ("sparse_generic_solve", "bicgstab"),
    ),
    "sparse_generic_lstsq": (
        lambda A: tc.sparse_generic_lstsq(A, _rhs(A, A.shape[-2])),
        ("sparse_generic_lstsq", "lsmr"),
    ),
    "cg": (lambda A: tc.cg(A, _rhs(A, A.shape[-2])), ("cg",)),
    "minres": (lambda A: tc.minres(A, _rhs(A, A.shape[-2])), ("minres",)),
    "bicgstab": (lambda A: tc.bicgstab(A, _rhs(A, A.shape[-2])), ("bicgstab",)),
    "gmres": (lambda A: tc.gmres(A, _rhs(A, A.shape[-2])), ("gmres",)),
    "lsmr": (lambda A: tc.lsmr(A, _rhs(A, A.shape[-2])), ("lsmr",)),
    "jacobi": (tc.jacobi, ("jacobi",)),
    "block_jacobi": (lambda A: tc.block_jacobi(A, 2), ("block_jacobi",)),
    "ic0": (tc.ic0, ("ic0",)),
    "ilu0": (tc.ilu0, ("ilu0",)),
    "convert_coo_to_csr": (tc.convert_coo_to_csr, ("convert_coo_to_csr",)),
    "stack_csr": (lambda A: tc.stack_csr([A, A]), ("stack_csr",)),
    "sparse_block_diag": (lambda A: tc.sparse_block_diag(A, A), ("sparse_block_diag",)),
    "sparse_block_diag_split": (
        lambda A: tc.sparse_block_diag_split(A, *_split_shapes(A)),
        ("sparse_block_diag_split",),
    ),
}


def _call(op: str, A: torch.Tensor) -> Any:
    """Run an op; return its result, or the TypeError/ValueError it raised (any other
    exception propagates and fails the property: an error from deep inside)."""
    fn, _ = OPS[op]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(A)
        except (TypeError, ValueError) as err:
            return err


def _ours(op: str, err: Exception) -> bool:
    return str(err).startswith(tuple(f"{name}: " for name in OPS[op][1]))


@given(A=sparse_matrices(), op=st.sampled_from(sorted(OPS)))
def check_valid_inputs_never_give_foreign_errors(A: torch.Tensor, op: str) -> None:
    out = _call(op, A)
    if isinstance(out, Exception):
        assert _ours(op, out), f"{op}: not our error: {type(out).__name__}: {out}"
        assert "malformed" not in str(out), f"{op}: a valid tensor called malformed: {out}"


@given(
    A=sparse_matrices(),
    op=st.sampled_from(sorted(OPS)),
    kind=st.sampled_from(CORRUPTIONS),
    offset=st.sampled_from([0, 1, 7, 10_000_000, 2**31 - 1]),
    position=st.integers(0, 50),
)
def check_malformed_inputs_are_clear_errors(
    A: torch.Tensor, op: str, kind: str, offset: int, position: int
) -> None:
    bad = corrupt(A, kind, offset=offset, position=position)
    assume(bad is not None)
    out = _call(op, bad)
    assert isinstance(out, Exception), f"{op} accepted a tensor with {kind}: returned {out!r}"
    assert _ours(op, out), f"{op}: not our error: {type(out).__name__}: {out}"


@given(A=sparse_matrices(), kind=st.sampled_from(CORRUPTIONS), position=st.integers(0, 50))
def check_constructors_refuse_malformed_indices(A: torch.Tensor, kind: str, position: int) -> None:
    bad = corrupt(A, kind, position=position)
    assume(bad is not None)
    values = bad.values() if bad.layout != COO else bad._values()
    if bad.layout == COO:
        build: Callable[[], Any] = lambda: tc.sparse_coo_tensor(  # noqa: E731
            bad._indices(), values, bad.shape, is_coalesced=bad.is_coalesced()
        )
        name = "sparse_coo_tensor"
    elif bad.layout == CSR:
        build = lambda: tc.sparse_csr_tensor(  # noqa: E731
            bad.crow_indices(), bad.col_indices(), values, bad.shape
        )
        name = "sparse_csr_tensor"
    else:
        build = lambda: tc.sparse_csc_tensor(  # noqa: E731
            bad.ccol_indices(), bad.row_indices(), values, bad.shape
        )
        name = "sparse_csc_tensor"
    with pytest.raises(ValueError, match=f"^{name}: "):
        build()


@given(
    A=sparse_matrices(),
    k=st.integers(1, 3),
)
def check_sparse_mm_matches_dense(A: torch.Tensor, k: int) -> None:
    assume(A.layout != CSC)
    B = torch.randn((*A.shape[:-2], A.shape[-1], k), dtype=F64)
    torch.testing.assert_close(tc.sparse_mm(A, B), A.to_dense() @ B)


@st.composite
def systems(draw: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A small square system that may be zero, singular, indefinite or fine; b may be 0."""
    n = draw(st.integers(1, 6))
    kind = draw(st.sampled_from(["zero", "singular", "spd", "random", "rank-one"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    R = torch.randn(n, n, generator=gen, dtype=F64)
    if kind == "zero":
        dense = torch.zeros(n, n, dtype=F64)
    elif kind == "singular":
        dense = R @ R.T
        dense[-1] = 0
        dense[:, -1] = 0
    elif kind == "spd":
        dense = R @ R.T + n * torch.eye(n, dtype=F64)
    elif kind == "rank-one":
        v = R[0]
        dense = torch.outer(v, v)
    else:
        dense = R
    b = torch.randn(n, generator=gen, dtype=F64)
    if draw(st.booleans()) and draw(st.booleans()):
        b = torch.zeros(n, dtype=F64)
    layout = draw(st.sampled_from([COO, CSR]))
    return to_layout(dense, layout), b


@given(
    system=systems(),
    solver=st.sampled_from(["cg", "minres", "bicgstab", "gmres", "lsmr"]),
    maxiter=st.sampled_from([None, 0, 1, 3]),
)
def check_solvers_never_claim_false_convergence(
    system: tuple[torch.Tensor, torch.Tensor], solver: str, maxiter: int | None
) -> None:
    A, b = system
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, info = getattr(tc, solver)(A, b, maxiter=maxiter, return_info=True)
    warned = any(issubclass(w.category, tc.ConvergenceWarning) for w in caught)
    dense = A.to_dense()
    true = torch.linalg.vector_norm(b - dense @ x)
    # equal up to the rounding of A x, which grows with ||A|| ||x|| (a breakdown's x is huge)
    rounding = 1e-12 * (
        float(torch.linalg.vector_norm(b))
        + float(torch.linalg.matrix_norm(dense)) * float(torch.linalg.vector_norm(x))
    )
    assert math.isclose(float(info.residual_norm), float(true), rel_tol=1e-9, abs_tol=rounding)
    assert warned == (not info.converged)
    if info.converged:
        assert bool(torch.isfinite(x).all())
        if solver != "lsmr":  # LSMR's tests are SciPy's; the others' is this one
            assert float(true) <= 1e-5 * float(torch.linalg.vector_norm(b)) * (1 + 1e-9)


_ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)


@given(
    name=st.sampled_from(["rtol", "atol", "tol", "maxiter"]),
    value=_ANY_VALUE,
    solver=st.sampled_from(["cg", "minres", "bicgstab", "gmres"]),
)
def check_solver_options_are_checked(name: str, value: Any, solver: str) -> None:
    A = tc.poisson_2d(3)
    b = torch.ones(9, dtype=F64)
    bad_number = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (math.isnan(value) or value < 0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            getattr(tc, solver)(A, b, **{name: value})
            error = None
        except (TypeError, ValueError) as err:
            error = str(err)
    if error is not None:
        assert error.startswith(f"{solver}: {name} "), error
        return
    assert not bad_number, f"{solver} accepted {name}={value!r}"
    assert value is None or not isinstance(value, str | bool), f"{solver} accepted {name}={value!r}"
