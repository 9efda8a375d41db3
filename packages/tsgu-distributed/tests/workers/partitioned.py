"""Row-partitioned products (and solves) on every rank of a gloo group; each rank saves its
rows of the results and of the gradients, which tests/test_partitioned.py compares with the
single-process tsgu computation on the whole matrix.

``python partitioned.py OUT`` under tsgu.distributed.testing.run_workers (or torchrun).
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
import torch.distributed as dist

import tsgu.core as tc
from tsgu.distributed import DistributedSparseMatrix, RowPartition, bicgstab, cg, solve

N, K = 13, 3
UNEVEN = {1: [13], 2: [9, 4], 4: [6, 0, 4, 3]}  # a rank may own no rows


def make_data() -> dict[str, torch.Tensor]:
    """The global inputs, the same on every rank and in the test process."""
    gen = torch.Generator().manual_seed(7)
    A = tc.rand_sparse(
        (N, N),
        50,
        torch.sparse_csr,
        values_dtype=torch.float64,
        generator=gen,
        well_conditioned=True,
    )
    X = torch.randn(N, K, dtype=torch.float64, generator=gen)
    W = torch.randn(N, K, dtype=torch.float64, generator=gen)
    x = torch.randn(N, dtype=torch.float64, generator=gen)
    S = tc.poisson_2d(4)  # 16 x 16, symmetric positive definite
    dense = A.to_dense()
    dense = dense + torch.diag(dense.abs().sum(0) + dense.abs().sum(1) + 1.0)
    G = dense.to_sparse_csr()  # nonsymmetric, diagonally dominant
    B = torch.randn(16, 2, dtype=torch.float64, generator=gen)
    WS = torch.randn(16, 2, dtype=torch.float64, generator=gen)
    return {"A": A, "X": X, "W": W, "x": x, "S": S, "G": G, "B": B, "WS": WS}


def row_block(A: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, ...]:
    """(crow, col, values) of rows start:stop of a CSR matrix."""
    crow = A.crow_indices()
    lo, hi = int(crow[start]), int(crow[stop])
    return crow[start : stop + 1] - lo, A.col_indices()[lo:hi], A.values()[lo:hi]


def products(rank: int, world: int) -> dict[str, torch.Tensor]:
    d = make_data()
    A, X, W, x = d["A"], d["X"], d["W"], d["x"]
    out: dict[str, torch.Tensor] = {}

    # 1. each rank's own rows (CSR, int64, even partition), trainable values, a block X
    part = RowPartition.even(N, world)
    s = part.rows(rank)
    crow, col, val = row_block(A, s.start, s.stop)
    values = val.clone().requires_grad_()
    rows = tc.sparse_csr_tensor(crow, col, values, (len(s), N))
    Ad = DistributedSparseMatrix.from_local_rows(rows)
    assert Ad.partition == part, Ad.partition
    Xl = X[s.start : s.stop].clone().requires_grad_()
    Y = Ad @ Xl
    (Y * W[s.start : s.stop]).sum().backward()
    out.update(csr_Y=Y.detach(), csr_gX=Xl.grad, csr_gA=values.grad)

    # 2. scattered from rank 0 over an uneven partition (a rank may own nothing), a vector
    part = RowPartition.from_sizes(UNEVEN[world])
    s = part.rows(rank)
    Ad = DistributedSparseMatrix.from_global(A if rank == 0 else None, part)
    leaf = Ad.values.detach().clone().requires_grad_()
    Ad = Ad.with_values(leaf)
    xl = x[s.start : s.stop].clone().requires_grad_()
    y = Ad @ xl
    (y * torch.arange(len(s), dtype=y.dtype)).sum().backward()
    out.update(uneven_y=y.detach(), uneven_gx=xl.grad, uneven_gA=leaf.grad)
    out["uneven_halo_sent"] = torch.tensor(Ad.plan.halo_rows_sent)
    out["uneven_halo_received"] = torch.tensor(Ad.plan.halo_rows_received)

    # 3. COO rows with int32 indices; Aᵀ X; second derivatives through the exchange
    part = RowPartition.even(N, world)
    s = part.rows(rank)
    crow, col, val = row_block(A, s.start, s.stop)
    local = torch.sparse_csr_tensor(crow, col, val, (len(s), N)).to_sparse_coo().coalesce()
    values = local.values().clone().requires_grad_()
    rows = tc.sparse_coo_tensor(
        local.indices().to(torch.int32), values, (len(s), N), is_coalesced=True
    )
    Ad = DistributedSparseMatrix.from_local_rows(rows, part)
    Xl = X[s.start : s.stop].clone().requires_grad_()
    out["coo_At_X"] = Ad.rmatmul(X[s.start : s.stop]).detach()
    (gX,) = torch.autograd.grad((Ad @ Xl).square().sum(), Xl, create_graph=True)
    (gX * W[s.start : s.stop]).sum().backward()  # d/dvalues and d/dX of <grad_X, W>
    out.update(coo_ggA=values.grad, coo_ggX=Xl.grad, coo_gX=gX.detach())
    return out


def solves(rank: int, world: int) -> dict[str, torch.Tensor]:
    d = make_data()
    out: dict[str, torch.Tensor] = {}

    # CG, Jacobi, a block of right-hand sides; gradients for B and for S's values, and second
    # derivatives (the backward solve differentiated again)
    part = RowPartition.even(16, world)
    s = part.rows(rank)
    crow, col, val = row_block(d["S"], s.start, s.stop)
    values = val.clone().requires_grad_()
    Sd = DistributedSparseMatrix.from_local_rows(
        tc.sparse_csr_tensor(crow, col, values, (len(s), 16))
    )
    B = d["B"][s.start : s.stop].clone().requires_grad_()
    x, info = solve(Sd, B, "cg", rtol=1e-13, M="jacobi", return_info=True)
    loss = (x * d["WS"][s.start : s.stop]).sum()
    gB, gA = torch.autograd.grad(loss, (B, values), create_graph=True)
    out.update(cg_x=x.detach(), cg_gB=gB.detach(), cg_gA=gA.detach())
    out.update(cg_converged=torch.tensor(info.converged), cg_residual=info.residual_norm)
    (gB.square().sum() + gA.square().sum()).backward()
    out.update(cg_ggB=B.grad, cg_ggA=values.grad)

    # BiCGSTAB with block Jacobi on a nonsymmetric matrix scattered from rank 0, a vector
    Gd = DistributedSparseMatrix.from_global(d["G"] if rank == 0 else None)
    s = Gd.local_rows
    leaf = Gd.values.detach().clone().requires_grad_()
    Gd = Gd.with_values(leaf)
    b = d["x"][s.start : s.stop].clone().requires_grad_()
    x = solve(Gd, b, "bicgstab", rtol=1e-13, M="block_jacobi")
    (x * torch.arange(1, len(s) + 1, dtype=x.dtype)).sum().backward()
    out.update(bicg_x=x.detach(), bicg_gb=b.grad, bicg_gA=leaf.grad)

    # the same over the uneven partition, where one rank of 4 owns no rows (Jacobi)
    Gu = DistributedSparseMatrix.from_global(
        d["G"] if rank == 0 else None, RowPartition.from_sizes(UNEVEN[world])
    )
    s = Gu.local_rows
    leaf = Gu.values.detach().clone().requires_grad_()
    Gu = Gu.with_values(leaf)
    b = d["x"][s.start : s.stop].clone().requires_grad_()
    x = solve(Gu, b, "bicgstab", rtol=1e-13, M="jacobi")
    (x * torch.arange(1, len(s) + 1, dtype=x.dtype)).sum().backward()
    out.update(ubicg_x=x.detach(), ubicg_gb=b.grad, ubicg_gA=leaf.grad)

    # no gradient: every preconditioner, an initial guess, the convergence report
    for method, M in [("cg", None), ("cg", "block_jacobi"), ("bicgstab", "jacobi")]:
        A = Sd if method == "cg" else Gd
        fn = cg if method == "cg" else bicgstab
        rows = A.local_rows
        rhs = (d["B"][:, 0] if method == "cg" else d["x"])[rows.start : rows.stop]
        x0 = torch.full_like(rhs, 0.5)
        x, info = fn(A, rhs, x0, rtol=1e-11, M=M, return_info=True)
        out[f"plain_{method}_{M}_x"] = x
        out[f"plain_{method}_{M}_it"] = torch.tensor(info.iterations)
        out[f"plain_{method}_{M}_ok"] = torch.tensor(info.converged)

    # a solve that stops early warns on every rank, with the same report everywhere
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, info = bicgstab(
            Gd, torch.ones(Gd.n_local, dtype=torch.float64), maxiter=1, rtol=1e-14, return_info=True
        )
    out["early_warned"] = torch.tensor(
        any(issubclass(w.category, tc.ConvergenceWarning) for w in caught)
    )
    out["early_report"] = torch.tensor(
        [float(info.converged), info.iterations, float(info.residual_norm)]
    )
    return out


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {**products(rank, world), **solves(rank, world)}
    torch.save(results, os.path.join(sys.argv[1], f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
