"""Krylov solvers in pure torch: CG, BiCGSTAB, MINRES, GMRES, LSMR.

Each takes a sparse (COO/CSR) or dense matrix, or a matvec callable; solves every column of
a multi-RHS block (and every item of a batched matrix) together; says how it stopped
(``return_info=True``) and warns with :class:`ConvergenceWarning` when it did not converge.
They run without gradients: :func:`tsgu.core.sparse_generic_solve` differentiates a solve.
"""

from ._common import ConvergenceWarning, SolveInfo
from .bicgstab import bicgstab
from .cg import cg
from .gmres import gmres
from .lsmr import lsmr
from .minres import minres

__all__ = ["ConvergenceWarning", "SolveInfo", "bicgstab", "cg", "gmres", "lsmr", "minres"]
