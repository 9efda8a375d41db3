"""``sparse_solve_c4t``: SciPy (CPU) and CuPy (CUDA) sparse solves, differentiable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tsgu.core.extend import LinearSolver, linear_solve

from ._backend import backend_for
from ._solvers import Step, System, factor_options
from ._validate import check_solve_inputs, resolve_steps

__all__ = ["sparse_solve_c4t"]


class _C4TSolver(LinearSolver):
    """The forward and backward steps on one system, with SciPy's or CuPy's arrays.

    ``vector``: B was a vector, which the steps (and a user's callable) receive as one.
    """

    def __init__(
        self, system: System, forward: Step, backward: Step, kwargs: dict[str, Any], vector: bool
    ) -> None:
        self.system = system
        self.forward = forward
        self.backward = backward
        self.kwargs = kwargs
        self.vector = vector

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        step = self.backward if transpose else self.forward
        system = self.system
        backend = system.backend
        with backend.context():
            rhs = backend.array((B.squeeze(-1) if self.vector else B).contiguous())
            x = step.run(system, rhs, transpose, self.kwargs)
            X = backend.tensor(x)
        return X.to(device=system.A.device, dtype=system.A.dtype).reshape(B.shape)


def sparse_solve_c4t(
    A: torch.Tensor,
    B: torch.Tensor,
    solve: str | Callable[..., Any] | None = None,
    transpose_solve: str | Callable[..., Any] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    r"""Solve ``A X = B`` with SciPy (CPU tensors) or CuPy (CUDA tensors), differentiably.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)``, float32 or float64, on the CPU or a CUDA device.
        An uncoalesced COO tensor is fine (repeated positions add up).
    B : torch.Tensor
        Dense ``(n,)`` or ``(n, k)`` with A's dtype, on A's device.
    solve : {"spsolve", "cg", "cgs", "minres", "gmres"} or callable, optional
        ``"spsolve"``: the direct solve (below). The Krylov solvers of
        ``scipy.sparse.linalg`` (CPU) or ``cupyx.scipy.sparse.linalg`` (CUDA) take a
        vector B only; ``"cg"`` and ``"minres"`` assume a symmetric A. A callable
        ``solve(A, b, **kwargs) -> x`` receives A as a SciPy/CuPy sparse matrix and b as
        a NumPy/CuPy array shaped like B, and returns x as an array or tensor of b's shape
        (or SciPy's ``(x, info)``). Default (None): the direct solve, for a vector or a
        multi-column B alike.
    transpose_solve : same choices as ``solve``, optional
        Solves ``Aᵀ Y = G`` in the backward. A callable receives the SciPy/CuPy matrix of
        Aᵀ itself. Default: ``solve`` applied to Aᵀ; for the direct solve, the forward's own
        LU factors with ``trans='T'``.
    **kwargs
        Passed to the solvers: ``rtol`` (or ``tol``, renamed to what the installed SciPy or
        CuPy takes), ``atol``, ``maxiter``, ``x0``, ``M``, ``callback``, ``restart``, ...;
        each solver gets those its signature names (a callable with ``**kwargs`` gets
        all), the rest are ignored. Torch tensors among them (``x0``, a sparse
        or dense ``M``) are converted. The direct solve takes ``splu``'s
        ``permc_spec``, ``diag_pivot_thresh``, ``relax``, ``panel_size``, ``options``.

    Returns
    -------
    torch.Tensor
        X, with B's shape, A's dtype and A's device.

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO/CSR tensor, ``B`` is not dense, or ``solve`` /
        ``transpose_solve`` is neither a callable nor a name.
    ValueError
        A not square or not 2D; a non-float A; B of the wrong shape, of another dtype
        (cast it with ``B.to(A.dtype)``) or on another device; an unknown solver name; a
        Krylov solver with a multi-column B; both ``tol`` and ``rtol``; a callable that
        returns the wrong shape; a device other than CPU or CUDA.
    ImportError
        A is on CUDA and CuPy is not installed (``pip install 'tsgu-cupy[cuda12]'``).
    torch.linalg.LinAlgError
        The direct solve met an exactly singular A.

    Warns
    -----
    tsgu.core.ConvergenceWarning
        A Krylov solver (or a callable returning ``(x, info)``) did not converge: the
        message gives SciPy's ``info`` and the relative residual.

    Notes
    -----
    The backward solves the transposed system once and samples the outer product at A's
    stored entries only (a sparse gradient with A's layout, indices and order, through
    :func:`tsgu.core.sparse_sampled_mm`):

    .. math::

        \bar B = A^{-\top} \bar X, \qquad
        \bar A_{ij} = -\langle \bar B_{i,:}, X_{j,:} \rangle \quad (i, j) \in \mathrm{nz}(A).

    The backward is this same operation on the transposed system, so second derivatives
    are exact too (to the solver's accuracy).

    *The direct solve* factors A once with SuperLU (``scipy.sparse.linalg.splu``; on CUDA
    the factors go to CuPy's ``SuperLU``, whose triangular solves run on the GPU) and
    solves every column of B with it; the backward solves ``Aᵀ`` with the same factors
    (``trans='T'``) instead of factoring Aᵀ again. A CSR matrix
    is factored as Aᵀ straight from its arrays (CSR of A is CSC of Aᵀ), with no
    conversion. Unless ``permc_spec`` is given, a matrix whose pattern is symmetric is
    ordered by minimum degree on ``Aᵀ + A`` (``"MMD_AT_PLUS_A"``, far less fill-in on
    Poisson-like matrices) and any other by SciPy's default (``"COLAMD"``).

    Later solves with the very same tensor A reuse the factorization through a small
    cache (the four most recent matrices, held by weak references), which checks that A's
    values and indices have not changed since (version counters, then an O(nnz)
    comparison); a changed A is factored again.

    In the transposed (backward) Krylov solves ``x0`` is dropped (it guesses X, not the
    transposed system's solution) and a preconditioner ``M`` becomes ``M.T`` (except for
    ``"cg"`` and ``"minres"``, whose M is symmetric); a ``LinearOperator`` M needs an
    ``rmatvec`` for that.

    Examples
    --------
    >>> import torch
    >>> from tsgu.cupy import sparse_solve_c4t
    >>> A = torch.tensor([[4.0, 1.0], [2.0, 3.0]], dtype=torch.float64)
    >>> A = A.to_sparse_csr().requires_grad_()
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> x = sparse_solve_c4t(A, b)  # SuperLU, factors kept for the backward
    >>> x.detach()
    tensor([0.1000, 0.6000], dtype=torch.float64)
    >>> x.sum().backward()
    >>> A.grad.values()  # one value per stored entry
    tensor([-0.0100, -0.0600, -0.0300, -0.1800], dtype=torch.float64)
    >>> X = sparse_solve_c4t(A.detach(), torch.ones(2, 3, dtype=torch.float64))  # 3 columns
    >>> X.shape
    torch.Size([2, 3])
    >>> sparse_solve_c4t(A.detach(), b, solve="gmres", rtol=1e-12).detach()
    tensor([0.1000, 0.6000], dtype=torch.float64)
    """
    fn = "sparse_solve_c4t"
    A, B = check_solve_inputs(fn, A, B, kwargs)
    forward, backward = resolve_steps(fn, solve, transpose_solve, B)
    system = System(fn, A, backend_for(fn, A.device), factor_options(kwargs))
    solver = _C4TSolver(system, forward, backward, dict(kwargs), vector=B.dim() == 1)
    return linear_solve(A, B, solver, fn=fn)
