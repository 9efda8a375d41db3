"""The array stack behind a device: NumPy/SciPy for CPU tensors, CuPy/cupyx.scipy for CUDA ones.

CuPy is imported only when a CUDA tensor arrives, so ``import tsgu.cupy`` and every CPU
call work without it. Arrays cross between torch and the stack without copies where the
memory allows: NumPy views of CPU tensors, DLPack for CUDA ones.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import torch

__all__ = ["Backend", "backend_for", "have_cupy", "is_backend_sparse"]

have_cupy: bool = importlib.util.find_spec("cupy") is not None

INSTALL_HINT = (
    "install CuPy with pip install 'tsgu-cupy[cuda12]' (CUDA 12) or "
    "pip install 'tsgu-cupy[cuda13]' (CUDA 13)"
)


def _import_cupy(fn: str, device: torch.device) -> tuple[ModuleType, ModuleType, ModuleType]:
    """``(cupy, cupyx.scipy.sparse, cupyx.scipy.sparse.linalg)``, or an ImportError saying why."""
    try:
        cupy = importlib.import_module("cupy")
        sparse = importlib.import_module("cupyx.scipy.sparse")
        linalg = importlib.import_module("cupyx.scipy.sparse.linalg")
    except ImportError as err:
        raise ImportError(
            f"{fn}: tensors on {device} are solved with CuPy, which is not installed; "
            f"{INSTALL_HINT}"
        ) from err
    return cupy, sparse, linalg


@dataclass(frozen=True)
class Backend:
    """One array stack: its array module, sparse module and sparse linalg module."""

    name: str  # "scipy" or "cupy"
    device: torch.device
    xp: ModuleType
    sparse: ModuleType
    linalg: ModuleType

    @property
    def is_cuda(self) -> bool:
        return self.name == "cupy"

    # ------------------------------------------------------------ torch <-> arrays
    def array(self, t: torch.Tensor) -> Any:
        """``t`` as an array of this stack, sharing its memory (no autograd)."""
        t = t.detach().resolve_conj().resolve_neg()
        if self.is_cuda:
            return self.xp.from_dlpack(t)
        return t.numpy()

    def tensor(self, a: Any) -> torch.Tensor:
        """Array ``a`` as a torch tensor on this backend's device, sharing memory where it can."""
        if self.is_cuda:
            return torch.from_dlpack(a)
        a = np.asarray(a)
        if not a.flags.writeable or not a.dtype.isnative:
            a = np.array(a, dtype=a.dtype.newbyteorder("="))  # torch takes neither
        return torch.from_numpy(a)

    @contextlib.contextmanager
    def context(self) -> Iterator[None]:
        """Run CuPy work on the tensor's device and on torch's current stream there."""
        if not self.is_cuda:
            yield
            return
        index = self.device.index if self.device.index is not None else 0
        stream = torch.cuda.current_stream(index).cuda_stream
        with self.xp.cuda.Device(index), self.xp.cuda.ExternalStream(stream):
            yield


def backend_for(fn: str, device: torch.device) -> Backend:
    """The stack for tensors on ``device``: SciPy on CPU, CuPy on CUDA."""
    if device.type == "cpu":
        return Backend("scipy", device, np, scipy.sparse, scipy.sparse.linalg)
    if device.type == "cuda":
        cupy, sparse, linalg = _import_cupy(fn, device)
        return Backend("cupy", device, cupy, sparse, linalg)
    raise ValueError(
        f"{fn}: tensors must be on a CPU or CUDA device, got {device}; move them with .cpu()"
    )


def is_backend_sparse(x: object) -> bool:
    """Whether ``x`` is a SciPy sparse matrix/array or (when CuPy is loaded) a cupyx one."""
    if scipy.sparse.issparse(x):
        return True
    if not have_cupy:
        return False
    module = type(x).__module__
    if not module.startswith("cupyx"):
        return False
    sparse = importlib.import_module("cupyx.scipy.sparse")
    issparse = getattr(sparse, "issparse", None) or sparse.isspmatrix
    return bool(issparse(x))
