"""Property-based fuzzing of tsgu.jax, run in a child process by test_fuzz.py: malformed
torch or JAX sparse matrices and bad solver options give our errors, never a crash."""

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

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jsparse = pytest.importorskip("jax.experimental.sparse")
from tsgu.jax import j2t_coo, j2t_csr, sparse_solve_j4t, spmm_t4j, t2j_coo, t2j_csr  # noqa: E402

fuzz_profile(examples=20)
warnings.filterwarnings("ignore", category=UserWarning)

F32 = torch.float32


def matrices() -> Any:
    return sparse_matrices(
        dominant=True,
        symmetric=True,
        layouts=(torch.sparse_coo, torch.sparse_csr),
        batches=(None,),
        sizes=(1, 5),
        dtype=torch.float32,
    )


@given(
    A=matrices(),
    kind=st.sampled_from(CORRUPTIONS),
    offset=st.sampled_from([0, 5, 10_000_000]),
    position=st.integers(0, 20),
    op=st.sampled_from(["sparse_solve_j4t", "spmm_t4j", "t2j"]),
)
def check_malformed_torch_matrices_are_our_errors(
    A: torch.Tensor, kind: str, offset: int, position: int, op: str
) -> None:
    bad = corrupt(A, kind, offset=offset, position=position)
    assume(bad is not None)
    if op == "sparse_solve_j4t":
        call = lambda: sparse_solve_j4t(bad, torch.ones(A.shape[0], dtype=F32))  # noqa: E731
    elif op == "spmm_t4j":
        call = lambda: spmm_t4j(bad)  # noqa: E731
    else:
        call = lambda: (t2j_coo if bad.layout == torch.sparse_coo else t2j_csr)(bad)  # noqa: E731
    with pytest.raises(ValueError, match=r"^(sparse_solve_j4t|spmm_t4j|t2j_coo|t2j_csr): "):
        call()


@given(
    A=matrices(),
    kind=st.sampled_from(
        ["index_too_large", "index_negative", "pointer_end", "pointer_decreasing"]
    ),
    position=st.integers(0, 20),
)
def check_malformed_jax_matrices_are_our_errors(A: torch.Tensor, kind: str, position: int) -> None:
    csr = A.to_sparse_csr() if A.layout == torch.sparse_coo else A
    bad = corrupt(csr, kind, offset=3, position=position)
    assume(bad is not None)
    if kind in ("index_too_large", "index_negative") and position % 2:
        coo = corrupt(A.to_sparse_coo().coalesce(), kind, offset=3, position=position)
        assume(coo is not None)
        M = jsparse.BCOO(
            (jnp.asarray(coo._values().numpy()), jnp.asarray(coo._indices().T.numpy())),
            shape=tuple(A.shape),
        )
        if kind == "index_too_large":  # BCOO's padding: dropped, the rest kept
            out = j2t_coo(M)
            assert out._nnz() == coo._nnz() - 1
            return
        with pytest.raises(ValueError, match=r"^j2t_coo: M: "):
            j2t_coo(M)
        return
    M = jsparse.BCSR(
        (
            jnp.asarray(bad.values().numpy()),
            jnp.asarray(bad.col_indices().to(torch.int32).numpy()),
            jnp.asarray(bad.crow_indices().to(torch.int32).numpy()),
        ),
        shape=tuple(A.shape),
    )
    if kind == "pointer_end":  # padding past the last pointer is a JAX convention
        return
    with pytest.raises(ValueError, match=r"^j2t_csr: M: "):
        j2t_csr(M)


@given(
    name=st.sampled_from(["tol", "rtol", "atol", "maxiter"]),
    value=st.one_of(st.floats(allow_nan=True), st.integers(-2, 3), st.text(max_size=2)),
)
def check_solver_options_are_checked(name: str, value: Any) -> None:
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]]).to_sparse_csr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            sparse_solve_j4t(A, torch.ones(2), **{name: value})
            error = None
        except (TypeError, ValueError) as err:
            error = str(err)
    bad = isinstance(value, int | float) and (value != value or value < 0)
    if error is None:
        assert not bad and not isinstance(value, str), f"accepted {name}={value!r}"
    else:
        assert error.startswith("sparse_solve_j4t: "), error
