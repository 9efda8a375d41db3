"""Errors on one rank, or disagreements between ranks, end every rank with a clear error.

``python faults.py MODE``: ``raise`` (rank 1 raises inside fail_together while the others
exchange halos and reduce), ``hang`` (rank 1 sleeps past the group's timeout),
``partition`` (the ranks pass different partitions). Every rank prints
``RESULT <rank> <error type>: <message>`` and exits with status 1.
"""

from __future__ import annotations

import datetime
import sys
import time

import torch
import torch.distributed as dist

import tsgu.core as tc
from tsgu.distributed import DistributedSparseMatrix, RowPartition, cg, fail_together


def main() -> int:
    mode = sys.argv[1]
    # the backstop: no collective waits longer than this for a rank that hangs
    seconds = 3 if mode == "hang" else 60
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=seconds))
    rank = dist.get_rank()
    try:
        if mode == "raise":
            with fail_together(grace=1.0):
                A = DistributedSparseMatrix.from_global(tc.poisson_2d(6) if rank == 0 else None)
                if rank == 1:
                    raise ValueError("rank 1 read a corrupt shard")
                x = torch.ones(A.n_local, dtype=torch.float64)
                cg(A, A @ x)
        elif mode == "hang":
            with fail_together(grace=1.0):
                A = DistributedSparseMatrix.from_global(tc.poisson_2d(6) if rank == 0 else None)
                if rank == 1:
                    time.sleep(10)  # stuck past the group's 3 s timeout, without raising
                A @ torch.ones(A.n_local, dtype=torch.float64)
        elif mode == "partition":
            sizes = [3, 3] if rank == 0 else [2, 4]
            part = RowPartition.from_sizes(sizes)
            s = part.rows(rank)
            full = tc.poisson_2d(6).to_dense()[:6, :6]
            rows = full[s.start : s.stop].to_sparse_csr()
            DistributedSparseMatrix.from_local_rows(rows, part)
        print(f"RESULT {rank} no error", flush=True)
        return 0
    except Exception as error:
        print(f"RESULT {rank} {type(error).__name__}: {error}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
