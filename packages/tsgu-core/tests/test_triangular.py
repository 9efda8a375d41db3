"""sparse_triangular_solve: both kernels, gradients, options, shapes and errors."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core as tc
from tsgu.core.testing import (
    BATCH_FORMS,
    case,
    devices,
    generator,
    to_layout,
    tol,
    values_at,
    with_values,
)
from tsgu.core.triangular import TRIANGULAR_PATHS

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]


@pytest.fixture(params=["kernel", "levels"])
def path(request):
    """Run a test on torch's triangular kernel (where this build has it) and on the
    level-scheduled fallback."""
    with TRIANGULAR_PATHS.force("levels" if request.param == "levels" else None):
        yield request.param


def _dense_solve(D, B, upper, unitriangular, transpose):
    M = D.mT if transpose else D
    return torch.linalg.solve_triangular(
        M, B, upper=upper != transpose, unitriangular=unitriangular
    )


def _rhs(A, k=2, seed=1):
    return torch.randn((*A.shape[:-1], k), generator=generator(seed), dtype=torch.float64).to(
        A.dtype
    )


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("unitriangular", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agrees_with_dense(
    path, layout, index_dtype, batch, upper, transpose, unitriangular, dtype
):
    name = "upper_triangular" if upper else "lower_triangular"
    A = case(name).make(layout=layout, index_dtype=index_dtype, batch=batch, dtype=dtype)
    B = _rhs(A)
    X = tc.sparse_triangular_solve(
        A, B, upper=upper, unitriangular=unitriangular, transpose=transpose
    )
    expected = _dense_solve(A.to_dense(), B, upper, unitriangular, transpose)
    torch.testing.assert_close(X, expected, **tol(dtype))


def _gradchecks(layout, index_dtype, batch, transpose, unitriangular):
    A = case("lower_triangular").make(layout=layout, index_dtype=index_dtype, batch=batch)
    values, rebuild = with_values(A)
    B = _rhs(A).requires_grad_(True)

    def f(v, b):
        return tc.sparse_triangular_solve(
            rebuild(v), b, upper=False, unitriangular=unitriangular, transpose=transpose
        )

    assert gradcheck(f, (values, B))
    assert gradgradcheck(f, (values, B))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize(("transpose", "unitriangular"), [(False, False), (True, True)])
def test_gradcheck_and_gradgradcheck(layout, index_dtype, batch, transpose, unitriangular):
    _gradchecks(layout, index_dtype, batch, transpose, unitriangular)


@pytest.mark.parametrize(
    ("layout", "index_dtype", "batch"),
    [(torch.sparse_coo, torch.int64, "batched"), (torch.sparse_csr, torch.int32, "unbatched")],
)
def test_gradcheck_level_scheduled(layout, index_dtype, batch):
    # Same autograd Function as the kernel path; the forward differs (checked above).
    with TRIANGULAR_PATHS.force("levels"):
        _gradchecks(layout, index_dtype, batch, transpose=True, unitriangular=False)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("transpose", [False, True])
def test_sparse_gradient_matches_dense(path, layout, index_dtype, transpose):
    A = case("upper_triangular").make(layout=layout, index_dtype=index_dtype).requires_grad_(True)
    B = _rhs(A).requires_grad_(True)
    G = _rhs(A, seed=5)
    tc.sparse_triangular_solve(A, B, upper=True, transpose=transpose).backward(G)
    D = A.detach().to_dense().requires_grad_(True)
    B2 = B.detach().clone().requires_grad_(True)
    _dense_solve(D, B2, True, False, transpose).backward(G)
    grad = A.grad
    assert grad.layout == layout
    values = grad._values() if layout == torch.sparse_coo else grad.values()
    if layout == torch.sparse_csr:
        assert grad.col_indices().dtype == index_dtype
    torch.testing.assert_close(values, values_at(A, D.grad))
    torch.testing.assert_close(B.grad, B2.grad)


def test_unitriangular_ignores_the_stored_diagonal_in_forward_and_backward(path):
    A = case("lower_triangular").make().requires_grad_(True)
    B = _rhs(A)
    X = tc.sparse_triangular_solve(A, B, upper=False, unitriangular=True)
    D = A.detach().to_dense()
    unit = torch.tril(D, -1) + torch.eye(D.shape[0], dtype=D.dtype)
    torch.testing.assert_close(X, torch.linalg.solve_triangular(unit, B, upper=False))
    X.sum().backward()
    grad = A.grad.to_dense()
    assert torch.equal(torch.diagonal(grad), torch.zeros(D.shape[0], dtype=D.dtype))
    assert bool((torch.tril(grad, -1)[torch.tril(D, -1) != 0] != 0).any())


def test_entries_in_the_other_triangle_are_ignored_with_zero_gradient(path):
    full = case("nonsymmetric").make().requires_grad_(True)
    B = _rhs(full)
    X = tc.sparse_triangular_solve(full, B, upper=False)
    D = full.detach().to_dense()
    torch.testing.assert_close(X, torch.linalg.solve_triangular(torch.tril(D), B, upper=False))
    X.sum().backward()
    grad = full.grad.to_dense()
    assert torch.equal(torch.triu(grad, 1), torch.zeros_like(grad))


@pytest.mark.parametrize("shape", [(12,), (12, 3), (4, 12, 3)])
def test_right_hand_side_shapes_with_one_matrix(path, shape):
    A = case("lower_triangular").make(layout=torch.sparse_csr)
    B = torch.randn(shape, generator=generator(2), dtype=torch.float64)
    X = tc.sparse_triangular_solve(A, B, upper=False)
    assert X.shape == B.shape
    D = A.to_dense()
    expected = torch.linalg.solve_triangular(D, B.unsqueeze(-1) if B.dim() == 1 else B, upper=False)
    torch.testing.assert_close(X, expected.squeeze(-1) if B.dim() == 1 else expected)


@pytest.mark.parametrize("device", devices())
def test_device(device):
    A = case("lower_triangular").make(layout=torch.sparse_csr, device=device)
    B = _rhs(A).to(device)
    X = tc.sparse_triangular_solve(A, B, upper=False)
    assert X.device == A.device
    torch.testing.assert_close(
        X.cpu(), _dense_solve(A.cpu().to_dense(), B.cpu(), False, False, False)
    )


def test_level_schedule_on_a_deep_chain():
    # A bidiagonal matrix: n levels, the worst case for level scheduling.
    n = 50
    D = torch.eye(n, dtype=torch.float64) * 2 + torch.diag(
        torch.ones(n - 1, dtype=torch.float64), -1
    )
    B = torch.randn(n, 1, generator=generator(0), dtype=torch.float64)
    with TRIANGULAR_PATHS.force("levels"):
        X = tc.sparse_triangular_solve(D.to_sparse_csr(), B, upper=False)
    torch.testing.assert_close(X, torch.linalg.solve_triangular(D, B, upper=False))


# ----------------------------------------------------------------------------- errors
def _lower():
    return case("lower_triangular").make(layout=torch.sparse_csr)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda A: (A.to_dense(), _rhs(A)), TypeError, "A must be a sparse COO or CSR tensor"),
        (lambda A: (A.to_sparse_csc(), _rhs(A)), TypeError, "got layout CSC"),
        (lambda A: (A, _rhs(A).to_sparse()), TypeError, "B must be a dense"),
        (
            lambda A: (
                to_layout(torch.ones(3, 4, dtype=torch.float64), torch.sparse_csr),
                torch.ones(3, 1, dtype=torch.float64),
            ),
            ValueError,
            "A must be square",
        ),
        (lambda A: (A, torch.ones(5, 2, dtype=torch.float64)), ValueError, "B must have 12 rows"),
        (lambda A: (A, _rhs(A).float()), ValueError, "the same dtype"),
        (
            lambda A: (torch.stack([A.to_dense()] * 2).to_sparse(), _rhs(A)),
            ValueError,
            "B must have 3 dimensions",
        ),
        (
            lambda A: (
                torch.stack([A.to_dense()] * 2).to_sparse(),
                torch.ones(3, 12, 1, dtype=torch.float64),
            ),
            ValueError,
            "batch sizes must match",
        ),
    ],
)
def test_bad_input(make, error, message):
    A, B = make(_lower())
    with pytest.raises(error, match=message):
        tc.sparse_triangular_solve(A, B, upper=False)


def test_zero_diagonal_is_reported_not_turned_into_inf():
    D = case("lower_triangular").dense(batch="batched")
    D[1, 4, 4] = 0.0
    with pytest.raises(ValueError, match="zero or missing diagonal entry at row 4 of batch item 1"):
        tc.sparse_triangular_solve(
            D.to_sparse(), torch.ones(3, 12, 1, dtype=torch.float64), upper=False
        )
    # the same matrix is fine with an implicit unit diagonal
    X = tc.sparse_triangular_solve(
        D.to_sparse(), torch.ones(3, 12, 1, dtype=torch.float64), upper=False, unitriangular=True
    )
    assert bool(torch.isfinite(X).all())


def test_missing_diagonal_entry_is_reported():
    D = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="zero or missing diagonal entry at row 1"):
        tc.sparse_triangular_solve(
            D.to_sparse_csr(), torch.ones(2, dtype=torch.float64), upper=False
        )


def test_duplicate_diagonal_entries_are_summed_before_the_zero_check():
    # the diagonal check gathers one entry per row when the pattern has exactly one; with
    # duplicates it sums them: 1 + (-1) at row 1 is a zero pivot, 1 + 1 is not
    indices = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    b = torch.ones(2, dtype=torch.float64)
    singular = torch.sparse_coo_tensor(indices, torch.tensor([2.0, 1.0, 1.0, -1.0]), (2, 2))
    with pytest.raises(ValueError, match="zero or missing diagonal entry at row 1"):
        tc.sparse_triangular_solve(singular.double(), b, upper=False)
    fine = torch.sparse_coo_tensor(indices, torch.tensor([2.0, 1.0, 1.0, 1.0]), (2, 2)).double()
    X = tc.sparse_triangular_solve(fine, b, upper=False)
    torch.testing.assert_close(X, torch.linalg.solve(fine.to_dense(), b))


def test_diagonal_check_sees_new_values_on_a_kept_pattern():
    # the pattern (and where its diagonal is) is kept between calls; the values are not
    crow, col = torch.tensor([0, 1, 3]), torch.tensor([0, 0, 1])
    b = torch.ones(2, dtype=torch.float64)
    ok = torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64)
    tc.sparse_triangular_solve(tc.sparse_csr_tensor(crow, col, ok, (2, 2)), b, upper=False)
    zero = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="zero or missing diagonal entry at row 1"):
        tc.sparse_triangular_solve(tc.sparse_csr_tensor(crow, col, zero, (2, 2)), b, upper=False)


@pytest.mark.parametrize("layout", ["coo-uncoalesced", "csr-unsorted"])
def test_unsorted_and_duplicate_entries(path, layout):
    # MKL's triangular kernel misreads both (found by the distributions work): tsgu hands it
    # a canonical CSR, duplicates summed.
    D = case("lower_triangular").dense()
    A = D.to_sparse()
    idx, vals = A.indices(), A.values()
    # split every value into two stored halves, in a shuffled order
    perm = torch.randperm(2 * vals.numel(), generator=generator(3))
    idx2 = torch.cat([idx, idx], dim=1)[:, perm]
    vals2 = torch.cat([vals / 2, vals / 2])[perm]
    if layout == "coo-uncoalesced":
        M = torch.sparse_coo_tensor(idx2, vals2, D.shape)
    else:
        order = torch.argsort(idx2[0], stable=True)  # rows sorted, columns not, duplicates kept
        rows, cols = idx2[0][order], idx2[1][order]
        crow = torch.searchsorted(rows, torch.arange(D.shape[0] + 1))
        M = torch.sparse_csr_tensor(crow, cols, vals2[order], D.shape)
    M.requires_grad_(True)
    B = _rhs(M)
    X = tc.sparse_triangular_solve(M, B, upper=False)
    torch.testing.assert_close(X, torch.linalg.solve_triangular(D, B, upper=False))
    X.sum().backward()
    Dg = D.clone().requires_grad_(True)
    torch.linalg.solve_triangular(Dg, B, upper=False).sum().backward()
    grad = M.grad._values() if M.grad.layout == torch.sparse_coo else M.grad.values()
    torch.testing.assert_close(grad, values_at(M, Dg.grad))  # each stored half gets it
