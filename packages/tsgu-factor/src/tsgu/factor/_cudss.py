"""cuDSS on CUDA through nvmath-python: analysis (``plan``) once, ``factorize`` per new
values, solves on the device. Written against nvmath-python 1.0's
``nvmath.sparse.advanced.DirectSolver``; no GPU was lent to the session that wrote it, so
its tests (``tests/test_cuda.py``) have never run: treat it as unverified.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

__all__ = ["CuDSS", "available"]


def available() -> bool:
    """Whether nvmath-python (the ``cuda`` extra) imports."""
    try:
        importlib.import_module("nvmath.sparse.advanced")
    except ImportError:
        return False
    return True


class CuDSS:
    """One cuDSS solver for A (and, made on first use, one for Aᵀ) with the plan kept."""

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, n: int, kind: str) -> None:
        self._advanced: Any = importlib.import_module("nvmath.sparse.advanced")
        types = self._advanced.DirectSolverMatrixType
        self._type = {"cholesky": types.SPD, "ldl": types.SYMMETRIC, "lu": types.GENERAL}[kind]
        self.n, self.kind = n, kind
        self._crow, self._col = crow, col
        self._solvers: dict[bool, Any] = {}
        self._values: torch.Tensor | None = None
        self.analyses = 0

    def _matrix(self, values: torch.Tensor, transpose: bool) -> torch.Tensor:
        A = torch.sparse_csr_tensor(self._crow, self._col, values, (self.n, self.n))
        return A.t().to_sparse_csr() if transpose else A

    def _solver(self, transpose: bool, B: torch.Tensor) -> Any:
        assert self._values is not None
        solver = self._solvers.get(transpose)
        A = self._matrix(self._values, transpose)
        if solver is None:
            options = self._advanced.DirectSolverOptions(sparse_system_type=self._type)
            solver = self._advanced.DirectSolver(A, B, options=options)
            solver.plan()  # reordering and symbolic factorization, once
            self.analyses += 1
            solver.factorize()
            self._solvers[transpose] = solver
        else:
            solver.reset_operands(a=A, b=B)
        return solver

    def factorize(self, values: torch.Tensor) -> None:
        self._values = values.detach().to(torch.float64).contiguous()
        B = torch.zeros(self.n, 1, dtype=torch.float64, device=values.device)
        for transpose in list(self._solvers) or [False]:
            solver = self._solver(transpose, B)
            solver.factorize()  # new values, the kept plan

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        transpose = transpose and self.kind == "lu"  # the symmetric kinds: Aᵀ = A
        block = B.detach().to(torch.float64).contiguous()
        if transpose not in self._solvers:
            self._solver(transpose, block)
        solver = self._solvers[transpose]
        solver.reset_operands(b=block)
        X: torch.Tensor = solver.solve()
        return X.to(B.dtype)
