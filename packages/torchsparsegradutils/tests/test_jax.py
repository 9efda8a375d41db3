"""torchsparsegradutils.jax: tsgu.jax under 0.2's names, with 0.2's defaults."""

from __future__ import annotations

import pytest
import torch

tsgu_jax = pytest.importorskip("tsgu.jax")
jax = pytest.importorskip("jax")

import torchsparsegradutils.jax as tsgujax  # noqa: E402
from torchsparsegradutils.jax import jax_bindings, jax_sparse_solve  # noqa: E402


@pytest.fixture
def restore_x64():
    before = bool(jax.config.read("jax_enable_x64"))
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.mark.parametrize("name", ["j2t", "spmm_t4j"])
def test_bindings_without_a_0_2_difference_are_the_tsgu_objects(name):
    assert getattr(tsgujax, name) is getattr(tsgu_jax, name)
    assert getattr(jax_bindings, name) is getattr(tsgu_jax, name)


def _coo() -> torch.Tensor:
    return torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]]).to_sparse_coo()


def test_0_2_classes_out_and_both_families_in():
    from jax.experimental import sparse as jsparse

    A = _coo()
    M = tsgujax.t2j_coo(A)
    assert isinstance(M, jsparse.COO)
    assert M.row.tolist() == [0, 0, 1] and M.col.tolist() == [0, 2, 1]
    C = tsgujax.t2j_csr(A.to_sparse_csr())
    assert isinstance(C, jsparse.CSR)
    for matrix in (M, jsparse.BCOO.fromdense(jax.numpy.asarray(A.to_dense().numpy()))):
        torch.testing.assert_close(tsgujax.j2t_coo(matrix).to_dense(), A.to_dense())
    for matrix in (C, jsparse.BCSR.fromdense(jax.numpy.asarray(A.to_dense().numpy()))):
        torch.testing.assert_close(tsgujax.j2t_csr(matrix).to_dense(), A.to_dense())


def test_uncoalesced_coo_is_coalesced_with_a_warning():
    i = torch.tensor([[0, 0], [1, 1]])
    A = torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0]), (2, 2))
    with pytest.warns(UserWarning, match="not coalesced"):
        M = tsgujax.t2j_coo(A)
    assert M.data.tolist() == [3.0]


def test_64_bit_without_x64_converts_at_32_bits_with_a_warning(restore_x64):
    jax.config.update("jax_enable_x64", False)
    x = torch.tensor([1.0 + 2**-40, 2.0], dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"float64\) is converted to torch.float32, losing"):
        y = tsgujax.t2j(x)
    assert str(y.dtype) == "float32" and y.tolist() == [1.0, 2.0]
    with pytest.warns(UserWarning, match="64-bit mode is off"):
        M = tsgujax.t2j_csr(_coo().to(torch.float64).to_sparse_csr())
    assert str(M.dtype) == "float32"
    with pytest.warns(UserWarning, match="int64"):
        assert str(tsgujax.t2j(torch.arange(3)).dtype) == "int32"
    with pytest.raises(ValueError, match="outside int32's range"):
        tsgujax.t2j(torch.tensor([2**40]))
    # with x64 on, nothing is lost and nothing is said
    jax.config.update("jax_enable_x64", True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert str(tsgujax.t2j(x).dtype) == "float64"


def test_have_jax_and_module_names():
    assert tsgujax.have_jax is True
    assert tsgujax.sparse_solve_j4t is jax_sparse_solve.sparse_solve_j4t


def nonsymmetric(dtype: torch.dtype) -> torch.Tensor:
    dense = torch.tensor(
        [[4.0, 1.0, 0.0, 0.5], [-1.0, 5.0, 2.0, 0.0], [0.0, 0.3, 3.0, 1.0], [2.0, 0.0, -1.0, 6.0]],
        dtype=dtype,
    )
    return dense.to_sparse_coo()


def test_default_is_bicgstab_and_the_gradient_uses_the_transpose(restore_x64):
    """0.2's default (BiCGSTAB) solves a nonsymmetric A, where CG would not; its backward
    solves with Aᵀ (0.2's transposed twice)."""
    A = nonsymmetric(torch.float64).requires_grad_(True)
    B = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    X = tsgujax.sparse_solve_j4t(A, B, tol=1e-12)
    dense = A.detach().to_dense().requires_grad_(True)
    B_ref = B.detach().clone().requires_grad_(True)
    X_ref = torch.linalg.solve(dense, B_ref)
    torch.testing.assert_close(X, X_ref)
    weights = torch.arange(1.0, 5.0, dtype=torch.float64)
    (X * weights).sum().backward()
    (X_ref * weights).sum().backward()
    torch.testing.assert_close(B.grad, B_ref.grad)
    grad_A = A.grad.coalesce()
    torch.testing.assert_close(grad_A.values(), dense.grad[tuple(grad_A.indices())])


def test_float64_switches_x64_on_as_0_2_did(restore_x64):
    jax.config.update("jax_enable_x64", False)
    A = nonsymmetric(torch.float64)
    X = tsgujax.sparse_solve_j4t(A, torch.ones(4, dtype=torch.float64), tol=1e-12)
    assert X.dtype == torch.float64
    assert bool(jax.config.read("jax_enable_x64")) is True
    # tsgu.jax itself leaves the switch to the caller
    jax.config.update("jax_enable_x64", False)
    with pytest.raises(ValueError, match="x64"):
        tsgu_jax.sparse_solve_j4t(A, torch.ones(4, dtype=torch.float64))


def test_named_solver_passes_through(restore_x64):
    A = nonsymmetric(torch.float32)
    X = tsgujax.sparse_solve_j4t(A, torch.ones(4), solve="gmres", tol=1e-6)
    torch.testing.assert_close(A.to_dense() @ X, torch.ones(4), atol=1e-4, rtol=1e-4)
