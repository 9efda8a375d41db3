"""factorize / Factorization: solves, refactors, logdet, sampling and every bad input."""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import generator, with_values
from tsgu.factor import Factorization, factorize, solve

LAYOUTS = (torch.sparse_coo, torch.sparse_csr)
INDEX_DTYPES = (torch.int32, torch.int64)


def grid_laplacian(m: int, shift: float = 0.5, seed: int = 0) -> torch.Tensor:
    """2-D 5-point Laplacian on an m x m grid plus a random positive diagonal (SPD), dense."""
    off = torch.ones(m - 1, dtype=torch.float64)
    T = 2 * torch.eye(m, dtype=torch.float64) - torch.diag(off, 1) - torch.diag(off, -1)
    eye = torch.eye(m, dtype=torch.float64)
    A = torch.kron(T, eye) + torch.kron(eye, T)
    diag = shift + torch.rand(m * m, generator=generator(seed), dtype=torch.float64)
    return A + torch.diag(diag)


def nonsymmetric(n: int = 10, seed: int = 1) -> torch.Tensor:
    """A sparse-patterned nonsymmetric nonsingular matrix, dense."""
    gen = generator(seed)
    mask = torch.rand(n, n, generator=gen) < 0.3
    values = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return torch.where(mask, values, 0.0) + 4 * torch.eye(n, dtype=torch.float64)


def indefinite(n: int = 10, seed: int = 2) -> torch.Tensor:
    """Symmetric indefinite (no zero leading minors in any order, with high probability)."""
    A = nonsymmetric(n, seed)
    S = A + A.T
    return S - 2.5 * torch.eye(n, dtype=torch.float64) * torch.sign(torch.arange(n) - n / 2 + 0.5)


def sparse(A: torch.Tensor, layout: torch.layout, index_dtype: torch.dtype) -> torch.Tensor:
    if layout == torch.sparse_coo:
        coo = A.to_sparse_coo().coalesce()
        return torch.sparse_coo_tensor(
            coo.indices().to(index_dtype), coo.values(), coo.shape, is_coalesced=True
        )
    csr = A.to_sparse_csr()
    return torch.sparse_csr_tensor(
        csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype), csr.values(), A.shape
    )


def matrix_for(kind: str) -> torch.Tensor:
    if kind == "cholesky":
        return grid_laplacian(3)
    if kind == "ldl":
        return indefinite()
    return nonsymmetric()


KINDS = [("lu", "umfpack"), ("lu", "klu"), ("cholesky", None), ("ldl", None)]


# ------------------------------------------------------------------------------ solves
@pytest.mark.parametrize(("kind", "method"), KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_solve_agrees_with_dense(kind, method, layout, index_dtype, dtype):
    dense = matrix_for(kind)
    A = sparse(dense, layout, index_dtype).to(dtype)
    B = torch.randn(dense.shape[0], 3, generator=generator(3), dtype=torch.float64)
    F = factorize(A, kind, method=method)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    X = F.solve(B.to(dtype))
    assert X.dtype == dtype and X.shape == B.shape
    torch.testing.assert_close(X.double(), torch.linalg.solve(dense, B), **tol)
    Xt = F.solve(B[:, 0].to(dtype), transpose=True)
    torch.testing.assert_close(Xt.double(), torch.linalg.solve(dense.T, B[:, 0]), **tol)


@pytest.mark.parametrize(("kind", "method"), KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
def test_solve_gradcheck_and_gradgradcheck(kind, method, layout, index_dtype, transpose):
    A = sparse(
        matrix_for(kind)[:6, :6] + 3 * torch.eye(6, dtype=torch.float64), layout, index_dtype
    )
    values, rebuild = with_values(A)
    B = torch.randn(6, 2, generator=generator(4), dtype=torch.float64, requires_grad=True)

    def f(v, b):
        return factorize(rebuild(v), kind, method=method).solve(b, transpose=transpose)

    assert torch.autograd.gradcheck(f, (values, B))
    assert torch.autograd.gradgradcheck(f, (values, B))


def test_solve_gradient_reuses_the_factors():
    """The backward is one transposed solve with the kept factors: no new analysis."""
    dense = nonsymmetric()
    values, rebuild = with_values(dense.to_sparse_csr())
    F = factorize(rebuild(values), "lu")
    before = Factorization.analyses_made
    F.solve(torch.ones(10, dtype=torch.float64)).sum().backward()
    assert Factorization.analyses_made == before
    expected = -torch.outer(
        torch.linalg.solve(dense.T, torch.ones(10, dtype=torch.float64)),
        torch.linalg.solve(dense, torch.ones(10, dtype=torch.float64)),
    )
    torch.testing.assert_close(values.grad, expected[dense != 0])


# ------------------------------------------------------------------------------ logdet
@pytest.mark.parametrize(("kind", "method"), KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_logdet_and_its_gradient_equal_the_dense_ones(kind, method, layout, index_dtype):
    dense = matrix_for(kind)
    values, rebuild = with_values(sparse(dense, layout, index_dtype))
    sign, logabs = factorize(rebuild(values), kind, method=method).slogdet()
    expected_sign, expected = torch.linalg.slogdet(dense)
    assert sign.item() == expected_sign.item()
    torch.testing.assert_close(logabs, expected, rtol=1e-12, atol=1e-12)
    logabs.backward()
    inverse_t = torch.linalg.inv(dense).T
    A = sparse(dense, layout, index_dtype)
    at_pattern = (
        inverse_t[tuple(A.coalesce().indices())]
        if layout == torch.sparse_coo
        else inverse_t[dense != 0]
    )
    assert (values.grad - at_pattern).abs().max() < 1e-10


def test_logdet_signs():
    A = torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64)
    assert factorize(A.to_sparse_csr(), "lu").slogdet()[0].item() == -1.0
    S = indefinite()
    assert (
        torch.linalg.slogdet(S)[0].item() == factorize(S.to_sparse_csr(), "ldl").slogdet()[0].item()
    )


@pytest.mark.parametrize(("kind", "method"), KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_logdet_gradcheck_and_gradgradcheck(kind, method, layout, index_dtype):
    n = 6
    A = sparse(
        matrix_for(kind)[:n, :n] + 3 * torch.eye(n, dtype=torch.float64), layout, index_dtype
    )
    values, rebuild = with_values(A)

    def f(v):
        return factorize(rebuild(v), kind, method=method).logdet()

    assert torch.autograd.gradcheck(f, (values,))
    assert torch.autograd.gradgradcheck(f, (values,))


@pytest.mark.parametrize("kind", ["cholesky", "ldl"])
def test_selected_inversion_on_a_larger_grid(kind):
    """Many supernodes and several elimination-tree depths: still the dense inverse."""
    dense = grid_laplacian(14)
    values, rebuild = with_values(dense.to_sparse_csr())
    factorize(rebuild(values), kind).logdet().backward()
    assert (values.grad - torch.linalg.inv(dense)[dense != 0]).abs().max() < 1e-10


def test_logdet_after_a_refactor_and_solves_after_logdet():
    dense = grid_laplacian(5)
    F = factorize(dense.to_sparse_csr(), "cholesky")
    values, rebuild = with_values(dense.to_sparse_csr())
    F.refactor(rebuild(values * 2))
    logdet = F.logdet()
    logdet.backward()
    torch.testing.assert_close(logdet, torch.logdet(2 * dense))
    assert (values.grad - 2 * torch.linalg.inv(2 * dense)[dense != 0]).abs().max() < 1e-10
    b = torch.ones(25, dtype=torch.float64)
    torch.testing.assert_close(F.solve(b), torch.linalg.solve(2 * dense, b))
    # handing L over costs CHOLMOD's symbolic factorization (with the kept ordering)
    assert F.symbolic_analyses == 2
    values.grad = None
    F.refactor(rebuild(values * 3)).logdet().backward()
    assert (values.grad - 3 * torch.linalg.inv(3 * dense)[dense != 0]).abs().max() < 1e-10
    torch.testing.assert_close(F.solve(b), torch.linalg.solve(3 * dense, b))
    assert F.symbolic_analyses == 3


# ---------------------------------------------------------------------------- sampling
def test_sample_has_the_inverse_precision_as_covariance():
    Q = grid_laplacian(3)
    F = factorize(Q.to_sparse_csr(), "cholesky")
    z = torch.randn(9, 200_000, generator=generator(5), dtype=torch.float64)
    x = F.sample(z)
    torch.testing.assert_close(torch.cov(x), torch.linalg.inv(Q), atol=3e-3, rtol=0)


def test_solve_factor_whitens():
    """L⁻¹ P is a square root of A⁻¹: (L⁻¹ P) A (L⁻¹ P)ᵀ = I, and sample is its transpose."""
    Q = grid_laplacian(3)
    F = factorize(Q.to_sparse_csr(), "cholesky")
    W = F.solve_factor(torch.eye(9, dtype=torch.float64))
    torch.testing.assert_close(W @ Q @ W.T, torch.eye(9, dtype=torch.float64))
    torch.testing.assert_close(F.sample(torch.eye(9, dtype=torch.float64)), W.T)
    b = torch.randn(9, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: F.sample(z), (b,))


# ---------------------------------------------------------------------------- refactor
def test_refactor_reuses_the_symbolic_analysis():
    dense = grid_laplacian(4)
    A = dense.to_sparse_csr()
    F = factorize(A, "cholesky")
    before = Factorization.analyses_made
    b = torch.ones(16, dtype=torch.float64)
    for scale in (2.0, 3.0, 5.0):
        F.refactor(values=A.values() * scale)
        torch.testing.assert_close(F.solve(b), torch.linalg.solve(scale * dense, b))
    assert F.symbolic_analyses == 1
    assert Factorization.analyses_made == before


def test_functional_solve_caches_by_pattern_not_values():
    dense = nonsymmetric()
    A = dense.to_sparse_csr()
    before = Factorization.analyses_made
    b = torch.ones(10, dtype=torch.float64)
    for scale in (1.0, 2.0, 3.0, 4.0):
        A_step = torch.sparse_csr_tensor(
            A.crow_indices().clone(), A.col_indices().clone(), A.values() * scale, A.shape
        )
        torch.testing.assert_close(solve(A_step, b), torch.linalg.solve(scale * dense, b))
    assert Factorization.analyses_made == before + 1
    other = (dense + torch.diag(torch.ones(7, dtype=torch.float64), 3)).to_sparse_csr()
    solve(other, b)
    assert Factorization.analyses_made == before + 2


# --------------------------------------------------------------------------- bad input
def test_not_square():
    with pytest.raises(ValueError, match=r"factorize: A must be square, got shape \(3, 4\)"):
        factorize(torch.ones(3, 4).to_sparse_csr())


def test_not_sparse_and_wrong_dtype():
    with pytest.raises(TypeError, match="factorize: A must be a sparse COO or CSR tensor"):
        factorize(torch.eye(3))
    with pytest.raises(TypeError, match="factorize: A must have dtype float32 or float64"):
        factorize(torch.eye(3, dtype=torch.float16).to_sparse_csr())
    with pytest.raises(ValueError, match="factorize: A must be 2D"):
        factorize(torch.eye(3).expand(2, 3, 3).to_sparse_csr())


def test_unknown_kind_and_method():
    A = torch.eye(3, dtype=torch.float64).to_sparse_csr()
    with pytest.raises(ValueError, match="factorize: kind must be one of 'lu', 'cholesky', 'ldl'"):
        factorize(A, "qr")
    with pytest.raises(ValueError, match="factorize: method must be one of 'cholmod'"):
        factorize(A, "cholesky", method="klu")


def test_not_positive_definite_names_the_pivot():
    Q = grid_laplacian(3)
    Q[4, 4] = -1.0
    with pytest.raises(ValueError, match=r"must be positive definite .* the pivot of row \d+"):
        factorize(Q.to_sparse_csr(), "cholesky")


@pytest.mark.parametrize(("kind", "method"), KINDS)
def test_exactly_singular(kind, method):
    dense = matrix_for(kind).clone()
    dense[2, :] = 0.0
    dense[:, 2] = 0.0
    dense[2, 2] = 0.0
    A = sparse(
        dense + 0 * torch.eye(dense.shape[0], dtype=torch.float64), torch.sparse_csr, torch.int64
    )
    error = "must be positive definite" if kind == "cholesky" else "must be nonsingular"
    with pytest.raises(ValueError, match=error):
        factorize(A, kind, method=method)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_inf(bad):
    dense = nonsymmetric()
    dense[1, 1] = bad
    with pytest.raises(ValueError, match="A's values must be finite, got 1 NaN or Inf"):
        factorize(dense.to_sparse_csr())


def test_unsymmetric_pattern_for_a_symmetric_kind():
    A = torch.tensor([[2.0, 1.0], [0.0, 2.0]], dtype=torch.float64).to_sparse_csr()
    with pytest.raises(ValueError, match="must store a symmetric pattern"):
        factorize(A, "cholesky")


def test_pattern_change_at_refactor_and_the_factorization_stays_usable():
    dense = grid_laplacian(3)
    F = factorize(dense.to_sparse_csr(), "cholesky")
    b = torch.ones(9, dtype=torch.float64)
    other = (dense + 0.1 * torch.ones(9, 9, dtype=torch.float64)).to_sparse_csr()
    with pytest.raises(ValueError, match="A must have the factorized pattern"):
        F.refactor(other)
    bad = dense.to_sparse_csr()
    with pytest.raises(ValueError, match="must be positive definite"):
        F.refactor(values=-bad.values())
    with pytest.raises(ValueError, match="A's values must be finite"):
        F.refactor(values=bad.values() * float("nan"))
    with pytest.raises(ValueError, match=r"values must be a tensor of shape \(33,\)"):
        F.refactor(values=torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"values must have dtype torch\.float64"):
        F.refactor(values=bad.values().float())
    with pytest.raises(TypeError, match="give exactly one of A and values"):
        F.refactor()
    torch.testing.assert_close(F.solve(b), torch.linalg.solve(dense, b))
    torch.testing.assert_close(F.logdet(), torch.logdet(dense))


def test_bad_right_hand_sides():
    F = factorize(nonsymmetric().to_sparse_csr())
    with pytest.raises(ValueError, match=r"Factorization.solve: B must have shape \(10,\)"):
        F.solve(torch.ones(9, dtype=torch.float64))
    with pytest.raises(ValueError, match="A and B must have the same dtype"):
        F.solve(torch.ones(10))
    with pytest.raises(TypeError, match="B must be a dense tensor"):
        F.solve(torch.eye(10, dtype=torch.float64).to_sparse())


def test_device_the_backend_cannot_take():
    A = torch.sparse_csr_tensor(
        torch.tensor([0, 1, 2]),
        torch.tensor([0, 1]),
        torch.ones(2, dtype=torch.float64),
        (2, 2),
        device="meta",
    )
    with pytest.raises(ValueError, match="factorize: A must be on the CPU"):
        factorize(A)


def test_sampling_needs_cholesky():
    F = factorize(nonsymmetric().to_sparse_csr(), "lu")
    with pytest.raises(ValueError, match="needs kind='cholesky'"):
        F.sample(torch.ones(10, dtype=torch.float64))


def test_backward_after_a_refactor_is_an_error():
    dense = nonsymmetric()
    values, rebuild = with_values(dense.to_sparse_csr())
    F = factorize(rebuild(values))
    x = F.solve(torch.ones(10, dtype=torch.float64))
    F.refactor(rebuild(values.detach() * 2))
    with pytest.raises(RuntimeError, match="refactored after this solve"):
        x.sum().backward()


def test_a_poisson_matrix_from_tsgu_core():
    A = tc.poisson_2d(6, dtype=torch.float64)
    b = torch.ones(36, dtype=torch.float64)
    x = factorize(A, "cholesky").solve(b)
    torch.testing.assert_close(tc.sparse_mm(A, x), b)
