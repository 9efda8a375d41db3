"""fail_together: an error on one rank becomes an error on every rank, never a hang."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch.distributed as dist

__all__ = ["RankFailedError", "fail_together"]

_KEY = "tsgu.distributed/failed/"


class RankFailedError(RuntimeError):
    """Another rank of the process group raised; the message says which and what.

    Attributes
    ----------
    rank : int or None
        The rank (in the default group) that failed first, when it could be told.

    Examples
    --------
    >>> from tsgu.distributed import RankFailedError
    >>> error = RankFailedError("tsgu.distributed: rank 1 raised ValueError: bad shard", 1)
    >>> isinstance(error, RuntimeError), error.rank
    (True, 1)
    """

    def __init__(self, message: str, rank: int | None = None) -> None:
        super().__init__(message)
        self.rank = rank


def _store() -> Any:
    # The default group's key-value store (torch keeps no public accessor for it); None
    # when torch no longer has it: the peers then raise without the failing rank's message.
    try:
        return dist.distributed_c10d._get_default_store()
    except Exception:  # pragma: no cover - depends on torch's internals
        return None


def _failures(store: Any, world: int) -> list[tuple[int, str]]:
    if store is None:
        return []
    found = []
    for rank in range(world):  # a loop over ranks
        key = f"{_KEY}{rank}"
        with contextlib.suppress(Exception):
            if store.check([key]):
                found.append((rank, store.get(key).decode(errors="replace")))
    return found


@contextlib.contextmanager
def fail_together(grace: float = 2.0) -> Iterator[None]:
    """Run a block on every rank so that an exception on one rank reaches all of them.

    The rank that raises records its error in the process group's store and tears its
    process group down, which makes every other rank's pending or next collective (a halo
    exchange, an ``all_reduce``) fail at once instead of waiting for the group's timeout;
    those ranks then raise :class:`RankFailedError` naming the rank and its error. The
    rank that raised re-raises its own exception. After it, the default process group is
    gone on the failed rank: end the job (``torchrun`` restarts it, if asked to).

    Parameters
    ----------
    grace : float
        Seconds the failing rank waits, after recording its error, for the others to read
        it before it goes on (its process may exit, and with rank 0 the store with it).

    Notes
    -----
    A rank that hangs rather than raises (an endless loop, a dead machine) is caught by
    the process group's own timeout: ``init_process_group(..., timeout=timedelta(seconds=60))``
    makes every collective of gloo give up after 60 s (the default is 30 minutes); the
    ranks waiting on it then raise here too. Mismatched shapes and partitions need none
    of this: tsgu.distributed checks them on every rank alike, before it communicates.

    Examples
    --------
    >>> import torch.distributed as dist
    >>> from tsgu.distributed import fail_together
    >>> from tsgu.distributed.testing import free_port
    >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
    ...                         rank=0, world_size=1)
    >>> with fail_together():
    ...     dist.barrier()  # a step of the job; an error here would reach every rank
    >>> dist.destroy_process_group()
    """
    if not dist.is_initialized():
        raise RuntimeError(
            "fail_together: torch.distributed must be initialized, got no process group; "
            "call torch.distributed.init_process_group first"
        )
    rank, world = dist.get_rank(), dist.get_world_size()
    store = _store()
    try:
        yield
    except RankFailedError:
        raise
    except Exception as error:
        if _is_comm(error):
            # this rank stopped because another failed (or timed out): say which, and what
            others = [f for f in _failures(store, world) if f[0] != rank]
            if not others:
                time.sleep(min(grace, 0.5))  # the message may be on its way
                others = [f for f in _failures(store, world) if f[0] != rank]
            where = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            if others:
                first, message = others[0]
                raise RankFailedError(
                    f"tsgu.distributed: rank {first} raised {message}; rank {rank} stopped "
                    f"in {where}",
                    first,
                ) from error
            raise RankFailedError(
                f"tsgu.distributed: a collective failed on rank {rank} ({where}); another "
                "rank failed or timed out (see the process group's timeout)"
            ) from error
        if store is not None:
            with contextlib.suppress(Exception):
                store.set(f"{_KEY}{rank}", f"{type(error).__name__}: {error}")
        with contextlib.suppress(Exception):
            dist.destroy_process_group()  # the others' pending collectives fail now
        time.sleep(grace)
        raise


def _is_comm(error: BaseException) -> bool:
    """A communication failure of gloo or of torch.distributed (not a user's error)."""
    text = str(error).lower()
    words = (
        "gloo",
        "connection",
        "timed out",
        "timeout",
        "peer",
        "socket",
        "closed",
        "broken pipe",
    )
    return any(w in text for w in words)
