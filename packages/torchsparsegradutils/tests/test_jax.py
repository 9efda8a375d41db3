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


BINDINGS = ["j2t", "t2j", "j2t_coo", "t2j_coo", "j2t_csr", "t2j_csr", "spmm_t4j"]


@pytest.mark.parametrize("name", BINDINGS)
def test_bindings_are_the_tsgu_objects(name):
    assert getattr(tsgujax, name) is getattr(tsgu_jax, name)
    assert getattr(jax_bindings, name) is getattr(tsgu_jax, name)


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
