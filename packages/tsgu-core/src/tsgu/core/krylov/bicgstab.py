"""Preconditioned BiCGSTAB for general nonsymmetric systems."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._common import (
    Operator,
    Start,
    column_verdict,
    dot,
    finish,
    ieee_div,
    norm_of,
    per_column,
    single_column,
    start,
    verdict,
)

__all__ = ["bicgstab"]

# Restarts (r̂ reset to r) allowed per column before a breakdown is reported.
_MAX_RESTARTS = 10


def bicgstab(
    A: Operator,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Operator | None = None,
    callback: Callable[[torch.Tensor], Any] | None = None,
    return_info: bool = False,
    tol: float | None = None,
) -> Any:
    """Solve ``A x = b`` for a general square ``A`` by BiCGSTAB.

    van der Vorst (1992), "Bi-CGSTAB: a fast and smoothly converging variant of Bi-CG",
    with right preconditioning as ``scipy.sparse.linalg.bicgstab``. The first residual is
    ``b - A x0`` (torchsparsegradutils 0.2 used ``b`` and returned ``x0 + A⁻¹b``).

    Parameters
    ----------
    A, b, x0, rtol, atol, M, callback, return_info, tol
        As in :func:`tsgu.core.cg`; ``A`` need not be symmetric.
    maxiter : int, optional
        Default ``10 * n``, as SciPy. One iteration applies ``A`` twice.

    Returns
    -------
    x : torch.Tensor
        Shaped like ``b``.
    info : SolveInfo
        Only with ``return_info=True``.

    Warns
    -----
    ConvergenceWarning
        When a column has not converged; x is then the last finite iterate.

    Raises
    ------
    TypeError, ValueError
        As in :func:`tsgu.core.cg`.

    Notes
    -----
    Columns of a multi-RHS ``b`` advance together; a column that converges halfway
    through an iteration (on ``s``) stops there, as in SciPy. When ``ρ = r̂ᵀ r`` or
    ``r̂ᵀ v`` vanishes, or ``ω = 0`` (a one-hot ``b`` makes the shadow residual sparse, and
    these can be exactly zero), the column restarts with ``r̂ = r``; a breakdown is
    reported after 10 such restarts.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import bicgstab
    >>> A = torch.tensor([[4.0, 1.0], [-2.0, 3.0]], dtype=torch.float64).to_sparse_csr()
    >>> x = bicgstab(A, torch.tensor([1.0, 2.0], dtype=torch.float64), rtol=1e-12)
    >>> x
    tensor([0.0714, 0.7143], dtype=torch.float64)
    """
    with torch.no_grad():  # no graph through the iterations
        fn = "bicgstab"
        s = start(
            fn,
            A,
            b,
            x0,
            rtol=rtol,
            atol=atol,
            tol=tol,
            maxiter=maxiter,
            default_maxiter_of_n=lambda n: 10 * n,
            M=M,
        )
        op, rhs, precond, maxiter = s.op, s.rhs, s.precond, s.maxiter
        B, X, R = s.rhs.block, s.X, s.R
        R_hat = R.clone()
        threshold = s.threshold
        mv = op.vector_product()
        if mv is not None and single_column(X, R):
            iterations, reason, done = _bicgstab_column(s, mv, M is None, callback)
            converged, residual, reason = column_verdict(s, X, iterations, reason, done)
            return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)
        rnorm = rhs.norms(R)
        active = rnorm > threshold
        P = torch.zeros_like(B)
        V = torch.zeros_like(B)
        S, T_buffer, R_next = torch.empty_like(B), torch.empty_like(B), torch.empty_like(B)
        ones = torch.ones_like(rnorm)
        rho_old, alpha, omega = ones, ones, ones
        eps = torch.finfo(B.dtype).eps
        rhat_norm = rhs.norms(R_hat)  # changes only on a restart
        restart = torch.zeros_like(active)
        restarts = torch.zeros_like(rnorm, dtype=torch.int64)
        identity = M is None
        reason = "maxiter"
        iterations = 0
        while iterations < maxiter and bool(active.any()):
            rho = dot(R_hat, R)
            # rho ~ 0 (e.g. a sparse shadow residual orthogonal to r): restart the column
            # with r̂ = r, the usual remedy, rather than divide by it.
            restart = active & (restart | (rho.abs() <= eps * rhat_norm * rnorm))
            if bool(restart.any()):
                restarts = restarts + restart.long()
                exhausted = restart & (restarts > _MAX_RESTARTS)
                if bool(exhausted.any()):
                    reason = f"breakdown: ρ = 0 or ω = 0 after {_MAX_RESTARTS} restarts"
                    active = active & ~exhausted
                fresh = per_column(restart)
                R_hat = torch.where(fresh, R, R_hat)
                rhat_norm = rhs.norms(R_hat)
                P = torch.where(fresh, 0.0, P)
                V = torch.where(fresh, 0.0, V)
                rho_old = torch.where(restart, ones, rho_old)
                alpha = torch.where(restart, ones, alpha)
                omega = torch.where(restart, ones, omega)
                rho = torch.where(restart, rnorm**2, rho)
            # p = r + beta (p - omega v), in place; a frozen column's p is its r (beta = 0)
            beta = torch.where(active, (rho / rho_old) * (alpha / omega), 0.0)
            P = P.addcmul_(per_column(omega), V, value=-1.0)
            P = torch.addcmul(R, per_column(beta), P, out=P)
            P_hat = precond(P)
            V = op.matvec(P_hat, out=V)
            rv = dot(R_hat, V)
            stalled = active & ~(rv.abs() > 0)  # r̂ ⟂ v: no step this iteration, restart
            step = active & ~stalled
            alpha = torch.where(step, rho / torch.where(stalled, ones, rv), ones)
            alpha_x = per_column(torch.where(step, alpha, 0.0))  # no step: x and r stay
            S = torch.addcmul(R, alpha_x, V, value=-1.0, out=S)
            snorm = rhs.norms(S)
            # Columns whose s is already small stop here, with x + alpha p̂.
            half = step & (snorm <= threshold)
            full = step & ~half
            if bool(full.any()):
                S_hat = precond(S)
                T = op.matvec(S_hat, out=T_buffer)
                tt = dot(T, T)
            else:  # every column stops halfway: no product with s (SciPy makes none either)
                S_hat, T = S, torch.zeros_like(S)
                tt = torch.zeros_like(rnorm)
            omega = torch.where(full & (tt > 0), dot(T, S) / torch.where(tt > 0, tt, ones), 0.0)
            R_next = torch.addcmul(S, per_column(omega), T, value=-1.0, out=R_next)
            rnorm_new = rhs.norms(R_next)
            update = step & torch.isfinite(rnorm_new)
            # The common case, in one sync: no column stalled, every new residual finite,
            # and p̂ and ŝ finite (0 · inf would spoil a column that takes no step).
            check = rnorm_new + dot(P_hat, P_hat) + (snorm if identity else dot(S_hat, S_hat))
            if math.isfinite(float(torch.where(stalled, math.inf, check).sum())):
                X.addcmul_(alpha_x, P_hat).addcmul_(per_column(omega), S_hat)
                R, R_next = R_next, R
            else:
                if bool((step & ~update).any()):
                    reason = "breakdown: non-finite residual"
                X_new = X + alpha_x * P_hat + per_column(omega) * S_hat
                X = torch.where(per_column(update), X_new, X)
                R = torch.where(per_column(update), R_next, R)
                R_next = torch.empty_like(R)
            rnorm = torch.where(update, rnorm_new, rnorm)
            active = active & (update | stalled) & (rnorm > threshold)
            # omega = 0 cannot start the next step (beta divides by it): restart those columns.
            restart = stalled | (full & (omega == 0))
            rho_old = torch.where(active, rho, ones)
            alpha = torch.where(active, alpha, ones)
            omega = torch.where(active & (omega != 0), omega, ones)
            iterations += 1
            if callback is not None:
                callback(rhs.user(X.clone()))  # x is updated in place after the call
        # The verdict: the true residual of the returned x, never the recurrence alone.
        start_residual = s.R if iterations == 0 else None  # exact while x is still x0
        converged, residual, reason = verdict(
            op, rhs, X, threshold, rnorm <= threshold, reason, known=start_residual
        )
        return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)


def _bicgstab_column(
    s: Start,
    mv: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    identity: bool,
    callback: Callable[[torch.Tensor], Any] | None,
) -> tuple[int, str, bool]:
    """The iterations of :func:`bicgstab` for one right-hand side on the CPU: the block
    iteration's recurrence, restarts and breakdown handling with Python-float scalars and
    fused ``torch.add(alpha=)`` updates on 1-D vectors (x updated in place in ``s.X``).
    Returns ``(iterations, reason, recurrence converged)``."""
    rhs = s.rhs

    def precond(v: torch.Tensor) -> torch.Tensor:
        return v if identity else s.precond(v.view(-1, 1)).reshape(-1)

    x, r = s.X.view(-1), s.R.view(-1)  # s.R is read only when no iteration ran
    r_hat = r.clone()
    threshold = float(s.threshold)
    rnorm = norm_of(r)
    active = rnorm > threshold
    p, v = torch.zeros_like(x), torch.zeros_like(x)
    s_, t, r_next = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    rho_old = alpha = omega = 1.0
    eps = torch.finfo(x.dtype).eps
    rhat_norm = norm_of(r_hat)  # changes only on a restart
    restart = False
    restarts = 0
    reason = "maxiter"
    iterations = 0
    while iterations < s.maxiter and active:
        rho = float(torch.dot(r_hat, r))
        # rho ~ 0: restart with r̂ = r rather than divide by it
        restart = restart or abs(rho) <= eps * rhat_norm * rnorm
        if restart:
            restarts += 1
            if restarts > _MAX_RESTARTS:
                reason = f"breakdown: ρ = 0 or ω = 0 after {_MAX_RESTARTS} restarts"
                active = False
            r_hat.copy_(r)
            rhat_norm = norm_of(r_hat)
            p.zero_()
            v.zero_()
            rho_old = alpha = omega = 1.0
            rho = rnorm * rnorm
        # p = r + beta (p - omega v), in place
        beta = ieee_div(rho, rho_old) * ieee_div(alpha, omega) if active else 0.0
        p.add_(v, alpha=-omega)
        torch.add(r, p, alpha=beta, out=p)
        p_hat = precond(p)
        mv(p_hat, v)
        rv = float(torch.dot(r_hat, v))
        stalled = active and not abs(rv) > 0  # r̂ ⟂ v: no step this iteration, restart
        step = active and not stalled
        alpha = rho / rv if step else 1.0
        alpha_x = alpha if step else 0.0  # no step: x and r stay
        torch.add(r, v, alpha=-alpha_x, out=s_)
        snorm = norm_of(s_)
        # the residual s is already small: stop here, with x + alpha p̂
        full = step and not snorm <= threshold
        if full:
            s_hat = precond(s_)
            mv(s_hat, t)
            tt = float(torch.dot(t, t))
            omega = float(torch.dot(t, s_)) / tt if tt > 0 else 0.0
            torch.add(s_, t, alpha=-omega, out=r_next)
        else:  # no product with s (SciPy makes none either)
            s_hat, omega = s_, 0.0
            r_next.copy_(s_)
        rnorm_new = norm_of(r_next)
        update = step and math.isfinite(rnorm_new)
        # the common case: no stall, the new residual, p̂ and ŝ finite
        check = rnorm_new + float(torch.dot(p_hat, p_hat))
        check += snorm if identity else float(torch.dot(s_hat, s_hat))
        if not stalled and math.isfinite(check):
            x.add_(p_hat, alpha=alpha_x).add_(s_hat, alpha=omega)
            r, r_next = r_next, r
        else:
            if step and not update:
                reason = "breakdown: non-finite residual"
            if update:
                x.add_(p_hat, alpha=alpha_x).add_(s_hat, alpha=omega)
                r.copy_(r_next)
        if update:
            rnorm = rnorm_new
        active = active and (update or stalled) and rnorm > threshold
        # omega = 0 cannot start the next step (beta divides by it): restart
        restart = stalled or (full and omega == 0)
        if active:
            rho_old = rho
            omega = omega if omega != 0 else 1.0
        else:
            rho_old, alpha, omega = 1.0, 1.0, 1.0
        iterations += 1
        if callback is not None:
            callback(rhs.user(s.X.clone()))
    return iterations, reason, rnorm <= threshold
