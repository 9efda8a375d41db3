"""sparse_generic_solve and sparse_generic_lstsq: values, gradients, solver choices, errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import BATCH_FORMS, case, generator, values_at, with_values

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


def exact_solve(A, B):
    """A direct dense solve: exact and fast, so gradchecks test the gradient logic alone."""
    return torch.linalg.solve(A.to_dense(), B)


def _rhs(A, k=2, seed=1):
    return torch.randn((*A.shape[:-1], k), generator=generator(seed), dtype=torch.float64)


def _symmetric_parameters(A):
    """One parameter per symmetric pair of entries, and its map to A's values.

    gradcheck perturbs one value at a time; for CG or MINRES, which need a symmetric A,
    the perturbation must keep A symmetric.
    """
    D = A.to_dense()
    idx = D.nonzero(as_tuple=True)
    r, c = idx[-2], idx[-1]
    b = idx[0] if D.dim() == 3 else torch.zeros_like(r)
    key = (b * D.shape[-1] + torch.minimum(r, c)) * D.shape[-1] + torch.maximum(r, c)
    _, pair = torch.unique(key, return_inverse=True)
    values = D[idx]
    params = torch.zeros(int(pair.max()) + 1, dtype=D.dtype).index_put_((pair,), values)
    return params.requires_grad_(True), pair


# ----------------------------------------------------------------------- generic solve
@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_gradcheck_and_gradgradcheck_nonsymmetric(layout, index_dtype, batch):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    values, rebuild = with_values(A)
    B = _rhs(A).requires_grad_(True)

    def f(v, b):
        return tc.sparse_generic_solve(rebuild(v), b, solve=exact_solve)

    assert gradcheck(f, (values, B))
    assert gradgradcheck(f, (values, B))


@pytest.mark.parametrize(
    ("solve", "case_name", "layout", "batch"),
    [
        ("bicgstab", "nonsymmetric", torch.sparse_csr, "unbatched"),
        ("gmres", "nonsymmetric", torch.sparse_coo, "unbatched"),
        ("lsmr", "nonsymmetric", torch.sparse_csr, "unbatched"),
        ("cg", "spd", torch.sparse_csr, "batched"),
        ("minres", "symmetric_indefinite", torch.sparse_coo, "unbatched"),
        (None, "nonsymmetric", torch.sparse_csr, "unbatched"),
        (None, "spd", torch.sparse_coo, "unbatched"),
    ],
)
def test_named_solvers_have_exact_gradients(solve, case_name, layout, batch):
    A = case(case_name).make(layout=layout, batch=batch)
    B = _rhs(A).requires_grad_(True)
    kwargs = {"atol": 1e-14, "btol": 1e-14} if solve == "lsmr" else {"rtol": 1e-13}
    if "symmetric" in case(case_name).tags:
        params, pair = _symmetric_parameters(A)
        _, rebuild = with_values(A)
        shape = A.values().shape if A.layout == torch.sparse_csr else (-1,)

        def make(p):
            return rebuild(p[pair].reshape(shape))

    else:
        params, make = with_values(A)

    def f(p, b):
        return tc.sparse_generic_solve(make(p), b, solve=solve, **kwargs)

    torch.testing.assert_close(f(params, B), torch.linalg.solve(A.to_dense(), B.detach()))
    assert gradcheck(f, (params, B), atol=1e-6)
    assert gradgradcheck(f, (params, B), atol=1e-6)


@pytest.mark.parametrize("solve", ["bicgstab", "gmres"])
def test_nonsymmetric_gradients_match_dense(solve):
    # The default transposed solve must solve with Aᵀ, not with A.
    A = case("nonsymmetric").make().requires_grad_(True)
    B = _rhs(A).requires_grad_(True)
    G = _rhs(A, seed=3)
    tc.sparse_generic_solve(A, B, solve=solve, rtol=1e-13).backward(G)
    D = A.detach().to_dense().requires_grad_(True)
    B2 = B.detach().clone().requires_grad_(True)
    torch.linalg.solve(D, B2).backward(G)
    torch.testing.assert_close(B.grad, B2.grad)
    torch.testing.assert_close(A.grad.values(), values_at(A, D.grad))


def test_user_transpose_solve_receives_A():
    A = case("nonsymmetric").make()
    seen = []

    def transposing(A_in, G):
        seen.append(A_in)
        return torch.linalg.solve(A_in.to_dense().mT, G)

    values, rebuild = with_values(A)
    x = tc.sparse_generic_solve(
        rebuild(values), _rhs(A), solve=exact_solve, transpose_solve=transposing
    )
    x.sum().backward()
    assert torch.equal(seen[0].to_dense(), A.to_dense())  # A itself, not Aᵀ
    D = A.to_dense().requires_grad_(True)
    torch.linalg.solve(D, _rhs(A)).sum().backward()
    torch.testing.assert_close(values.grad, values_at(A, D.grad))


def test_a_callable_solve_gets_its_transpose_by_default():
    A = case("nonsymmetric").make(layout=torch.sparse_coo)
    calls = []

    def solve(A_in, B, **kwargs):
        calls.append((A_in.to_dense(), kwargs))
        return torch.linalg.solve(A_in.to_dense(), B)

    values, rebuild = with_values(A)
    tc.sparse_generic_solve(rebuild(values), _rhs(A), solve=solve, marker=1).sum().backward()
    assert torch.equal(calls[1][0], A.to_dense().mT)
    assert calls[0][1] == calls[1][1] == {"marker": 1}  # kwargs reach both solves


def test_default_solver_is_minres_for_symmetric_and_bicgstab_otherwise():
    for name in ("spd", "nonsymmetric"):
        A = case(name).make()
        x = tc.sparse_generic_solve(A, _rhs(A), rtol=1e-12)
        torch.testing.assert_close(x, torch.linalg.solve(A.to_dense(), _rhs(A)))


def test_vector_and_batched_vector_right_hand_sides():
    A = case("nonsymmetric").make()
    b = _rhs(A)[:, 0]
    x = tc.sparse_generic_solve(A, b, solve="gmres", rtol=1e-12)
    assert x.shape == b.shape
    Ab = case("nonsymmetric").make(batch="batched")
    bb = _rhs(Ab)[..., 0]
    xb = tc.sparse_generic_solve(Ab, bb, solve="bicgstab", rtol=1e-12)
    assert xb.shape == bb.shape
    torch.testing.assert_close(xb, torch.linalg.solve(Ab.to_dense(), bb))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda A, B: tc.sparse_generic_solve(A.to_dense(), B),
            TypeError,
            "A must be a sparse COO or CSR",
        ),
        (lambda A, B: tc.sparse_generic_solve(A, B.to_sparse()), TypeError, "B must be a dense"),
        (lambda A, B: tc.sparse_generic_solve(A, B[:3]), ValueError, "B must have 12 rows"),
        (
            lambda A, B: tc.sparse_generic_solve(A, B[None]),
            ValueError,
            "B must have 1 or 2 dimensions",
        ),
        (lambda A, B: tc.sparse_generic_solve(A, B.float()), ValueError, "the same dtype"),
        (
            lambda A, B: tc.sparse_generic_solve(A, B, solve="lu"),
            ValueError,
            "solve must be a callable or one of",
        ),
        (
            lambda A, B: tc.sparse_generic_solve(A, B, solve=3),
            TypeError,
            "solve must be a callable or a solver name",
        ),
        (
            lambda A, B: tc.sparse_generic_solve(A, B, transpose_solve="qr"),
            ValueError,
            "transpose_solve must be",
        ),
        (
            lambda A, B: tc.sparse_generic_solve(A, B, solve=lambda A, B: B[:2]),
            ValueError,
            "the solver.s result must be a tensor of shape",
        ),
        (
            lambda A, B: tc.sparse_generic_solve(
                tc.rand_sparse((3, 4), 5, values_dtype=torch.float64), B[:3]
            ),
            ValueError,
            "A must be square",
        ),
    ],
)
def test_generic_solve_errors(call, error, message):
    A = case("nonsymmetric").make()
    with pytest.raises(error, match=message):
        call(A, _rhs(A))


# ---------------------------------------------------------------------------- lstsq
def exact_lstsq(A, B):
    return torch.linalg.lstsq(A.to_dense(), B).solution


def exact_transpose_lstsq(A, G):
    # minimum-norm solution of Aᵀ Y = G through the QR of A
    Q, R = torch.linalg.qr(A.to_dense())
    vector = G.dim() == A.dim() - 1
    Y = Q @ torch.linalg.solve_triangular(R.mT, G.unsqueeze(-1) if vector else G, upper=False)
    return Y.squeeze(-1) if vector else Y


# MKL's LAPACK (lstsq, QR) may differ in the last bits between identical calls.
NONDET = 1e-12


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_lstsq_gradcheck_and_gradgradcheck(layout, index_dtype, batch):
    A = case("rectangular").make(layout=layout, index_dtype=index_dtype, batch=batch)
    values, rebuild = with_values(A)
    B = _rhs(A, k=1).requires_grad_(True)

    def f(v, b):
        return tc.sparse_generic_lstsq(
            rebuild(v), b, lstsq=exact_lstsq, transpose_lstsq=exact_transpose_lstsq
        )

    torch.testing.assert_close(f(values, B), torch.linalg.lstsq(A.to_dense(), B.detach()).solution)
    assert gradcheck(f, (values, B), nondet_tol=NONDET)
    assert gradgradcheck(f, (values, B), nondet_tol=NONDET)


def test_lstsq_default_lsmr_has_exact_gradients():
    A = case("rectangular").make(layout=torch.sparse_csr)
    values, rebuild = with_values(A)
    B = _rhs(A, k=1).requires_grad_(True)

    def f(v, b):
        return tc.sparse_generic_lstsq(rebuild(v), b)

    torch.testing.assert_close(f(values, B), torch.linalg.lstsq(A.to_dense(), B.detach()).solution)
    assert gradcheck(f, (values, B), atol=1e-6)
    assert gradgradcheck(f, (values, B), atol=1e-6)


def test_lstsq_default_lsmr_batched():
    A = case("rectangular").make(layout=torch.sparse_coo, batch="batched")
    B = _rhs(A, k=2)
    torch.testing.assert_close(
        tc.sparse_generic_lstsq(A, B), torch.linalg.lstsq(A.to_dense(), B).solution
    )


def test_lstsq_gradient_matches_dense_for_a_multi_rhs():
    A = case("rectangular").make().requires_grad_(True)
    B = _rhs(A, k=3).requires_grad_(True)
    G = torch.randn(A.shape[1], 3, generator=generator(4), dtype=torch.float64)
    tc.sparse_generic_lstsq(A, B).backward(G)
    D = A.detach().to_dense().requires_grad_(True)
    B2 = B.detach().clone().requires_grad_(True)
    torch.linalg.lstsq(D, B2).solution.backward(G)
    torch.testing.assert_close(A.grad.values(), values_at(A, D.grad))
    torch.testing.assert_close(B.grad, B2.grad)


def test_lstsq_with_an_uncoalesced_coo_matrix():
    A = case("rectangular").make(layout=torch.sparse_coo)
    perm = torch.randperm(A._nnz(), generator=generator(5))
    U = torch.sparse_coo_tensor(A._indices()[:, perm], A._values()[perm], A.shape).requires_grad_(
        True
    )
    assert not U.is_coalesced()
    b = _rhs(A)[:, 0]
    x = tc.sparse_generic_lstsq(U, b)
    x.sum().backward()
    assert U.grad._nnz() == A._nnz()


def test_lstsq_user_solvers_receive_A_and_the_callers_shapes():
    A = case("rectangular").make()
    seen = []

    def lstsq(A_in, B):
        seen.append(("lstsq", tuple(B.shape)))
        return exact_lstsq(A_in, B)

    def transpose_lstsq(A_in, G):
        seen.append(("transpose", tuple(G.shape)))
        assert torch.equal(A_in.to_dense(), A.to_dense())  # A itself
        return exact_transpose_lstsq(A_in, G)

    values, rebuild = with_values(A)
    b = _rhs(A)[:, 0]
    tc.sparse_generic_lstsq(
        rebuild(values), b, lstsq=lstsq, transpose_lstsq=transpose_lstsq
    ).sum().backward()
    assert seen == [("lstsq", (16,)), ("transpose", (10,)), ("lstsq", (16,))]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda A, B: tc.sparse_generic_lstsq(A.to_dense(), B),
            TypeError,
            "A must be a sparse COO or CSR",
        ),
        (
            lambda A, B: tc.sparse_generic_lstsq(tc.sparse_block_diag(A).t().coalesce(), B),
            ValueError,
            "A must be tall",
        ),
        (lambda A, B: tc.sparse_generic_lstsq(A, B[:3]), ValueError, "B must have 16 rows"),
        (lambda A, B: tc.sparse_generic_lstsq(A, B.float()), ValueError, "the same dtype"),
        (
            lambda A, B: tc.sparse_generic_lstsq(A, B, lstsq="lsmr"),
            TypeError,
            "lstsq must be callable",
        ),
    ],
)
def test_lstsq_errors(call, error, message):
    A = case("rectangular").make(layout=torch.sparse_coo)
    with pytest.raises(error, match=message):
        call(A, _rhs(A))
