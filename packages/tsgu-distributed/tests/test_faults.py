"""Faults: an exception on one rank reaches every rank as a clear error, never a hang; ranks
that disagree on the partition all raise the same error; a rank's own bad inputs are errors
before any communication (checked in-process on a group of one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import tsgu.core as tc
from tsgu.core.testing import assert_error_policy
from tsgu.distributed import DistributedSparseMatrix, RowPartition, bicgstab, cg, solve
from tsgu.distributed.testing import free_port, run_workers

WORKER = Path(__file__).parent / "workers" / "faults.py"


def _results(outputs):
    return [re.search(r"RESULT (\d+) (.*)", out).group(2) for out in outputs]


def test_an_exception_on_one_rank_reaches_every_rank():
    outputs = run_workers(WORKER, 3, args=["raise"], timeout=120, expect_failure=True)
    results = _results(outputs)
    assert results[1] == "ValueError: rank 1 read a corrupt shard"
    for rank in (0, 2):
        assert results[rank].startswith(
            "RankFailedError: tsgu.distributed: rank 1 raised ValueError: rank 1 read a "
            f"corrupt shard; rank {rank} stopped in"
        ), results[rank]


def test_a_rank_that_hangs_ends_the_others_at_the_groups_timeout():
    outputs = run_workers(WORKER, 2, args=["hang"], timeout=120, expect_failure=True)
    results = _results(outputs)
    assert results[0].startswith(
        "RankFailedError: tsgu.distributed: a collective failed on rank 0"
    ), results[0]
    assert "another rank failed or timed out" in results[0]
    assert results[1].startswith("RankFailedError: tsgu.distributed:"), results[1]


def test_ranks_that_disagree_on_the_partition_all_raise_the_same_error():
    outputs = run_workers(WORKER, 2, args=["partition"], timeout=120, expect_failure=True)
    results = _results(outputs)
    assert results[0] == results[1]
    assert results[0].startswith(
        "ValueError: DistributedSparseMatrix.from_local_rows: partition must be the same on "
        "every rank, got [[0, 3, 6], [0, 2, 6]] by rank"
    )


@pytest.fixture(scope="module")
def group_of_one():
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


@pytest.fixture
def A(group_of_one):
    return DistributedSparseMatrix.from_global(tc.poisson_2d(3))


def test_the_constructor_is_not_for_users():
    with pytest.raises(TypeError) as info:
        DistributedSparseMatrix()
    assert_error_policy(info.value, "DistributedSparseMatrix: the constructor must not")


def test_without_a_process_group_is_a_clear_error():
    if dist.is_initialized():
        pytest.skip("a process group is up in this process")
    with pytest.raises(RuntimeError) as info:
        DistributedSparseMatrix.from_global(tc.poisson_2d(3))
    assert_error_policy(
        info.value, "DistributedSparseMatrix.from_global: group must be an initialized"
    )


@pytest.mark.parametrize(
    ("call", "error", "start"),
    [
        (
            lambda A: A @ torch.ones(8, dtype=torch.float64),
            ValueError,
            "DistributedSparseMatrix.matmul: X must have this rank's 9 rows",
        ),
        (
            lambda A: A @ torch.ones(9),
            ValueError,
            "DistributedSparseMatrix.matmul: A and X must have the same dtype",
        ),
        (
            lambda A: A @ torch.ones(9, dtype=torch.float64).to_sparse(),
            TypeError,
            "DistributedSparseMatrix.matmul: X must be a dense",
        ),
        (
            lambda A: A.rmatmul(torch.ones(9, 2, 2, dtype=torch.float64)),
            ValueError,
            "DistributedSparseMatrix.rmatmul: X must have 1 or 2 dimensions",
        ),
        (
            lambda A: A.with_values(torch.ones(3, dtype=torch.float64)),
            ValueError,
            "DistributedSparseMatrix.with_values: values must be a tensor of shape (33,)",
        ),
        (
            lambda A: A.with_values(torch.ones(33)),
            ValueError,
            "DistributedSparseMatrix.with_values: values must have dtype torch.float64",
        ),
        (
            lambda A: cg(tc.poisson_2d(3), torch.ones(9, dtype=torch.float64)),
            TypeError,
            "cg: A must be a DistributedSparseMatrix",
        ),
        (
            lambda A: cg(A, torch.ones(9, dtype=torch.float64), tol=1e-3, rtol=1e-3),
            ValueError,
            "cg: tol and rtol must not both be given",
        ),
        (
            lambda A: bicgstab(A, torch.ones(9, dtype=torch.float64), rtol=-1.0),
            ValueError,
            "bicgstab: rtol must be",
        ),
        (
            lambda A: cg(
                A, torch.ones(9, dtype=torch.float64), torch.ones(9, 1, dtype=torch.float64)
            ),
            ValueError,
            "cg: x0 must have b's shape (9,)",
        ),
        (
            lambda A: cg(A, torch.ones(9, dtype=torch.float64), M="ilu"),
            ValueError,
            "cg: M must be None, 'jacobi', 'block_jacobi' or a callable",
        ),
        (
            lambda A: solve(A, torch.ones(9, dtype=torch.float64), "gmres"),
            ValueError,
            "tsgu.distributed.solve: method must be one of ('cg', 'bicgstab')",
        ),
        (
            lambda A: solve(A, torch.ones(9, dtype=torch.float32)),
            ValueError,
            "tsgu.distributed.solve: A and b must have the same dtype",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_inputs_are_errors_before_any_communication(A, call, error, start):
    with pytest.raises(error) as info:
        call(A)
    assert_error_policy(info.value, start)


@pytest.mark.parametrize(
    ("make", "start"),
    [
        (
            lambda rows: DistributedSparseMatrix.from_local_rows(rows.to_dense()),
            "DistributedSparseMatrix.from_local_rows: rows must be a sparse",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_local_rows(rows.to(torch.int64)),
            "DistributedSparseMatrix.from_local_rows: rows must have dtype float32 or float64",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_local_rows(rows, [0, 9]),
            "DistributedSparseMatrix.from_local_rows: partition must be a RowPartition",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_local_rows(rows, RowPartition([0, 4, 9])),
            "DistributedSparseMatrix.from_local_rows: partition must have one block per rank (1)",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_local_rows(rows, RowPartition([0, 8])),
            "DistributedSparseMatrix.from_local_rows: rows must have shape (8, 8) on rank 0",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_local_rows(rows.to_dense()[:4].to_sparse()),
            "DistributedSparseMatrix.from_local_rows: rows must add up to a square matrix",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_global(rows, src=3),
            "DistributedSparseMatrix.from_global: src must be a rank of the group",
        ),
        (
            lambda rows: DistributedSparseMatrix.from_global(rows, RowPartition([0, 5])),
            "DistributedSparseMatrix.from_global: partition must cover A's 9 rows",
        ),
    ],
    ids=range(8),
)
def test_bad_matrices_and_partitions(group_of_one, make, start):
    rows = tc.poisson_2d(3).to_sparse_coo()
    with pytest.raises((TypeError, ValueError)) as info:
        make(rows)
    assert_error_policy(info.value, start)


def test_bad_partitions():
    for bad, start in [
        (lambda: RowPartition([1, 3]), "RowPartition: offsets must be non-decreasing"),
        (lambda: RowPartition([0, 3, 2]), "RowPartition: offsets must be non-decreasing"),
        (lambda: RowPartition.even(5, 0), "RowPartition.even: n and world_size must be"),
        (lambda: RowPartition.from_sizes([2, -1]), "RowPartition.from_sizes: sizes must be >= 0"),
    ]:
        with pytest.raises(ValueError) as info:
            bad()
        assert_error_policy(info.value, start)


def test_jacobi_without_a_diagonal_is_an_error_on_every_rank(group_of_one):
    P = tc.poisson_2d(3).to_dense()
    P[4, 4] = 0.0
    A = DistributedSparseMatrix.from_global(P.to_sparse_csr())
    with pytest.raises(ValueError) as info:
        cg(A, torch.ones(9, dtype=torch.float64), M="jacobi")
    assert_error_policy(info.value, "cg: A must have a nonzero diagonal for M='jacobi'")
