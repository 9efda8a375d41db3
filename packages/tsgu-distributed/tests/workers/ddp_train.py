"""A model whose sparse matrices are built every step by tsgu's constructors from values held
as Parameters (their indices are buffers), trained with DistributedDataParallel.

Run by tests/test_ddp.py on 2 and 4 gloo processes (``python ddp_train.py OUT [options]``);
``train()`` with ``world_size=1`` is the single-process run it must match step for step.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

import tsgu.core as tc

N, BATCH, STEPS = 10, 8, 6


class SparseModel(torch.nn.Module):
    """y = tanh(A x) then L⁻¹ y with a trainable lower-triangular L: A (CSR, int32 indices) and
    L (COO) are rebuilt each forward from their Parameter values; the patterns are buffers."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        A = tc.rand_sparse((N, N), 40, torch.sparse_csr, values_dtype=torch.float64, generator=gen)
        self.register_buffer("crow", A.crow_indices().to(torch.int32))
        self.register_buffer("col", A.col_indices().to(torch.int32))
        self.a_values = torch.nn.Parameter(A.values().clone())
        L = tc.rand_sparse_tri(
            (N, N),
            30,
            upper=False,
            well_conditioned=True,
            values_dtype=torch.float64,
            generator=gen,
        )
        L = L.to_sparse_coo().coalesce()
        self.register_buffer("l_indices", L.indices())
        self.l_values = torch.nn.Parameter(L.values().clone())
        self.bias = torch.nn.Parameter(torch.zeros(N, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        A = tc.sparse_csr_tensor(self.crow, self.col, self.a_values, (N, N))
        L = tc.sparse_coo_tensor(self.l_indices, self.l_values, (N, N), is_coalesced=True)
        y = torch.tanh(tc.sparse_mm(A, x.T).T + self.bias)
        return tc.sparse_triangular_solve(L, y.T, upper=False).T


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, N, dtype=torch.float64, generator=gen)
    target = torch.randn(BATCH, N, dtype=torch.float64, generator=gen)
    return x, target


def train(world_size: int = 1, rank: int = 0, **ddp_options: bool) -> dict[str, list[torch.Tensor]]:
    """Losses (of the whole batch) and parameters after each step."""
    torch.manual_seed(0)
    model = SparseModel()
    net: torch.nn.Module = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, **ddp_options)
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.5)
    x, target = data()
    shard = slice(rank * BATCH // world_size, (rank + 1) * BATCH // world_size)
    losses, params = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x[shard]), target[shard])
        loss.backward()
        opt.step()
        whole = loss.detach().clone()
        if world_size > 1:
            torch.distributed.all_reduce(whole)
            whole /= world_size
        losses.append(whole)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    return {"losses": losses, "params": params}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    options = parser.parse_args()
    torch.distributed.init_process_group("gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    for bucket_view in (False, True):  # DDP's gradients copied into buckets, or views of them
        result = train(world, rank, gradient_as_bucket_view=bucket_view)
        torch.save(result, os.path.join(options.out, f"rank{rank}_view{int(bucket_view)}.pt"))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
