"""The sparse LU factorization behind the direct solve: one factorization solves A and Aᵀ.

SciPy's SuperLU (``splu``) factors on the CPU. A CSR tensor's arrays are, read as CSC, the
arrays of Aᵀ, so a CSR matrix is factored as Aᵀ with no conversion, and the solves swap
``trans``. On CUDA the same CPU factorization is handed to CuPy's ``SuperLU`` (what
``cupyx.scipy.sparse.linalg.splu`` and ``factorized`` do), whose triangular solves run on
the GPU with cuSPARSE.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import splu

from tsgu.core.validation import CSR

from ._backend import Backend, backend_for
from .conversion import backend_coo, backend_csr

__all__ = ["FACTOR_OPTIONS", "Factor", "factorize"]

# Keyword arguments of splu; the direct solve ignores every other one (iteration controls).
FACTOR_OPTIONS = ("permc_spec", "diag_pivot_thresh", "relax", "panel_size", "options")


class Factor:
    """LU factors of A (or of Aᵀ when ``of_transpose``) that solve with A and with Aᵀ."""

    def __init__(self, lu: Any, of_transpose: bool) -> None:
        self.lu = lu
        self.of_transpose = of_transpose

    def solve(self, rhs: Any, transpose: bool) -> Any:
        """``A⁻¹ rhs``, or ``A⁻ᵀ rhs`` when ``transpose``; rhs is ``(n,)`` or ``(n, k)``."""
        trans = "T" if transpose != self.of_transpose else "N"
        return self.lu.solve(rhs, trans=trans)


def _symmetric_pattern(M: Any) -> bool:
    """Whether canonical CSC ``M`` stores (i, j) exactly when it stores (j, i)."""
    T = M.T.tocsc()  # a new, sorted CSC: the pattern of Mᵀ
    return bool(np.array_equal(M.indptr, T.indptr) and np.array_equal(M.indices, T.indices))


def _factor_on_cpu(fn: str, A: torch.Tensor, options: dict[str, Any]) -> Factor:
    cpu = backend_for(fn, torch.device("cpu"))
    if A.layout == CSR:
        M = backend_csr(cpu, A).T  # CSC of Aᵀ over A's own arrays
        of_transpose = True
    else:
        M = backend_coo(cpu, A).tocsc()  # sums repeated positions of an uncoalesced A
        of_transpose = False
    if not M.has_canonical_format:
        M = M.copy()  # splu sorts in place: never inside A's memory
        M.sum_duplicates()
    if "permc_spec" not in options and _symmetric_pattern(M):
        # SciPy's default column ordering (COLAMD) suits unsymmetric patterns; on a
        # symmetric one (Poisson, FEM) minimum degree on A^T + A fills in far less:
        # SuperLU on the 2D Poisson 256^2 matrix, 3.4M vs 6.2M nonzeros in L + U and 0.7x
        # the time; on the 27-point 30^3 one, 22M vs 52M and 0.4x.
        options = {**options, "permc_spec": "MMD_AT_PLUS_A"}
    try:
        lu = splu(M, **options)
    except RuntimeError as err:  # SuperLU: "Factor is exactly singular"
        raise torch.linalg.LinAlgError(
            f"{fn}: A is singular to working precision; SuperLU says: {err}"
        ) from err
    return Factor(lu, of_transpose)


def factorize(fn: str, backend: Backend, A: torch.Tensor, options: dict[str, Any]) -> Factor:
    """Factor sparse COO/CSR ``A`` (detached, on ``backend``'s device) for direct solves."""
    if not backend.is_cuda:
        return _factor_on_cpu(fn, A, options)
    host = _factor_on_cpu(fn, A.cpu(), options)
    with backend.context():
        return Factor(backend.linalg.SuperLU(host.lu), host.of_transpose)
