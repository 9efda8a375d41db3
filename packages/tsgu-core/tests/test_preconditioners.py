"""Preconditioners: what they compute, that they help, batches, errors."""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import case, generator


def _ilu0_reference(D):
    """ILU(0) by the textbook triple loop (IKJ variant), for small dense D."""
    D = D.clone()
    n = D.shape[0]
    pattern = D != 0
    for i in range(1, n):
        for k in range(i):
            if pattern[i, k]:
                D[i, k] /= D[k, k]
                for j in range(k + 1, n):
                    if pattern[i, j]:
                        D[i, j] -= D[i, k] * D[k, j]
    L = torch.tril(D, -1) + torch.eye(n, dtype=D.dtype)
    return L, torch.triu(D)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize("name", ["nonsymmetric", "poisson_2d", "lower_triangular"])
def test_ilu0_is_exactly_ilu0(layout, name):
    A = case(name).make(layout=layout)
    L, U = _ilu0_reference(A.to_dense())
    r = torch.randn(A.shape[0], 2, generator=generator(0), dtype=torch.float64)
    torch.testing.assert_close(tc.ilu0(A)(r), torch.linalg.solve(L @ U, r))


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_ic0_is_the_symmetric_ilu0(layout):
    A = case("spd").make(layout=layout)
    L, U = _ilu0_reference(A.to_dense())
    r = torch.randn(A.shape[0], generator=generator(1), dtype=torch.float64)
    torch.testing.assert_close(tc.ic0(A)(r), torch.linalg.solve(L @ U, r))


def test_jacobi_and_block_jacobi_values():
    A = case("spd").make()
    D = A.to_dense()
    r = torch.randn(12, 3, generator=generator(2), dtype=torch.float64)
    torch.testing.assert_close(tc.jacobi(A)(r), r / torch.diagonal(D)[:, None])
    blocks = torch.block_diag(*[D[i : i + 5, i : i + 5] for i in range(0, 12, 5)])
    torch.testing.assert_close(tc.block_jacobi(A, 5)(r), torch.linalg.solve(blocks, r))
    torch.testing.assert_close(tc.block_jacobi(A, 12)(r), torch.linalg.solve(D, r))


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize("make", [tc.jacobi, lambda A: tc.block_jacobi(A, 4), tc.ic0, tc.ilu0])
def test_batched_preconditioners_equal_per_item(layout, make):
    A = case("spd").make(layout=layout, batch="batched")
    r = torch.randn(3, 12, 2, generator=generator(3), dtype=torch.float64)
    out = make(A)(r)
    for i in range(3):
        torch.testing.assert_close(
            out[i],
            make(case("spd").make(layout=layout, batch="batched").to_dense()[i].to_sparse())(r[i]),
        )


@pytest.mark.parametrize(
    ("solver", "make"),
    [
        (tc.cg, tc.ic0),
        (tc.cg, lambda A: tc.block_jacobi(A, 64)),
        (tc.bicgstab, tc.ilu0),
        (tc.gmres, tc.ilu0),
    ],
)
def test_preconditioning_reduces_iterations(solver, make):
    A = tc.poisson_2d(16)
    b = torch.ones(256, dtype=torch.float64)
    x, plain = solver(A, b, rtol=1e-10, return_info=True)
    y, better = solver(A, b, rtol=1e-10, M=make(A), return_info=True)
    assert better.converged and better.iterations < plain.iterations
    torch.testing.assert_close(x, y, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: tc.jacobi(torch.eye(3)), TypeError, "A must be a sparse COO or CSR"),
        (
            lambda: tc.jacobi(torch.tensor([[0.0, 1.0], [1.0, 1.0]]).to_sparse()),
            ValueError,
            "zero or missing diagonal entry at row 0",
        ),
        (
            lambda: tc.block_jacobi(torch.eye(3).to_sparse(), 0),
            ValueError,
            "block_size must be a positive int",
        ),
        (
            lambda: tc.block_jacobi(torch.tensor([[1.0, 1.0], [1.0, 1.0]]).to_sparse(), 2),
            ValueError,
            "is singular",
        ),
        (
            lambda: tc.ilu0(torch.tensor([[0.0, 1.0], [1.0, 1.0]]).to_sparse_csr()),
            ValueError,
            "no stored diagonal entry at row 0",
        ),
        (
            lambda: tc.ic0(torch.tensor([[1.0, 2.0], [2.0, 1.0]]).to_sparse()),
            ValueError,
            "non-positive pivot at row 1",
        ),
        (lambda: tc.ilu0(torch.ones(2, 3).to_sparse()), ValueError, "A must be square"),
    ],
)
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("make", [tc.jacobi, lambda A: tc.block_jacobi(A, 5), tc.ic0, tc.ilu0])
def test_unsorted_columns_and_duplicates_in_csr(make):
    D = case("spd").dense()
    A = D.to_sparse()
    idx, vals = A.indices(), A.values()
    perm = torch.randperm(2 * vals.numel(), generator=generator(6))
    idx2 = torch.cat([idx, idx], dim=1)[:, perm]
    vals2 = torch.cat([vals / 2, vals / 2])[perm]
    order = torch.argsort(idx2[0], stable=True)
    crow = torch.searchsorted(idx2[0][order], torch.arange(13))
    M = torch.sparse_csr_tensor(crow, idx2[1][order], vals2[order], D.shape)
    r = torch.randn(12, generator=generator(7), dtype=torch.float64)
    torch.testing.assert_close(make(M)(r), make(A)(r))
