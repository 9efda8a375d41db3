"""DistributedDataParallel trains a model whose sparse matrices are rebuilt every step by tsgu's
constructors from Parameter values (indices as buffers), on 2 and 4 gloo processes, and
matches the single-process run step for step: losses and parameters to float64 round-off."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

from tsgu.distributed.testing import run_workers

WORKER = Path(__file__).parent / "workers" / "ddp_train.py"


def _single_process_run() -> dict[str, list[torch.Tensor]]:
    spec = importlib.util.spec_from_file_location("tsgu_ddp_train_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train(world_size=1)


@pytest.mark.parametrize("world_size", [2, 4])
def test_ddp_matches_the_single_process_run_step_for_step(tmp_path, world_size):
    run_workers(WORKER, world_size, args=[str(tmp_path)], timeout=240)
    reference = _single_process_run()
    for rank, view in itertools.product(range(world_size), (0, 1)):
        got = torch.load(tmp_path / f"rank{rank}_view{view}.pt")
        for step, (loss, want) in enumerate(zip(got["losses"], reference["losses"], strict=True)):
            torch.testing.assert_close(loss, want, rtol=1e-13, atol=1e-15, msg=f"loss {step}")
        for step, (params, want) in enumerate(zip(got["params"], reference["params"], strict=True)):
            torch.testing.assert_close(params, want, rtol=1e-12, atol=1e-14, msg=f"step {step}")
    # the run really trains: the loss falls and the sparse values move
    assert reference["losses"][-1] < reference["losses"][0]
    assert not torch.equal(reference["params"][0], reference["params"][-1])
