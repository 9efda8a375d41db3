"""Run a script on several local processes, as ``torchrun`` would, for tests and examples.

:func:`run_workers` starts ``world_size`` Python processes on this machine with the
environment ``torchrun`` gives (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``), one OpenMP thread each, and waits for all of them with a deadline: a
worker that hangs or dies fails the call with every worker's output, and the others are
killed, so a test can never block the suite.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import IO

__all__ = ["free_port", "run_workers"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_workers(
    script: str | os.PathLike[str],
    world_size: int,
    *,
    args: Sequence[str] = (),
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    expect_failure: bool = False,
) -> list[str]:
    """Run ``python script *args`` on ``world_size`` local processes, as ``torchrun`` would.

    Parameters
    ----------
    script : str or path
        A Python file that calls ``torch.distributed.init_process_group("gloo")`` (the
        ``env://`` rendezvous reads the variables set here).
    world_size : int
        Number of processes (ranks 0 .. world_size - 1).
    args : sequence of str
        Command-line arguments for every worker.
    timeout : float
        Seconds for all workers together; past it every worker is killed.
    env : dict, optional
        Extra environment variables for every worker.
    expect_failure : bool
        The workers are expected to fail (every one with a nonzero exit status); used to
        test that an error on one rank reaches all of them.

    Returns
    -------
    list of str
        Each worker's combined stdout and stderr, by rank.

    Raises
    ------
    RuntimeError
        A worker exits with a nonzero status (or, with ``expect_failure``, one exits with
        zero), or the deadline passes (the message says which ranks were still running).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from tsgu.distributed.testing import run_workers
    >>> script = Path(tempfile.mkdtemp()) / "hello.py"
    >>> _ = script.write_text("import os; print('rank', os.environ['RANK'])")
    >>> run_workers(script, 2)
    ['rank 0\\n', 'rank 1\\n']
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(
            f"run_workers: world_size must be a positive int, got {world_size!r}; pass 1 or more"
        )
    port = free_port()
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in range(world_size)]
        procs = [
            _start(script, args, rank, world_size, port, env, logs[rank])
            for rank in range(world_size)
        ]
        try:
            deadline = time.monotonic() + timeout
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.05)
            running = [r for r, p in enumerate(procs) if p.poll() is None]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
    codes = [p.returncode for p in procs]
    shown = "\n".join(
        f"--- rank {r} (exit {c}) ---\n{o[-4000:]}"
        for r, (c, o) in enumerate(zip(codes, outputs, strict=True))
    )
    if running:
        raise RuntimeError(f"run_workers: ranks {running} still ran after {timeout} s\n{shown}")
    failed = [r for r, c in enumerate(codes) if c != 0]
    if expect_failure and len(failed) != world_size:
        raise RuntimeError(
            f"run_workers: every rank was expected to fail, exit codes {codes}\n{shown}"
        )
    if not expect_failure and failed:
        raise RuntimeError(f"run_workers: ranks {failed} failed\n{shown}")
    return outputs


def _start(
    script: str | os.PathLike[str],
    args: Sequence[str],
    rank: int,
    world_size: int,
    port: int,
    env: dict[str, str] | None,
    log: IO[str],
) -> subprocess.Popen[bytes]:
    worker_env = {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", _loopback()),
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, os.fspath(script), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=worker_env,
    )


def _loopback() -> str:
    """The loopback interface's name (``lo`` on Linux, ``lo0`` on macOS)."""
    return "lo0" if sys.platform == "darwin" else "lo"
