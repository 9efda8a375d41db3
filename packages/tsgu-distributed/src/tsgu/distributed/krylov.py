"""Krylov solvers over a DistributedSparseMatrix: CG and BiCGSTAB, and the differentiable
:func:`solve` that plugs them into tsgu's one differentiable solve.

Every rank iterates on its own rows; an inner product is the local one summed by one
``all_reduce`` (so every rank sees the same numbers and takes the same decisions), a
product with A is one halo exchange, and the Jacobi and block-Jacobi preconditioners apply
locally with no communication. The stopping test, defaults, :class:`tsgu.core.SolveInfo`
and :class:`tsgu.core.ConvergenceWarning` are those of :func:`tsgu.core.cg` and
:func:`tsgu.core.bicgstab`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

import tsgu.core as tc
from tsgu.core.extend import LinearSolver, check_tol_or_rtol, linear_solve
from tsgu.core.validation import check_maxiter, check_tolerance

from ._comm import any_rank
from ._validate import check_operand
from .matrix import DistributedSparseMatrix

__all__ = ["bicgstab", "cg", "solve"]

Preconditioner = Callable[[torch.Tensor], torch.Tensor]
_METHODS = ("cg", "bicgstab")


# --------------------------------------------------------------------------- pieces
def _dots(
    group: dist.ProcessGroup | None, *pairs: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Global column-wise inner products of several pairs of blocks: one all_reduce."""
    local = torch.stack([(X * Y).sum(dim=0) for X, Y in pairs])
    dist.all_reduce(local, group=group)
    return local


def _operator(
    A: DistributedSparseMatrix, transpose: bool
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``X -> A X`` (or ``Aᵀ X``) on this rank's rows, without autograd: one exchange."""
    local = A.local.detach()
    plan = A.plan
    if not transpose:
        return lambda X: tc.sparse_mm(local, plan.gather(X))
    local_t = local.t().to_sparse_csr()
    return lambda X: plan.reduce(tc.sparse_mm(local_t, X))


def _preconditioner(
    fn: str, A: DistributedSparseMatrix, M: object, transpose: bool
) -> Preconditioner:
    """Jacobi, block Jacobi (ILU(0) of this rank's diagonal block) or a callable, applied
    locally: no communication."""
    if M is None:
        return lambda R: R
    if M == "jacobi":
        d = A.diagonal()
        if any_rank(bool((d == 0).any()), A.group):  # every rank raises, not only one
            raise ValueError(
                f"{fn}: A must have a nonzero diagonal for M='jacobi', got a zero or missing "
                "diagonal entry on some rank; use M=None or store the diagonal"
            )
        inv = (1.0 / d).unsqueeze(1)
        return lambda R: inv * R
    if M == "block_jacobi":
        block = A.diagonal_block()
        if transpose:
            block = block.t().to_sparse_csr()
        if A.n_local == 0:
            return lambda R: R
        ilu = tc.ilu0(block)
        return ilu.matmat
    if callable(M):
        return M
    raise ValueError(
        f"{fn}: M must be None, 'jacobi', 'block_jacobi' or a callable on this rank's rows, "
        f"got {M!r}; pass one of those"
    )


def _start(
    fn: str,
    A: object,
    b: object,
    x0: object,
    rtol: float | None,
    atol: float,
    tol: float | None,
    maxiter: int | None,
) -> tuple[DistributedSparseMatrix, torch.Tensor, torch.Tensor, float, float, int]:
    """Check everything that is this rank's own business, before any communication."""
    if not isinstance(A, DistributedSparseMatrix):
        raise TypeError(
            f"{fn}: A must be a DistributedSparseMatrix, got {type(A).__name__}; build it with "
            "DistributedSparseMatrix.from_local_rows or .from_global"
        )
    check_tol_or_rtol(fn, {"tol": tol, "rtol": rtol})
    rtol = (
        1e-5
        if rtol is None and tol is None
        else check_tolerance(fn, "rtol", rtol if rtol is not None else tol)
    )
    atol = check_tolerance(fn, "atol", atol)
    maxiter = check_maxiter(fn, maxiter)
    b = check_operand(fn, "b", b, A.n_local, A.dtype)
    B = b if b.dim() == 2 else b.unsqueeze(1)
    if x0 is not None:
        x0 = check_operand(fn, "x0", x0, A.n_local, A.dtype)
        if x0.shape != b.shape:
            raise ValueError(
                f"{fn}: x0 must have b's shape {tuple(b.shape)}, got {tuple(x0.shape)}; "
                "pass one initial guess per right-hand side"
            )
        X = (x0 if x0.dim() == 2 else x0.unsqueeze(1)).detach().clone()
    else:
        X = torch.zeros_like(B)
    return A, B.detach(), X, rtol, atol, 10 * A.shape[0] if maxiter is None else maxiter


def _finish(
    fn: str,
    A: DistributedSparseMatrix,
    matvec: Callable[[torch.Tensor], torch.Tensor],
    B: torch.Tensor,
    X: torch.Tensor,
    threshold: torch.Tensor,
    recurrence_converged: torch.Tensor,
    iterations: int,
    reason: str,
    vector: bool,
) -> tuple[torch.Tensor, tc.SolveInfo]:
    """The verdict on the true residual ``||b - A x||`` (one more product), as tsgu.core's."""
    R = B - matvec(X)
    # the squared residual and the count of non-finite entries of x, per column: one call
    both = torch.stack([(R * R).sum(dim=0), (~torch.isfinite(X)).sum(dim=0).to(X.dtype)])
    dist.all_reduce(both, group=A.group)
    norms = both[0].sqrt()
    converged = (norms <= threshold) & (both[1] == 0)
    if bool((recurrence_converged & ~converged).any()):
        reason = (
            "breakdown: the recurrence reached the tolerance but the true residual "
            "||b - A x|| did not (A, or M, is singular or too ill-conditioned)"
        )
    all_converged = bool(converged.all())
    if all_converged:
        reason = "converged"
    else:
        warnings.warn(
            f"{fn} did not converge: {reason} after {iterations} iterations, largest true "
            f"residual norm ||b - A x|| {float(norms.max()):.3e} "
            f"({int((~converged).sum())} of {converged.numel()} columns unconverged)",
            tc.ConvergenceWarning,
            stacklevel=3,
        )
    report = norms[0] if vector else norms
    x = X[:, 0] if vector else X
    return x, tc.SolveInfo(all_converged, iterations, report, reason)


# --------------------------------------------------------------------------- solvers
def _cg(
    fn: str,
    A: DistributedSparseMatrix,
    B: torch.Tensor,
    X: torch.Tensor,
    rtol: float,
    atol: float,
    maxiter: int,
    M: object,
    transpose: bool,
    callback: Any,
    vector: bool,
) -> tuple[torch.Tensor, tc.SolveInfo]:
    matvec = _operator(A, transpose)
    precond = _preconditioner(fn, A, M, transpose)
    group = A.group
    R = _initial_residual(matvec, B, X, group)
    Z = precond(R)
    bb, rr, rz = _dots(group, (B, B), (R, R), (R, Z))
    threshold = torch.clamp(rtol * bb.sqrt(), min=atol)
    rnorm = rr.sqrt()
    active = rnorm > threshold
    P = Z.clone()
    reason, iterations = "maxiter", 0
    while iterations < maxiter and bool(active.any()):
        AP = matvec(P)
        pAp = _dots(group, (P, AP))[0]
        broken = active & ~(pAp > 0)
        if bool(broken.any()):
            reason = "breakdown: pᵀAp <= 0 (A or M is not positive definite)"
            active = active & ~broken
        alpha = torch.where(active, rz / pAp, 0.0)
        X = X + alpha * P
        R = R - alpha * AP
        Z = precond(R)
        rr, rz_new = _dots(group, (R, R), (R, Z))
        rnorm = torch.where(active, rr.sqrt(), rnorm)
        if not bool(torch.isfinite(rnorm).all()):
            reason = "breakdown: non-finite residual"
            active = active & torch.isfinite(rnorm)
        active = active & (rnorm > threshold)
        beta = torch.where(active, rz_new / rz, 0.0)
        P = Z + beta * P
        rz = rz_new
        iterations += 1
        if callback is not None:
            callback(X[:, 0] if vector else X)
    return _finish(fn, A, matvec, B, X, threshold, rnorm <= threshold, iterations, reason, vector)


def _bicgstab(
    fn: str,
    A: DistributedSparseMatrix,
    B: torch.Tensor,
    X: torch.Tensor,
    rtol: float,
    atol: float,
    maxiter: int,
    M: object,
    transpose: bool,
    callback: Any,
    vector: bool,
) -> tuple[torch.Tensor, tc.SolveInfo]:
    matvec = _operator(A, transpose)
    precond = _preconditioner(fn, A, M, transpose)
    group = A.group
    R = _initial_residual(matvec, B, X, group)
    Rhat = R.clone()
    bb, rr, rho = _dots(group, (B, B), (R, R), (Rhat, R))
    threshold = torch.clamp(rtol * bb.sqrt(), min=atol)
    rnorm = rr.sqrt()
    active = rnorm > threshold
    P = torch.zeros_like(R)
    V = torch.zeros_like(R)
    one = torch.ones_like(rho)
    rho_old, alpha, omega = one, one, one
    reason, iterations = "maxiter", 0
    while iterations < maxiter and bool(active.any()):
        broken = active & (rho == 0)
        if bool(broken.any()):
            reason = "breakdown: rho = 0 (r̂ᵀr vanished)"
            active = active & ~broken
        if iterations == 0:
            P = R.clone()
        else:
            beta = torch.where(active, (rho / rho_old) * (alpha / omega), 0.0)
            P = R + beta * (P - omega * V)
        Phat = precond(P)
        V = matvec(Phat)
        rv = _dots(group, (Rhat, V))[0]
        alpha = torch.where(active & (rv != 0), rho / rv, 0.0)
        S = R - alpha * V
        snorm = _dots(group, (S, S))[0].sqrt()
        half = active & (snorm <= threshold)  # stops halfway: x + alpha p̂ is good enough
        X = X + torch.where(half, alpha, 0.0) * Phat
        rnorm = torch.where(half, snorm, rnorm)
        active = active & ~half
        Shat = precond(S)
        T = matvec(Shat)
        tt, ts = _dots(group, (T, T), (T, S))
        omega = torch.where(active & (tt > 0), ts / tt, 0.0)
        stalled = active & (omega == 0)
        if bool(stalled.any()):
            reason = "breakdown: omega = 0 (tᵀs vanished)"
        step = torch.where(active, 1.0, 0.0)
        X = X + step * (alpha * Phat + omega * Shat)
        R = torch.where(active, S - omega * T, R)
        rho_old = rho
        rr, rho = _dots(group, (R, R), (Rhat, R))
        rnorm = torch.where(active, rr.sqrt(), rnorm)
        if not bool(torch.isfinite(rnorm).all()):
            reason = "breakdown: non-finite residual"
            active = active & torch.isfinite(rnorm)
        active = active & ~stalled & (rnorm > threshold)
        iterations += 1
        if callback is not None:
            callback(X[:, 0] if vector else X)
    return _finish(fn, A, matvec, B, X, threshold, rnorm <= threshold, iterations, reason, vector)


def _initial_residual(
    matvec: Any, B: torch.Tensor, X: torch.Tensor, group: dist.ProcessGroup | None
) -> torch.Tensor:
    """B - A X, with no product (and its halo exchange) when X is zero on every rank."""
    return B - matvec(X) if any_rank(bool((X != 0).any()), group) else B.clone()


_SOLVERS = {"cg": _cg, "bicgstab": _bicgstab}


def _run(
    fn: str,
    method: str,
    A: Any,
    b: Any,
    x0: Any,
    rtol: Any,
    atol: Any,
    tol: Any,
    maxiter: Any,
    M: Any,
    callback: Any,
    transpose: bool = False,
) -> tuple[torch.Tensor, tc.SolveInfo]:
    A, B, X, rtol, atol, maxiter = _start(fn, A, b, x0, rtol, atol, tol, maxiter)
    with torch.no_grad():
        return _SOLVERS[method](
            fn, A, B, X, rtol, atol, maxiter, M, transpose, callback, b.dim() == 1
        )


# --------------------------------------------------------------------------- public
def cg(
    A: DistributedSparseMatrix,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: str | Preconditioner | None = None,
    callback: Callable[[torch.Tensor], Any] | None = None,
    return_info: bool = False,
    tol: float | None = None,
) -> Any:
    """Solve ``A x = b`` by conjugate gradients, A symmetric positive definite and split by
    rows over a process group; every rank calls it with its rows of ``b``.

    Parameters
    ----------
    A : DistributedSparseMatrix
        Symmetric positive definite.
    b : torch.Tensor
        This rank's rows: ``(n_local,)`` or ``(n_local, k)``, A's dtype.
    x0 : torch.Tensor, optional
        This rank's rows of the initial guess (default zeros).
    rtol, atol, maxiter, tol
        As :func:`tsgu.core.cg`: stop a column when ``||r|| <= max(rtol ||b||, atol)``
        (global norms), ``rtol`` 1e-5 and ``maxiter`` ``10 n`` by default.
    M : {None, "jacobi", "block_jacobi"} or callable
        Preconditioner applied locally, with no communication: the inverse diagonal, the
        ILU(0) of this rank's diagonal block (block Jacobi), or a callable on this rank's
        rows of an ``(n_local, k)`` block.
    callback : callable, optional
        Called with this rank's rows of x after every iteration.
    return_info : bool
        Also return a :class:`tsgu.core.SolveInfo` (the same on every rank).

    Returns
    -------
    x : torch.Tensor
        This rank's rows of the solution, shaped like ``b``.
    info : tsgu.core.SolveInfo
        Only with ``return_info=True``.

    Warns
    -----
    tsgu.core.ConvergenceWarning
        On every rank, when a column has not converged (the true residual decides).

    Notes
    -----
    Hestenes and Stiefel (1952). Per iteration: one halo exchange and two ``all_reduce``
    calls (``pᵀAp``; then ``rᵀr`` and ``rᵀz`` together). No gradients: use :func:`solve`.

    Examples
    --------
    >>> import torch, torch.distributed as dist, tsgu.core as tc
    >>> from tsgu.distributed import DistributedSparseMatrix, cg
    >>> from tsgu.distributed.testing import free_port
    >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
    ...                         rank=0, world_size=1)
    >>> A = DistributedSparseMatrix.from_global(tc.poisson_2d(8))
    >>> b = torch.ones(A.n_local, dtype=torch.float64)
    >>> x, info = cg(A, b, rtol=1e-10, M="jacobi", return_info=True)
    >>> info.converged, bool(torch.allclose(A @ x, b))
    (True, True)
    >>> dist.destroy_process_group()
    """
    x, info = _run("cg", "cg", A, b, x0, rtol, atol, tol, maxiter, M, callback)
    return (x, info) if return_info else x


def bicgstab(
    A: DistributedSparseMatrix,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: str | Preconditioner | None = None,
    callback: Callable[[torch.Tensor], Any] | None = None,
    return_info: bool = False,
    tol: float | None = None,
) -> Any:
    """Solve ``A x = b`` by BiCGSTAB, A any square matrix split by rows over a process
    group; every rank calls it with its rows of ``b``.

    Parameters
    ----------
    A, b, x0, rtol, atol, maxiter, M, callback, return_info, tol
        As :func:`cg`; A need not be symmetric.

    Returns
    -------
    x : torch.Tensor
        This rank's rows of the solution.
    info : tsgu.core.SolveInfo
        Only with ``return_info=True``.

    Warns
    -----
    tsgu.core.ConvergenceWarning
        On every rank, when a column has not converged.

    Notes
    -----
    van der Vorst (1992), right-preconditioned as :func:`tsgu.core.bicgstab` and
    ``scipy.sparse.linalg.bicgstab``; a column whose half-step residual ``s`` meets the
    tolerance stops there. Per iteration: two halo exchanges and four ``all_reduce`` calls.

    Examples
    --------
    >>> import torch, torch.distributed as dist, tsgu.core as tc
    >>> from tsgu.distributed import DistributedSparseMatrix, bicgstab
    >>> from tsgu.distributed.testing import free_port
    >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
    ...                         rank=0, world_size=1)
    >>> from tsgu.core.testing import case
    >>> G = case("nonsymmetric").dense().to_sparse_csr()  # 12 x 12
    >>> A = DistributedSparseMatrix.from_global(G)
    >>> b = torch.ones(12, dtype=torch.float64)
    >>> x, info = bicgstab(A, b, rtol=1e-10, return_info=True)
    >>> info.converged, bool(torch.allclose(A @ x, b))
    (True, True)
    >>> dist.destroy_process_group()
    """
    x, info = _run("bicgstab", "bicgstab", A, b, x0, rtol, atol, tol, maxiter, M, callback)
    return (x, info) if return_info else x


class _DistributedSolver(LinearSolver):
    """Solves with the rank's extended square block (see :func:`solve`'s Notes)."""

    def __init__(self, A: DistributedSparseMatrix, method: str, options: dict[str, Any]) -> None:
        self.A, self.method, self.options = A, method, options
        self.infos: list[tc.SolveInfo] = []

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        A, plan = self.A, self.A.plan
        lo, n = plan.n_below, plan.n_local
        if not transpose:  # X = E A⁻¹ R B: own rows of B in, own rows and halo out
            X, info = _run(
                "solve",
                self.method,
                A,
                B[lo : lo + n],
                None,
                transpose=False,
                callback=None,
                **self.options,
            )
            self.infos.append(info)
            return torch.cat([plan.gather(X), B.new_zeros(1, B.shape[1])])  # padding: 0
        # the adjoint, Rᵀ A⁻ᵀ Eᵀ B: halo rows summed at their owners, solve with Aᵀ, pad
        G = plan.reduce(B[: plan.n_ext])
        Y, info = _run(
            "solve",
            self.method,
            A,
            G,
            None,
            transpose=self.method != "cg",
            callback=None,
            **self.options,
        )
        self.infos.append(info)
        out = torch.zeros_like(B)
        out[lo : lo + n] = Y
        return out


def solve(
    A: DistributedSparseMatrix,
    b: torch.Tensor,
    method: str = "cg",
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: str | Preconditioner | None = None,
    return_info: bool = False,
    tol: float | None = None,
) -> Any:
    r"""Solve ``A x = b`` differentiably: gradients for ``b``'s rows and for A's values, on
    the rank that owns them. Every rank calls it with its rows of ``b``.

    Parameters
    ----------
    A : DistributedSparseMatrix
        Possibly built from values that require grad.
    b : torch.Tensor
        This rank's rows, ``(n_local,)`` or ``(n_local, k)``.
    method : {"cg", "bicgstab"}
        CG for a symmetric positive definite A (its transposed solve is itself), BiCGSTAB
        for any other (the backward solves with Aᵀ by BiCGSTAB too).
    rtol, atol, maxiter, M, tol
        As :func:`cg`, for the forward and every backward solve. Gradients are as accurate
        as the solves: pass a small ``rtol``.
    return_info : bool
        Also return the forward solve's :class:`tsgu.core.SolveInfo`.

    Returns
    -------
    x : torch.Tensor
        This rank's rows of the solution.
    info : tsgu.core.SolveInfo
        Only with ``return_info=True``.

    Notes
    -----
    This is :func:`tsgu.core.extend.linear_solve`, tsgu's one differentiable solve, with a
    solver for each rank's *extended* square block: the rows of A it owns, placed among its
    columns ``[halo below | own | halo above]``, the halo rows empty. The solver's forward
    is :math:`E A^{-1} R` (R keeps the own rows of the right-hand side, E extends the
    solution by one halo exchange) and its transposed solve the exact adjoint
    :math:`R^\top A^{-\top} E^\top` (:math:`E^\top` is the reverse exchange). The mechanism's
    gradients are then the distributed ones: :math:`\bar b = A^{-\top}\bar x` on each rank's
    rows, and :math:`\bar A_{ij} = -\bar b_i x_j` at each rank's own stored entries, with
    :math:`x_j` of a halo column already at hand, so no gradient of A ever crosses ranks.
    Second derivatives come the same way.

    Examples
    --------
    >>> import torch, torch.distributed as dist, tsgu.core as tc
    >>> from tsgu.distributed import DistributedSparseMatrix, solve
    >>> from tsgu.distributed.testing import free_port
    >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
    ...                         rank=0, world_size=1)
    >>> A = DistributedSparseMatrix.from_global(tc.poisson_2d(6))
    >>> values = A.values.detach().clone().requires_grad_()
    >>> A = A.with_values(values)
    >>> b = torch.ones(36, dtype=torch.float64, requires_grad=True)
    >>> x, info = solve(A, b, "cg", rtol=1e-12, M="jacobi", return_info=True)
    >>> x.sum().backward()
    >>> info.converged, values.grad.shape, b.grad.shape
    (True, torch.Size([156]), torch.Size([36]))
    >>> dist.destroy_process_group()
    """
    fn = "tsgu.distributed.solve"
    if method not in _METHODS:
        raise ValueError(
            f"{fn}: method must be one of {_METHODS}, got {method!r}; pass 'cg' for a "
            "symmetric positive definite A, 'bicgstab' otherwise"
        )
    _start(fn, A, b, None, rtol, atol, tol, maxiter)  # every check before any work
    options = {"rtol": rtol, "atol": atol, "tol": tol, "maxiter": maxiter, "M": M}
    solver = _DistributedSolver(A, method, options)
    plan = A.plan
    block = b if b.dim() == 2 else b.unsqueeze(1)
    k = block.shape[1]
    below = block.new_zeros(plan.n_below, k)
    above = block.new_zeros(plan.n_ext + 1 - plan.n_below - plan.n_local, k)  # + padding
    X = linear_solve(A.square(), torch.cat([below, block, above]), solver, fn=fn)
    x = X[plan.n_below : plan.n_below + plan.n_local]
    x = x if b.dim() == 2 else x.squeeze(1)
    return (x, solver.infos[0]) if return_info else x
