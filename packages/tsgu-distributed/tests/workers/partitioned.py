"""Row-partitioned products (and solves) on every rank of a gloo group; each rank saves its
rows of the results and of the gradients, which tests/test_partitioned.py compares with the
single-process tsgu computation on the whole matrix.

``python partitioned.py OUT`` under tsgu.distributed.testing.run_workers (or torchrun).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

import tsgu.core as tc
from tsgu.distributed import DistributedSparseMatrix, RowPartition

N, K = 13, 3
UNEVEN = {1: [13], 2: [9, 4], 4: [6, 0, 4, 3]}  # a rank may own no rows


def make_data() -> dict[str, torch.Tensor]:
    """The global inputs, the same on every rank and in the test process."""
    gen = torch.Generator().manual_seed(7)
    A = tc.rand_sparse((N, N), 50, torch.sparse_csr, values_dtype=torch.float64, generator=gen,
                       well_conditioned=True)
    X = torch.randn(N, K, dtype=torch.float64, generator=gen)
    W = torch.randn(N, K, dtype=torch.float64, generator=gen)
    x = torch.randn(N, dtype=torch.float64, generator=gen)
    return {"A": A, "X": X, "W": W, "x": x}


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
    rows = tc.sparse_coo_tensor(local.indices().to(torch.int32), values, (len(s), N),
                                is_coalesced=True)
    Ad = DistributedSparseMatrix.from_local_rows(rows, part)
    Xl = X[s.start : s.stop].clone().requires_grad_()
    out["coo_At_X"] = Ad.rmatmul(X[s.start : s.stop]).detach()
    (gX,) = torch.autograd.grad((Ad @ Xl).square().sum(), Xl, create_graph=True)
    (gX * W[s.start : s.stop]).sum().backward()  # d/dvalues and d/dX of <grad_X, W>
    out.update(coo_ggA=values.grad, coo_ggX=Xl.grad, coo_gX=gX.detach())
    return out


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = products(rank, world)
    torch.save(results, os.path.join(sys.argv[1], f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
