"""Row-partitioned products on 2 and 4 gloo processes against the single-process tsgu
computation on the whole matrix: values, gradients for X (reverse exchange) and for A's
values (on their owning rank), second derivatives, Aᵀ X, and the halo's size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import tsgu.core as tc
from tsgu.core.testing import tol
from tsgu.distributed.testing import run_workers

WORKER = Path(__file__).parent / "workers" / "partitioned.py"


def _worker_module():
    spec = importlib.util.spec_from_file_location("tsgu_partitioned_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W_MOD = _worker_module()


@pytest.fixture(scope="module", params=[2, 4], ids=lambda w: f"world{w}")
def ranks(request, tmp_path_factory):
    """Every rank's saved results, from one run of the worker on ``world`` processes."""
    world = request.param
    out = tmp_path_factory.mktemp(f"world{world}")
    run_workers(WORKER, world, args=[str(out)], timeout=300)
    return world, [torch.load(out / f"rank{r}.pt") for r in range(world)]


def _cat(results, key):
    return torch.cat([r[key] for r in results])


def _trainable(A):
    values = A.values().clone().requires_grad_()
    return tc.sparse_csr_tensor(A.crow_indices(), A.col_indices(), values, A.shape), values


def test_a_product_and_its_gradients_match_the_single_process_ones(ranks):
    _, results = ranks
    d = W_MOD.make_data()
    A, values = _trainable(d["A"])
    X = d["X"].clone().requires_grad_()
    Y = tc.sparse_mm(A, X)
    (Y * d["W"]).sum().backward()
    torch.testing.assert_close(_cat(results, "csr_Y"), Y.detach(), **tol(torch.float64))
    torch.testing.assert_close(_cat(results, "csr_gX"), X.grad, **tol(torch.float64))
    # each rank holds the gradient of its own stored values; together, A's in CSR order
    torch.testing.assert_close(_cat(results, "csr_gA"), values.grad, **tol(torch.float64))


def test_scattered_uneven_partition_with_an_empty_rank(ranks):
    world, results = ranks
    d = W_MOD.make_data()
    A, values = _trainable(d["A"])
    x = d["x"].clone().requires_grad_()
    y = tc.sparse_mm(A, x.unsqueeze(1)).squeeze(1)
    sizes = W_MOD.UNEVEN[world]
    weights = torch.cat([torch.arange(s, dtype=y.dtype) for s in sizes])
    (y * weights).sum().backward()
    torch.testing.assert_close(_cat(results, "uneven_y"), y.detach(), **tol(torch.float64))
    torch.testing.assert_close(_cat(results, "uneven_gx"), x.grad, **tol(torch.float64))
    torch.testing.assert_close(_cat(results, "uneven_gA"), values.grad, **tol(torch.float64))
    # only the needed entries cross: what one rank receives, the others sent
    sent = sum(int(r["uneven_halo_sent"]) for r in results)
    received = sum(int(r["uneven_halo_received"]) for r in results)
    assert sent == received
    dense = d["A"].to_dense() != 0
    offsets = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    needed = 0
    for r in range(world):
        block = dense[offsets[r] : offsets[r + 1]].any(dim=0)
        block[offsets[r] : offsets[r + 1]] = False
        needed += int(block.sum())
    assert received == needed


def test_transposed_product_and_second_derivatives(ranks):
    _, results = ranks
    d = W_MOD.make_data()
    A, values = _trainable(d["A"])
    X = d["X"].clone().requires_grad_()
    torch.testing.assert_close(
        _cat(results, "coo_At_X"), d["A"].to_dense().T @ d["X"], **tol(torch.float64)
    )
    (gX,) = torch.autograd.grad(tc.sparse_mm(A, X).square().sum(), X, create_graph=True)
    (gX * d["W"]).sum().backward()
    torch.testing.assert_close(_cat(results, "coo_gX"), gX.detach(), **tol(torch.float64))
    torch.testing.assert_close(_cat(results, "coo_ggX"), X.grad, **tol(torch.float64))
    torch.testing.assert_close(_cat(results, "coo_ggA"), values.grad, **tol(torch.float64))


SOLVE_TOL = {"rtol": 1e-8, "atol": 1e-10}  # iterative solves at rtol 1e-13, on both sides


def _trainable_solve(A, B, **kwargs):
    A, values = _trainable(A)
    return A, values, tc.sparse_generic_solve(A, B, **kwargs)


def test_cg_solve_and_its_gradients_to_second_order(ranks):
    _, results = ranks
    d = W_MOD.make_data()
    S, values = _trainable(d["S"])
    B = d["B"].clone().requires_grad_()
    x = tc.sparse_generic_solve(S, B, solve="cg", rtol=1e-13)
    gB, gA = torch.autograd.grad((x * d["WS"]).sum(), (B, values), create_graph=True)
    (gB.square().sum() + gA.square().sum()).backward()
    assert all(bool(r["cg_converged"]) for r in results)
    assert all(
        float(r["cg_residual"].max()) <= 1e-13 * float(d["B"].norm(dim=0).max()) for r in results
    )
    torch.testing.assert_close(_cat(results, "cg_x"), x.detach(), **SOLVE_TOL)
    torch.testing.assert_close(_cat(results, "cg_gB"), gB.detach(), **SOLVE_TOL)
    torch.testing.assert_close(_cat(results, "cg_gA"), gA.detach(), **SOLVE_TOL)
    torch.testing.assert_close(_cat(results, "cg_ggB"), B.grad, **SOLVE_TOL)
    torch.testing.assert_close(_cat(results, "cg_ggA"), values.grad, **SOLVE_TOL)


@pytest.mark.parametrize("key", ["bicg", "ubicg"], ids=["even", "uneven-with-an-empty-rank"])
def test_bicgstab_solve_of_a_nonsymmetric_matrix_and_its_gradients(ranks, key):
    _, results = ranks
    d = W_MOD.make_data()
    G, values = _trainable(d["G"])
    b = d["x"].clone().requires_grad_()
    x = tc.sparse_generic_solve(G, b, solve="bicgstab", rtol=1e-13)
    weights = torch.cat([torch.arange(1, len(r[f"{key}_x"]) + 1, dtype=x.dtype) for r in results])
    (x * weights).sum().backward()
    torch.testing.assert_close(_cat(results, f"{key}_x"), x.detach(), **SOLVE_TOL)
    torch.testing.assert_close(_cat(results, f"{key}_gb"), b.grad, **SOLVE_TOL)
    torch.testing.assert_close(_cat(results, f"{key}_gA"), values.grad, **SOLVE_TOL)


@pytest.mark.parametrize(
    ("method", "M"), [("cg", None), ("cg", "block_jacobi"), ("bicgstab", "jacobi")]
)
def test_plain_solvers_with_each_preconditioner(ranks, method, M):
    _, results = ranks
    d = W_MOD.make_data()
    A, rhs = (d["S"], d["B"][:, 0]) if method == "cg" else (d["G"], d["x"])
    want = torch.linalg.solve(A.to_dense(), rhs)
    torch.testing.assert_close(_cat(results, f"plain_{method}_{M}_x"), want, **SOLVE_TOL)
    iterations = {int(r[f"plain_{method}_{M}_it"]) for r in results}
    assert len(iterations) == 1  # every rank took the same decisions
    assert all(bool(r[f"plain_{method}_{M}_ok"]) for r in results)
    if method == "cg" and M is None:  # unpreconditioned CG: the single-process iteration count
        _, info = tc.cg(A, rhs, torch.full_like(rhs, 0.5), rtol=1e-11, return_info=True)
        assert abs(iterations.pop() - info.iterations) <= 1


def test_a_solve_that_stops_early_warns_on_every_rank_with_one_report(ranks):
    _, results = ranks
    assert all(bool(r["early_warned"]) for r in results)
    reports = torch.stack([r["early_report"] for r in results])
    assert reports[:, 0].eq(0).all() and reports[:, 1].eq(1).all()
    assert torch.equal(reports, reports[:1].expand_as(reports))
