"""Every documented bad input of sparse_solve_c4t raises before any work, with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tsgu.core.testing import case
from tsgu.cupy import sparse_solve_c4t

FN = "sparse_solve_c4t"


@pytest.fixture
def A():
    return case("nonsymmetric").make()


@pytest.fixture
def b():
    return torch.ones(12, dtype=torch.float64)


def test_a_must_be_sparse_coo_or_csr(A, b):
    with pytest.raises(
        TypeError, match=f"{FN}: A must be a sparse COO or CSR tensor, got layout dense"
    ):
        sparse_solve_c4t(A.to_dense(), b)
    with pytest.raises(
        TypeError, match=f"{FN}: A must be a sparse COO or CSR tensor, got layout CSC"
    ):
        sparse_solve_c4t(A.to_sparse_csc(), b)
    with pytest.raises(TypeError, match=f"{FN}: A must be a torch.Tensor, got ndarray"):
        sparse_solve_c4t(np.eye(12), b)


def test_a_must_be_a_square_float_matrix(A, b):
    batched = torch.stack([A.to_dense()] * 2).to_sparse_csr()
    with pytest.raises(
        ValueError, match=rf"{FN}: A must have 2 dimensions, got shape \(2, 12, 12\)"
    ):
        sparse_solve_c4t(batched, b)
    with pytest.raises(ValueError, match=rf"{FN}: A must be square, got shape \(12, 10\)"):
        sparse_solve_c4t(A.to_dense()[:, :10].to_sparse_csr(), b)
    with pytest.raises(
        ValueError, match=f"{FN}: A must have dtype float32 or float64, got torch.int64"
    ):
        sparse_solve_c4t(torch.eye(12, dtype=torch.int64).to_sparse(), b)
    hybrid = torch.ones(12, 12, 2).to_sparse(2)
    with pytest.raises(ValueError, match=f"{FN}: A must have scalar values"):
        sparse_solve_c4t(hybrid, b)


def test_b_must_be_dense_with_matching_rows(A, b):
    with pytest.raises(
        TypeError, match=f"{FN}: B must be a dense \\(strided\\) tensor, got layout COO"
    ):
        sparse_solve_c4t(A, b.to_sparse())
    with pytest.raises(
        ValueError, match=rf"{FN}: B must have 1 or 2 dimensions, got shape \(2, 12, 1\)"
    ):
        sparse_solve_c4t(A, torch.ones(2, 12, 1, dtype=torch.float64))
    with pytest.raises(
        ValueError, match=rf"{FN}: B must have 12 rows to match A .*got shape \(11, 3\)"
    ):
        sparse_solve_c4t(A, torch.ones(11, 3, dtype=torch.float64))


def test_devices_must_match_and_be_cpu_or_cuda(A, b):
    with pytest.raises(
        ValueError, match=f"{FN}: A and B must be on the same device, got cpu and meta"
    ):
        sparse_solve_c4t(A, b.to("meta"))
    meta = torch.sparse_coo_tensor(
        torch.zeros(2, 0, dtype=torch.long), torch.zeros(0), (3, 3), device="meta"
    )
    with pytest.raises(
        ValueError, match=f"{FN}: tensors must be on a CPU or CUDA device, got meta"
    ):
        sparse_solve_c4t(meta, torch.zeros(3, device="meta"))


def test_solver_names_and_types(A, b):
    with pytest.raises(ValueError, match=f"{FN}: solve must be a callable or one of 'cg', 'cgs', "):
        sparse_solve_c4t(A, b, solve="bicgstab")
    with pytest.raises(ValueError, match=f"{FN}: transpose_solve must be a callable or one of"):
        sparse_solve_c4t(A, b, transpose_solve="lu")
    with pytest.raises(
        TypeError, match=f"{FN}: solve must be a callable or a solver name, got int"
    ):
        sparse_solve_c4t(A, b, solve=3)
    with pytest.raises(
        TypeError, match=f"{FN}: transpose_solve must be a callable or a solver .*list"
    ):
        sparse_solve_c4t(A, b, transpose_solve=["gmres"])


@pytest.mark.parametrize("name", ["cg", "cgs", "minres", "gmres"])
def test_krylov_solvers_take_one_right_hand_side(A, name):
    B = torch.ones(12, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"{FN}: solve='{name}' takes one right-hand side"):
        sparse_solve_c4t(A, B, solve=name)
    with pytest.raises(ValueError, match=rf"{FN}: transpose_solve='{name}' takes one right-hand"):
        sparse_solve_c4t(A, B, transpose_solve=name)


def test_a_callable_must_return_the_right_shape(A, b):
    with pytest.raises(
        ValueError, match=rf"{FN}: solve must return an array of shape \(12,\), got \(11,\)"
    ):
        sparse_solve_c4t(A, b, solve=lambda M, v: v[:11])
    x = sparse_solve_c4t(A, b.requires_grad_(), transpose_solve=lambda M, v: "x")
    with pytest.raises(
        ValueError, match=f"{FN}: transpose_solve must return an array of shape .*str"
    ):
        x.sum().backward()
    with pytest.raises(ValueError, match=f"{FN}: solve must return an array .*got NoneType"):
        sparse_solve_c4t(A, b, solve=lambda M, v: None)


def test_a_singular_matrix_in_the_direct_solve(b):
    D = case("nonsymmetric").dense()
    D[4] = 0.0  # an empty row: exactly singular, whatever the rounding
    A = D.to_sparse_csr()
    with pytest.raises(torch.linalg.LinAlgError, match=f"{FN}: A is singular to working precision"):
        sparse_solve_c4t(A, b)


def test_errors_come_before_any_work(monkeypatch, A):
    import tsgu.cupy._factor as factor_module

    def fail(*args, **kwargs):
        raise AssertionError("factored despite bad input")

    monkeypatch.setattr(factor_module, "splu", fail)
    with pytest.raises(ValueError, match="takes one right-hand side"):
        sparse_solve_c4t(
            A.requires_grad_(), torch.ones(12, 2, dtype=torch.float64), "spsolve", "cg"
        )
