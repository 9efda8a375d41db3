"""0.2.7's ``torchsparsegradutils._compat``: a triangular solve without deprecated torch APIs."""

from __future__ import annotations

import torch

from tsgu.core import sparse_triangular_solve

__all__ = ["linalg_solve_triangular_compat"]


def linalg_solve_triangular_compat(
    A: torch.Tensor,
    B: torch.Tensor,
    *,
    upper: bool,
    unitriangular: bool = False,
    transpose: bool = False,
) -> torch.Tensor:
    """Solve ``A X = B`` (``Aᵀ X = B`` with ``transpose``) for a triangular ``A``.

    A dense ``A`` goes to :func:`torch.linalg.solve_triangular`, a sparse COO/CSR one to
    :func:`tsgu.core.sparse_triangular_solve`. 0.2.7 sent sparse matrices to the deprecated
    ``torch.triangular_solve`` (CPU builds with MKL only) and silenced its warning; here no
    deprecated API is called, and the sparse solve is differentiable with a sparse gradient.

    Examples
    --------
    >>> import torch
    >>> L = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    >>> B = torch.tensor([[2.0], [3.0]])
    >>> linalg_solve_triangular_compat(L, B, upper=False)
    tensor([[1.],
            [2.]])
    >>> linalg_solve_triangular_compat(L.to_sparse_csr(), B, upper=False, transpose=True)
    tensor([[-0.5000],
            [ 3.0000]])
    """
    if A.layout == torch.strided:
        if transpose:
            A, upper = A.mT, not upper
        return torch.linalg.solve_triangular(A, B, upper=upper, unitriangular=unitriangular)
    return sparse_triangular_solve(
        A, B, upper=upper, unitriangular=unitriangular, transpose=transpose
    )
