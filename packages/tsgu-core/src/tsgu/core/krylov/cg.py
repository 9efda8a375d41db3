"""Preconditioned conjugate gradients for symmetric positive definite systems."""

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

__all__ = ["cg"]


def cg(
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
    """Solve ``A x = b`` for symmetric positive definite ``A`` by conjugate gradients.

    Hestenes and Stiefel (1952), preconditioned. Columns of a multi-RHS ``b`` (and items of
    a batched ``A``) iterate together with batched dot products; each column has its own
    step sizes and stopping test.

    Parameters
    ----------
    A : torch.Tensor or callable
        Sparse COO/CSR or dense ``(n, n)`` or ``(b, n, n)``, or a callable ``A(x)`` taking
        and returning tensors shaped like ``b``.
    b : torch.Tensor
        ``(n,)``, ``(n, k)``, or ``(b, n)``/``(b, n, k)`` for a batched ``A``.
    x0 : torch.Tensor, optional
        Initial guess shaped like ``b`` (default zeros).
    rtol, atol : float
        Stop a column when ``||r|| <= max(rtol * ||b||, atol)`` (SciPy's test); ``rtol``
        defaults to 1e-5, ``atol`` to 0. Non-negative numbers (NaN is an error).
    maxiter : int, optional
        Default ``10 * n``, as SciPy.
    M : torch.Tensor or callable, optional
        Preconditioner approximating ``A⁻¹`` (SPD): a tensor applied as ``M @ r`` or a
        callable ``M(r)``, e.g. from :func:`tsgu.core.jacobi` or :func:`tsgu.core.ic0`.
    callback : callable, optional
        Called as ``callback(x)`` after every iteration.
    return_info : bool
        Also return a :class:`SolveInfo`.
    tol : float, optional
        Old name of ``rtol`` (SciPy before 1.12, torchsparsegradutils 0.2's README); give
        one of the two.

    Returns
    -------
    x : torch.Tensor
        Shaped like ``b``.
    info : SolveInfo
        Only with ``return_info=True``.

    Warns
    -----
    ConvergenceWarning
        When a column has not converged after ``maxiter`` iterations, or when
        ``pᵀ A p <= 0`` (A is not positive definite): the iterations and the true residual
        ``||b - A x||`` are in the message, and x is the last finite iterate, never NaN.
        Convergence is judged on that true residual, never on the recurrence alone.

    Raises
    ------
    TypeError
        ``A``, ``b``, ``x0`` or ``M`` of the wrong type.
    ValueError
        Shapes, dtypes or devices that do not match (x0 and M included); a NaN or negative
        ``rtol``/``tol``/``atol``, both ``tol`` and ``rtol``, a negative ``maxiter``; a NaN or
        Inf in A, b or x0; a malformed sparse A (see
        :func:`tsgu.core.validation.check_sparse_structure`).

    Notes
    -----
    Like ``scipy.sparse.linalg.cg`` (same stopping test and defaults), but for blocks of
    right-hand sides and batches of matrices, on CPU or CUDA, and without gradients: use
    :func:`tsgu.core.sparse_generic_solve` with ``solve="cg"`` to differentiate a solve.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import cg, poisson_2d
    >>> A = poisson_2d(8)
    >>> b = torch.ones(64, dtype=torch.float64)
    >>> x, info = cg(A, b, rtol=1e-10, return_info=True)
    >>> info.converged, bool(torch.allclose(A @ x, b))
    (True, True)
    """
    with torch.no_grad():  # no graph through the iterations
        fn = "cg"
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
        X, R, threshold = s.X, s.R, s.threshold
        mv = op.vector_product()
        if mv is not None and single_column(X, R):
            iterations, reason, done = _cg_column(s, mv, M is None, callback)
            converged, residual, reason = column_verdict(s, X, iterations, reason, done)
            return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)
        rnorm = rhs.norms(R)
        active = rnorm > threshold
        Z = precond(R)
        P = Z.clone()
        rz = dot(R, Z)
        # In place: one product, two dots and three axpys an iteration, into buffers made
        # once; two host syncs (the loop test and the check below).
        AP_buffer, R_next = torch.empty_like(R), torch.empty_like(R)
        reason = "maxiter"
        iterations = 0
        while iterations < maxiter and bool(active.any()):
            AP = op.matvec(P, out=AP_buffer)
            pAp = dot(P, AP)
            positive = pAp > 0
            broken = active & ~positive
            alpha = torch.where(active & positive, rz / pAp, 0.0)
            step = per_column(alpha)
            R_next = torch.addcmul(R, step, AP, value=-1.0, out=R_next)
            rnorm_new = rhs.norms(R_next)
            # The common case, in one sync: no column broke down, and p, Ap and the new
            # residual are finite in every column (a finite pᵀAp needs finite p and Ap), so
            # a frozen column's zero step leaves its x and r as they are.
            if math.isfinite(float(torch.where(broken, math.inf, rnorm_new + pAp).sum())):
                X.addcmul_(step, P)
                R, R_next = R_next, R
            else:
                if bool(broken.any()):
                    reason = "breakdown: pᵀAp <= 0 (A or M is not positive definite)"
                    active = active & ~broken
                finite = torch.isfinite(rnorm_new)
                if not bool(finite.all()):
                    reason = "breakdown: non-finite residual"
                    active = active & finite
                keep = per_column(active)
                X = torch.where(keep, X + step * P, X)
                R = torch.where(keep, R_next, R)
                R_next = torch.empty_like(R)
            rnorm = torch.where(active, rnorm_new, rnorm)
            active = active & (rnorm > threshold)
            Z = precond(R)
            rz_new = dot(R, Z)
            beta = torch.where(active, rz_new / rz, 0.0)
            P = torch.addcmul(Z, per_column(beta), P, out=P)  # p = z + beta p
            rz = rz_new
            iterations += 1
            if callback is not None:
                callback(rhs.user(X.clone()))  # x is updated in place after the call
        # The verdict: the true residual of the returned x, never the recurrence alone.
        start_residual = s.R if iterations == 0 else None  # exact while x is still x0
        converged, residual, reason = verdict(
            op, rhs, X, threshold, rnorm <= threshold, reason, known=start_residual
        )
        return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)


_NOT_SPD = "breakdown: pᵀAp <= 0 (A or M is not positive definite)"
_NOT_FINITE = "breakdown: non-finite residual"


def _cg_column(
    s: Start,
    mv: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    identity: bool,
    callback: Callable[[torch.Tensor], Any] | None,
) -> tuple[int, str, bool]:
    """The iterations of :func:`cg` for one right-hand side on the CPU, with Python scalars.

    The same recurrence, stopping test and breakdown handling as the block iteration (x is
    updated in place in ``s.X``): one product, two dots and three fused axpys an iteration
    (without M the residual norm is the square root of ``rᵀr``, which the next step needs
    anyway). Returns ``(iterations, reason, recurrence converged)``.
    """
    rhs, precond = s.rhs, s.precond
    x, r = s.X.view(-1), s.R.view(-1)  # s.R is read only when no iteration ran
    threshold = float(s.threshold)
    rnorm = norm_of(r)
    active = rnorm > threshold
    z = r if identity else precond(r.view(-1, 1)).reshape(-1)
    rz = float(torch.dot(r, z))
    p = z.clone()
    ap, r_next = torch.empty_like(r), torch.empty_like(r)
    reason = "maxiter"
    iterations = 0
    while iterations < s.maxiter and active:
        mv(p, ap)
        pAp = float(torch.dot(p, ap))
        if pAp > 0:
            alpha = rz / pAp
            torch.add(r, ap, alpha=-alpha, out=r_next)
            if identity:
                rr = float(torch.dot(r_next, r_next))
                rnorm_new = math.sqrt(rr) if math.isfinite(rr) else norm_of(r_next)
            else:
                rnorm_new = norm_of(r_next)
            finite = math.isfinite(rnorm_new)
        else:  # not positive (or NaN): no step; the residual stays r - 0·Ap
            reason, active = _NOT_SPD, False
            finite = bool(torch.isfinite(ap).all())
        if not finite:
            reason, active = _NOT_FINITE, False
        if active:
            x.add_(p, alpha=alpha)
            r, r_next = r_next, r
            rnorm = rnorm_new
            active = rnorm > threshold
            if active:
                if identity:
                    z, rz_new = r, rr
                else:
                    z = precond(r.view(-1, 1)).reshape(-1)
                    rz_new = float(torch.dot(r, z))
                torch.add(z, p, alpha=ieee_div(rz_new, rz), out=p)  # p = z + beta p
                rz = rz_new
        iterations += 1
        if callback is not None:
            callback(rhs.user(s.X.clone()))
    return iterations, reason, rnorm <= threshold
