"""sparse_solve_j4t: every solver against a dense solve, gradients (gradcheck and against
dense autograd), the transposed backward, compilation reuse, convergence reports, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import jax.scipy.sparse.linalg as jla  # noqa: E402

from tsgu.core import ConvergenceWarning, sparse_coo_tensor, sparse_csr_tensor  # noqa: E402
from tsgu.core.testing import case, generator, to_layout, with_values  # noqa: E402
from tsgu.jax import SparseMatvec, sparse_solve_j4t, spmm_t4j, t2j  # noqa: E402
from tsgu.jax._compiled import trace_count  # noqa: E402
from tsgu.jax._x64 import x64_enabled  # noqa: E402

SOLVERS = ["cg", "bicgstab", "gmres"]
# torch COO always holds int64 indices; CSR keeps int32 or int64
FORMS = {
    "coo": (torch.sparse_coo, torch.int64),
    "csr-int32": (torch.sparse_csr, torch.int32),
    "csr-int64": (torch.sparse_csr, torch.int64),
}


def _case_for(solver: str) -> str:
    return "spd" if solver == "cg" else "nonsymmetric"  # CG needs SPD; the others need not


def _system(solver, form, rhs, dtype=torch.float64, seed=0):
    layout, index_dtype = FORMS[form]
    dense = case(_case_for(solver)).dense(dtype=dtype, seed=seed)
    A = to_layout(dense, layout, index_dtype)
    shape = (dense.shape[0],) if rhs == "vector" else (dense.shape[0], 3)
    B = torch.randn(shape, generator=generator(seed + 1), dtype=torch.float64).to(dtype)
    return dense, A, B


def _tight(dtype):
    return {"tol": 1e-11} if dtype == torch.float64 else {"tol": 1e-6}


def _close(dtype):
    return {"rtol": 1e-8, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}


# ---------------------------------------------------------------------- forward
@pytest.mark.parametrize("rhs", ["vector", "multi"])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("solver", SOLVERS)
def test_float64_matches_dense_solve(x64, solver, form, rhs):
    dense, A, B = _system(solver, form, rhs)
    X = sparse_solve_j4t(A, B, solve=solver, **_tight(torch.float64))
    assert X.shape == B.shape and X.dtype == torch.float64
    torch.testing.assert_close(X, torch.linalg.solve(dense, B), **_close(torch.float64))


@pytest.mark.parametrize("rhs", ["vector", "multi"])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("solver", SOLVERS)
def test_float32_matches_dense_solve_without_x64(no_x64, solver, form, rhs):
    dense, A, B = _system(solver, form, rhs, dtype=torch.float32)
    X = sparse_solve_j4t(A, B, solve=solver, **_tight(torch.float32))
    assert X.shape == B.shape and X.dtype == torch.float32
    expected = torch.linalg.solve(dense.double(), B.double()).float()
    torch.testing.assert_close(X, expected, **_close(torch.float32))


def test_default_solver_is_cg_and_accepts_rtol(x64):
    dense, A, B = _system("cg", "csr-int32", "multi")
    X = sparse_solve_j4t(A, B, rtol=1e-11)  # tsgu.core's name of the tolerance
    torch.testing.assert_close(X, torch.linalg.solve(dense, B), **_close(torch.float64))
    X = sparse_solve_j4t(A, B, solve=None, tol=1e-11)
    torch.testing.assert_close(X, torch.linalg.solve(dense, B), **_close(torch.float64))


def test_uncoalesced_coo(x64):
    idx = torch.tensor([[0, 1, 0, 1, 1], [0, 1, 1, 0, 1]])
    vals = torch.tensor([4.0, 1.0, 1.0, 2.0, 2.0], dtype=torch.float64)  # (1, 1) = 1 + 2
    A = torch.sparse_coo_tensor(idx, vals, (2, 2))
    assert not A.is_coalesced()
    B = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    Av = vals.clone().requires_grad_()
    # tsgu's constructor: torch's would coalesce the gradient of the repeated position
    X = sparse_solve_j4t(sparse_coo_tensor(idx, Av, (2, 2)), B, solve="bicgstab", tol=1e-12)
    dense = A.to_dense()
    torch.testing.assert_close(X.detach(), torch.linalg.solve(dense, B.detach()))
    X.sum().backward()
    D = dense.clone().requires_grad_()
    torch.linalg.solve(D, B.detach()).sum().backward()
    expected = D.grad[idx[0], idx[1]]  # each stored copy gets the gradient of its position
    torch.testing.assert_close(Av.grad, expected)


# -------------------------------------------------------------------- gradients
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("solver", SOLVERS)
def test_gradients_match_dense_autograd(x64, solver, form):
    """Both gradients against torch.linalg.solve: a nonsymmetric A for BiCGSTAB and GMRES
    catches a backward that solves with A instead of Aᵀ (0.2's bug)."""
    dense, A, B = _system(solver, form, "multi")
    values, rebuild = with_values(A)
    Bl = B.clone().requires_grad_()
    W = torch.randn(B.shape, generator=generator(5), dtype=torch.float64)
    (sparse_solve_j4t(rebuild(values), Bl, solve=solver, tol=1e-12) * W).sum().backward()
    D, Bd = dense.clone().requires_grad_(), B.clone().requires_grad_()
    (torch.linalg.solve(D, Bd) * W).sum().backward()
    torch.testing.assert_close(Bl.grad, Bd.grad, rtol=1e-8, atol=1e-9)
    mask = dense != 0
    expected = D.grad[mask] if A.layout == torch.sparse_csr else D.grad[tuple(A.indices())]
    torch.testing.assert_close(values.grad, expected, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("rhs", ["vector", "multi"])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("solver", SOLVERS)
def test_gradcheck(x64, solver, form, rhs):
    _, A, B = _system(solver, form, rhs)
    values, rebuild = with_values(A)
    B = B.requires_grad_()

    def f(v, b):
        return sparse_solve_j4t(rebuild(v), b, solve=solver, tol=1e-13)

    assert torch.autograd.gradcheck(f, (values, B))


@pytest.mark.parametrize("form", list(FORMS))
def test_gradgradcheck(x64, form):
    # GMRES: gradgradcheck's one-hot right-hand sides can break BiCGSTAB down (r̂ᵀr = 0
    # exactly on a sparse A), which sparse_solve_j4t reports with a ConvergenceWarning
    _, A, B = _system("gmres", form, "multi")
    values, rebuild = with_values(A)
    B = B[:, :2].clone().requires_grad_()

    def f(v, b):
        return sparse_solve_j4t(rebuild(v), b, solve="gmres", tol=1e-13)

    assert torch.autograd.gradgradcheck(f, (values, B))


def test_gradient_of_a_is_sparse_with_a_pattern(x64):
    _, A, B = _system("bicgstab", "csr-int32", "vector")
    A = A.detach().requires_grad_()
    sparse_solve_j4t(A, B, solve="bicgstab", tol=1e-12).sum().backward()
    assert A.grad.layout == torch.sparse_csr
    assert A.grad.crow_indices().dtype == torch.int32
    assert torch.equal(A.grad.crow_indices(), A.crow_indices())
    assert torch.equal(A.grad.col_indices(), A.col_indices())


def test_only_the_gradients_asked_for(x64):
    _, A, B = _system("cg", "csr-int64", "vector")
    Bl = B.clone().requires_grad_()
    sparse_solve_j4t(A, Bl, tol=1e-12).sum().backward()
    assert Bl.grad is not None and A.grad is None
    Al = A.detach().requires_grad_()
    sparse_solve_j4t(Al, B, tol=1e-12).sum().backward()
    assert Al.grad is not None


def test_trainable_values_through_tsgu_constructor(no_x64):
    dense = case("spd").dense(dtype=torch.float32)
    A = to_layout(dense, torch.sparse_csr, torch.int32)
    values = A.values().clone().requires_grad_()
    M = sparse_csr_tensor(A.crow_indices(), A.col_indices(), values, A.shape)
    B = torch.ones(dense.shape[0])
    sparse_solve_j4t(M, B, tol=1e-6).square().sum().backward()
    assert values.grad.shape == values.shape
    D = dense.clone().requires_grad_()
    torch.linalg.solve(D, B).square().sum().backward()
    torch.testing.assert_close(values.grad, D.grad[dense != 0], rtol=1e-3, atol=1e-4)


# ----------------------------------------------------- user solvers, transposes
def test_user_transpose_solve_receives_the_transposed_system(x64):
    dense, A, B = _system("bicgstab", "csr-int32", "vector")
    seen = {}

    def forward(matvec, b, **kwargs):
        seen["forward"] = matvec
        return jla.bicgstab(matvec, b, **kwargs)

    def backward(matvec, g, **kwargs):
        seen["backward"] = matvec
        return jla.gmres(matvec, g, **kwargs)[0]  # x alone is fine too

    Al = A.detach().requires_grad_()
    Bl = B.clone().requires_grad_()
    X = sparse_solve_j4t(Al, Bl, solve=forward, transpose_solve=backward, tol=1e-12)
    X.sum().backward()
    assert isinstance(seen["forward"], SparseMatvec)
    torch.testing.assert_close(Bl.grad, torch.linalg.solve(dense.T, torch.ones_like(B)))
    assert seen["backward"].shape == (dense.shape[1], dense.shape[0])


def test_callable_solver_sees_a_and_transposed_matvecs(x64):
    """The matvecs a user's solver receives really are A's and Aᵀ's."""
    dense, A, _ = _system("bicgstab", "coo", "vector")
    captured = []

    def probe(matvec, b, **kwargs):  # runs under jit: a callback brings the matrix out
        matrix = jax.vmap(matvec, in_axes=1, out_axes=1)(jnp.eye(b.shape[0], dtype=b.dtype))
        jax.debug.callback(lambda m: captured.append(np.array(m)), matrix)
        return jla.bicgstab(matvec, b, **kwargs)

    Bl = torch.ones(dense.shape[0], dtype=torch.float64, requires_grad=True)
    sparse_solve_j4t(A, Bl, solve=probe, tol=1e-12, maxiter=50).sum().backward()
    forward, backward = (torch.from_numpy(c) for c in captured)
    torch.testing.assert_close(forward, dense)
    torch.testing.assert_close(backward, dense.T)


def test_named_transpose_solve(x64):
    dense, A, B = _system("bicgstab", "csr-int64", "multi")
    Bl = B.clone().requires_grad_()
    sparse_solve_j4t(A, Bl, solve="bicgstab", transpose_solve="gmres", tol=1e-12).sum().backward()
    torch.testing.assert_close(Bl.grad, torch.linalg.solve(dense.T, torch.ones_like(B)))


def test_multi_rhs_is_one_vmapped_solve_not_a_loop(no_x64):
    _, A, B = _system("cg", "csr-int32", "multi", dtype=torch.float32)
    B = torch.cat([B, B], 1)  # 6 columns
    calls = []

    def counting(matvec, b, **kwargs):
        calls.append(b.shape)
        return jla.cg(matvec, b, **kwargs)

    sparse_solve_j4t(A, B, solve=counting, tol=1e-5)
    assert calls == [(A.shape[0],)]  # traced once, for one column, then vmapped


# --------------------------------------------------------------- compilation
def test_second_call_reuses_the_compiled_solve(no_x64):
    A0 = case("spd").make(layout=torch.sparse_csr, index_dtype=torch.int32, dtype=torch.float32)
    key = {"tol": 1.2345e-6}  # a static keyword no other test uses: a fresh compilation
    B = torch.ones(A0.shape[0], requires_grad=True)
    start = trace_count()
    sparse_solve_j4t(A0.detach().requires_grad_(), B, **key).sum().backward()
    assert trace_count() == start + 2  # the forward solve and the transposed one
    A1 = case("spd").make(
        layout=torch.sparse_csr, index_dtype=torch.int32, dtype=torch.float32, seed=7
    )
    B1 = torch.full((A0.shape[0],), 2.0, requires_grad=True)
    sparse_solve_j4t(A1.requires_grad_(), B1, **key).sum().backward()
    assert trace_count() == start + 2  # new values, same shapes: nothing retraced
    sparse_solve_j4t(A1.detach(), torch.ones(A0.shape[0], 3), **key)
    assert trace_count() == start + 3  # a new shape is a new compilation


# ------------------------------------------------------------------ convergence
def test_forward_non_convergence_warns(no_x64):
    _, A, B = _system("bicgstab", "csr-int32", "multi", dtype=torch.float32)
    with pytest.warns(ConvergenceWarning, match=r"bicgstab did not converge on A x = b.*3 of 3"):
        sparse_solve_j4t(A, B, solve="bicgstab", tol=1e-7, maxiter=1)


def test_backward_non_convergence_warns(no_x64):
    _, A, B = _system("bicgstab", "csr-int32", "vector", dtype=torch.float32)

    def one_step(matvec, g, **kwargs):
        return jla.bicgstab(matvec, g, tol=kwargs["tol"], maxiter=1)

    Bl = B.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the forward converges
        X = sparse_solve_j4t(A, Bl, solve="bicgstab", transpose_solve=one_step, tol=1e-6)
    with pytest.warns(ConvergenceWarning, match=r"Aᵀ y = g \(backward\)"):
        X.sum().backward()


def test_cg_on_an_indefinite_matrix_warns_not_silently_wrong(x64):
    A = case("symmetric_indefinite").make(dtype=torch.float64)
    B = torch.ones(A.shape[0], dtype=torch.float64)
    with pytest.warns(ConvergenceWarning, match="cg did not converge"):
        sparse_solve_j4t(A, B, solve="cg", tol=1e-12, maxiter=3)


def test_nan_is_reported(no_x64):
    A = torch.tensor([[1.0, 0.0], [0.0, float("nan")]]).to_sparse_csr()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        sparse_solve_j4t(A, torch.ones(2))


def test_warning_points_at_the_caller(no_x64):
    _, A, B = _system("bicgstab", "csr-int32", "vector", dtype=torch.float32)
    with pytest.warns(ConvergenceWarning) as record:
        sparse_solve_j4t(A, B, solve="bicgstab", maxiter=1, tol=1e-7)
    assert record[0].filename == __file__


def test_converged_solve_is_silent(x64):
    _, A, B = _system("gmres", "coo", "multi")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        Bl = B.clone().requires_grad_()
        sparse_solve_j4t(A, Bl, solve="gmres", tol=1e-10).sum().backward()


# ------------------------------------------------------- x0 and preconditioners
@pytest.mark.parametrize("rhs", ["vector", "multi"])
def test_x0_is_used(x64, rhs):
    dense, A, B = _system("cg", "csr-int32", rhs)
    exact = torch.linalg.solve(dense, B)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        X = sparse_solve_j4t(A, B, x0=exact, maxiter=0, tol=1e-10)  # no iteration at all
        torch.testing.assert_close(X, exact)
        X = sparse_solve_j4t(A, B, x0=t2j(exact), maxiter=0, tol=1e-10)  # a JAX x0
        torch.testing.assert_close(X, exact)
    with pytest.warns(ConvergenceWarning):
        sparse_solve_j4t(A, B, x0=torch.zeros_like(B), maxiter=0, tol=1e-10)


def _exact_inverse_preconditioners(dense):
    inverse = torch.linalg.inv(dense)
    jinv = t2j(inverse)
    return {
        "torch-dense": inverse,
        "jax-dense": jinv,
        "jax-function": lambda x: jinv @ x,
        "SparseMatvec": spmm_t4j(inverse.to_sparse_csr()),
        "torch-sparse": inverse.to_sparse(),
    }


@pytest.mark.parametrize("kind", list(_exact_inverse_preconditioners(torch.eye(2))))
def test_preconditioner_is_transposed_for_the_backward(x64, kind):
    """With M = A⁻¹ BiCGSTAB converges in one iteration; the backward does too only if it
    receives Mᵀ = A⁻ᵀ for Aᵀ (anything else warns, and the gradient is off)."""
    dense, A, B = _system("bicgstab", "csr-int32", "multi")
    M = _exact_inverse_preconditioners(dense)[kind]
    Bl = B.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        X = sparse_solve_j4t(A, Bl, solve="bicgstab", M=M, maxiter=1, tol=1e-10)
        X.sum().backward()
    torch.testing.assert_close(X.detach(), torch.linalg.solve(dense, B))
    torch.testing.assert_close(Bl.grad, torch.linalg.solve(dense.T, torch.ones_like(B)))


# -------------------------------------------------------------------- 64-bit mode
def test_float64_without_x64_raises_and_leaves_the_mode_alone(no_x64):
    A = case("spd").make(dtype=torch.float64)
    B = torch.ones(A.shape[0], dtype=torch.float64)
    fix = r'jax\.config\.update\("jax_enable_x64", True\)'
    with pytest.raises(ValueError, match=r"sparse_solve_j4t: A has dtype torch\.float64.*" + fix):
        sparse_solve_j4t(A, B)
    assert not x64_enabled()


# ------------------------------------------------------------------------ errors
def test_input_errors(no_x64):
    A = case("spd").make(dtype=torch.float32)
    n = A.shape[0]
    B = torch.ones(n)
    fn = "sparse_solve_j4t"
    with pytest.raises(TypeError, match=rf"{fn}: A must be a torch\.Tensor, got ndarray"):
        sparse_solve_j4t(A.to_dense().numpy(), B)
    with pytest.raises(
        TypeError, match=rf"{fn}: A must be a sparse COO or CSR tensor, got layout dense"
    ):
        sparse_solve_j4t(A.to_dense(), B)
    with pytest.raises(
        TypeError, match=rf"{fn}: A must be a sparse COO or CSR tensor, got layout CSC"
    ):
        sparse_solve_j4t(A.to_sparse_csc(), B)
    with pytest.raises(ValueError, match=rf"{fn}: A must have 2 dimensions"):
        sparse_solve_j4t(torch.stack([A.to_dense()] * 2).to_sparse_csr(), B)
    with pytest.raises(ValueError, match=rf"{fn}: A must be square"):
        sparse_solve_j4t(torch.ones(3, 2).to_sparse_csr(), torch.ones(3))
    with pytest.raises(TypeError, match=rf"{fn}: B must be a dense \(strided\) tensor"):
        sparse_solve_j4t(A, B.to_sparse())
    with pytest.raises(TypeError, match=rf"{fn}: B must be a torch\.Tensor"):
        sparse_solve_j4t(A, [1.0] * n)
    with pytest.raises(ValueError, match=rf"{fn}: B must have 1 or 2 dimensions"):
        sparse_solve_j4t(A, torch.ones(1, n, 1))
    with pytest.raises(ValueError, match=rf"{fn}: B must have {n} rows"):
        sparse_solve_j4t(A, torch.ones(n + 1))
    with pytest.raises(ValueError, match=rf"{fn}: A must have dtype float32 or float64"):
        sparse_solve_j4t(torch.eye(2, dtype=torch.int32).to_sparse_csr(), torch.ones(2))
    with pytest.raises(ValueError, match=rf"{fn}: A and B must have the same dtype"):
        sparse_solve_j4t(A, B.half())
    with pytest.raises(ValueError, match=rf"{fn}: A and B must be on the same device"):
        sparse_solve_j4t(A, torch.ones(n, device="meta"))


def test_solver_and_keyword_errors(no_x64):
    A = case("spd").make(dtype=torch.float32)
    n = A.shape[0]
    B = torch.ones(n)
    fn = "sparse_solve_j4t"
    with pytest.raises(ValueError, match=rf"{fn}: solve must be one of 'cg', 'bicgstab', 'gmres'"):
        sparse_solve_j4t(A, B, solve="minres")
    with pytest.raises(TypeError, match=rf"{fn}: solve must be one of .* or a callable"):
        sparse_solve_j4t(A, B, solve=3)
    with pytest.raises(ValueError, match=rf"{fn}: transpose_solve must be one of"):
        sparse_solve_j4t(A, B, transpose_solve="lu")
    with pytest.raises(TypeError, match=rf"{fn}: transpose_solve must be one of .* or a callable"):
        sparse_solve_j4t(A, B, transpose_solve=1.5)
    with pytest.raises(
        TypeError,
        match=rf"{fn}: jax\.scipy\.sparse\.linalg\.cg takes no keyword argument\(s\) restart",
    ):
        sparse_solve_j4t(A, B, solve="cg", restart=5)
    with pytest.raises(TypeError, match=r"takes no keyword argument\(s\) restart"):
        sparse_solve_j4t(A, B, solve="gmres", transpose_solve="bicgstab", restart=5)
    with pytest.raises(ValueError, match=rf"{fn}: tol must be a non-negative number"):
        sparse_solve_j4t(A, B, tol=-1.0)
    with pytest.raises(ValueError, match=rf"{fn}: atol must be a non-negative number"):
        sparse_solve_j4t(A, B, atol=-1.0)
    with pytest.raises(ValueError, match=rf"{fn}: rtol must be a non-negative number, got nan"):
        sparse_solve_j4t(A, B, rtol=float("nan"))
    with pytest.raises(ValueError, match=rf"{fn}: maxiter must be a non-negative int"):
        sparse_solve_j4t(A, B, maxiter=-1)
    with pytest.raises(TypeError, match=rf"{fn}: tol must be a real number"):
        sparse_solve_j4t(A, B, tol="small")
    with pytest.raises(ValueError, match=rf"{fn}: x0 must have B's shape \({n},\)"):
        sparse_solve_j4t(A, B, x0=torch.ones(n, 1))
    with pytest.raises(TypeError, match=rf"{fn}: x0 must be a torch\.Tensor or a jax\.Array"):
        sparse_solve_j4t(A, B, x0=[0.0] * n)
    with pytest.raises(ValueError, match=rf"{fn}: x0 must have B's dtype"):
        sparse_solve_j4t(A, B, x0=jnp.zeros(n, dtype=jnp.int32))
    with pytest.raises(TypeError, match=rf"{fn}: keyword argument steps must be an array"):
        sparse_solve_j4t(A, B, solve=lambda mv, b, **kw: b, steps=[3])
    with pytest.raises(TypeError, match=rf"{fn}: maxiter must be an int or None, got list"):
        sparse_solve_j4t(A, B, solve=lambda mv, b, **kw: b, maxiter=[3])
