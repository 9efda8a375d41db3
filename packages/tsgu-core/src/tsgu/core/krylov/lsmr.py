"""LSMR for least-squares problems ``min ||A x - b||`` (and square systems)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch

from ..validation import check_tolerance
from ._common import (
    LinearOperator,
    Operator,
    RightHandSide,
    check_system,
    default_maxiter,
    finish,
    ieee_div,
    norm_of,
    per_column,
    single_column,
)

__all__ = ["lsmr"]


def lsmr(
    A: Operator,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    damp: float = 0.0,
    atol: float = 1e-6,
    btol: float = 1e-6,
    conlim: float = 1e8,
    maxiter: int | None = None,
    rmatvec: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: Callable[[torch.Tensor], Any] | None = None,
    return_info: bool = False,
) -> Any:
    """Solve ``min ||A x - b||`` (or ``min ||A x - b||² + damp² ||x||²``) by LSMR.

    Fong and Saunders (2011), "LSMR: An iterative algorithm for sparse least-squares
    problems": MINRES applied to the normal equations through Golub–Kahan
    bidiagonalisation, without forming ``Aᵀ A``. For a consistent system it returns the
    solution; for an underdetermined one, from ``x0 = 0``, the minimum-norm solution.

    Parameters
    ----------
    A : torch.Tensor or callable
        Sparse COO/CSR or dense ``(m, n)`` or ``(b, m, n)``, or a callable ``A(x)`` (then
        ``rmatvec``, computing ``Aᵀ y``, is required).
    b : torch.Tensor
        ``(m,)``, ``(m, k)``, or ``(b, m)``/``(b, m, k)`` for a batched ``A``.
    x0 : torch.Tensor, optional
        Initial guess, ``n`` rows (default zeros).
    damp : float
        Damping (Tikhonov) factor.
    atol, btol : float
        SciPy's stopping tolerances: stop when ``||r|| <= btol ||b|| + atol ||A|| ||x||``
        (a consistent system) or ``||Aᵀ r|| <= atol ||A|| ||r||`` (a least-squares
        solution).
    conlim : float
        Stop when the estimate of ``cond(A)`` exceeds it (reported as not converged).
    maxiter : int, optional
        Default ``min(m, n)``, as SciPy.
    rmatvec : callable, optional
        ``Aᵀ y`` for a callable ``A``.
    callback : callable, optional
        Called as ``callback(x)`` after every iteration.
    return_info : bool
        Also return a :class:`SolveInfo` (``residual_norm``: the true ``||b - A x||``).

    Returns
    -------
    x : torch.Tensor
        ``(n,)``, ``(n, k)`` or batched.
    info : SolveInfo
        Only with ``return_info=True``: ``residual_norm`` is the true ``||b - A x||`` and
        ``converged`` applies SciPy's tests 1 and 2 to the true residual (and ``Aᵀ r``).

    Warns
    -----
    ConvergenceWarning
        When a column stops on ``maxiter`` or ``conlim``, or its true residual fails the
        tests.

    Raises
    ------
    TypeError, ValueError
        As in :func:`tsgu.core.cg`; a callable ``A`` without ``rmatvec``; a NaN or
        negative ``atol``, ``btol`` or ``conlim``; a non-finite ``damp``.

    Notes
    -----
    Follows ``scipy.sparse.linalg.lsmr`` (same tolerances and stopping rules), for blocks
    of right-hand sides (each column with its own scalars) and batches of matrices.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import lsmr
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    >>> b = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    >>> lsmr(A.to_sparse_csr(), b, atol=1e-12, btol=1e-12)
    tensor([1.3333, 2.3333], dtype=torch.float64)
    """
    with torch.no_grad():  # no graph through the iterations
        fn = "lsmr"
        atol = check_tolerance(fn, "atol", atol)
        btol = check_tolerance(fn, "btol", btol)
        conlim = check_tolerance(fn, "conlim", conlim)
        damp = _check_damp(fn, damp)
        op = LinearOperator(fn, A, rmatvec)
        rhs = RightHandSide(fn, b, op)
        if op.shape == () and rmatvec is None:
            raise ValueError(f"{fn}: a callable A needs rmatvec (computing A^T y)")
        check_system(fn, op, rhs, x0, square=False)
        B = rhs.block

        U = B - op.matvec(rhs.canonical(x0.detach())) if x0 is not None else B.clone()
        beta = rhs.norms(U)
        U = U / per_column(torch.where(beta > 0, beta, 1.0))
        Vv = op.rmatvec(U)
        n = Vv.shape[-2]
        maxiter = default_maxiter(maxiter, min(rhs.n, n), lambda k: k, fn)
        X = torch.zeros_like(Vv) if x0 is None else rhs.canonical(x0.detach()).clone()
        alpha = rhs.norms(Vv)
        Vv = Vv / per_column(torch.where(alpha > 0, alpha, 1.0))

        mv, rmv = op.vector_product(), op.vector_product(transposed=True)
        if mv is not None and rmv is not None and single_column(X, U, Vv):
            X, iterations, normA2, converged, active, ill = _lsmr_column(
                rhs,
                mv,
                rmv,
                U,
                Vv,
                X,
                float(alpha),
                float(beta),
                damp,
                atol,
                btol,
                conlim,
                maxiter,
                callback,
            )
        else:
            X, iterations, normA2, converged, active, ill = _lsmr_block(
                op, rhs, U, Vv, X, alpha, beta, damp, atol, btol, conlim, maxiter, callback
            )
        if bool(ill.any()):
            reason = "cond(A) exceeds conlim"
        elif bool((~converged & ~active).any()):  # stopped neither converged nor by maxiter
            reason = "breakdown: non-finite iterate"
        else:
            reason = "maxiter"
        # The verdict: SciPy's tests 1 and 2 on the true residual of the returned x.
        true_converged, residual = _true_tests(op, rhs, X, damp, atol, btol, torch.sqrt(normA2))
        if bool((converged & ~true_converged).any()):
            reason = (
                "breakdown: the recurrence reached the tolerance but the true residual "
                "did not (A is singular or too ill-conditioned)"
            )
        return finish(fn, rhs, X, true_converged, iterations, residual, reason, return_info)


def _lsmr_block(
    op: LinearOperator,
    rhs: RightHandSide,
    U: torch.Tensor,
    Vv: torch.Tensor,
    X: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    damp: float,
    atol: float,
    btol: float,
    conlim: float,
    maxiter: int,
    callback: Callable[[torch.Tensor], Any] | None,
) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The iterations of :func:`lsmr` on a block, with per-column tensor scalars. Returns
    ``(x, iterations, ||A||² estimate, converged, active, ill)``."""
    one = torch.ones_like(beta)
    zero = torch.zeros_like(beta)
    # Bidiagonalisation and rotation state (Fong & Saunders, Algorithm 1).
    zetabar, alphabar = alpha * beta, alpha.clone()
    rho, rhobar, cbar, sbar = one.clone(), one.clone(), one.clone(), zero.clone()
    Hh, Hbar = Vv.clone(), torch.zeros_like(Vv)
    # Estimates of ||r||, ||A||, cond(A) (Fong & Saunders, section 4).
    betadd, betad, rhodold, tautildeold, thetatilde, zeta, d = (
        beta.clone(),
        zero.clone(),
        one.clone(),
        zero.clone(),
        zero.clone(),
        zero.clone(),
        zero.clone(),
    )
    normA2 = alpha**2
    maxrbar, minrbar = zero.clone(), torch.full_like(beta, torch.finfo(beta.dtype).max)
    normb = beta.clone()
    normr = beta.clone()
    normar = alpha * beta
    ctol = 1.0 / conlim if conlim > 0 else 0.0
    # A zero b or a zero Aᵀ b: x = 0 solves it.
    active = normar > 0
    converged = ~active
    ill = torch.zeros_like(active)
    iterations = 0
    # In place, into buffers made once (u and its spare, x and the next x); a user's
    # A(x) or rmatvec(y) may return its argument, so their results are copied first.
    U_spare, X_next = torch.empty_like(U), torch.empty_like(X)
    own = op.is_callable
    while iterations < maxiter and bool(active.any()):
        iterations += 1
        U_next = op.matvec(Vv, out=U_spare)
        U_next = U_next.clone() if own else U_next
        U, U_spare = U_next.addcmul_(per_column(alpha), U, value=-1.0), U
        beta = rhs.norms(U)
        U = U.div_(per_column(torch.where(beta > 0, beta, 1.0)))
        V_next = op.rmatvec(U)
        V_next = V_next.clone() if own else V_next
        Vv = V_next.addcmul_(per_column(beta), Vv, value=-1.0)
        alpha = rhs.norms(Vv)
        Vv = Vv.div_(per_column(torch.where(alpha > 0, alpha, 1.0)))

        alphahat = torch.hypot(alphabar, torch.full_like(alphabar, damp))
        chat = alphabar / alphahat
        shat = damp / alphahat
        rhoold = rho
        rho = torch.hypot(alphahat, beta)
        c, s = alphahat / rho, beta / rho
        thetanew = s * alpha
        alphabar = c * alpha
        rhobarold, zetaold = rhobar, zeta
        thetabar = sbar * rho
        rhotemp = cbar * rho
        rhobar = torch.hypot(cbar * rho, thetanew)
        cbar = cbar * rho / rhobar
        sbar = thetanew / rhobar
        zeta = cbar * zetabar
        zetabar = -sbar * zetabar

        c_bar = per_column(thetabar * rho / (rhoold * rhobarold))
        Hbar = torch.addcmul(Hh, c_bar, Hbar, value=-1.0, out=Hbar)
        step = per_column(torch.where(active, zeta / (rho * rhobar), 0.0))
        X_next = torch.addcmul(X, step, Hbar, out=X_next)
        Hh = torch.addcmul(Vv, per_column(thetanew / rho), Hh, value=-1.0, out=Hh)

        betaacute = chat * betadd
        betacheck = -shat * betadd
        betahat = c * betaacute
        betadd = -s * betaacute
        thetatildeold = thetatilde
        rhotildeold = torch.hypot(rhodold, thetabar)
        ctildeold = rhodold / rhotildeold
        stildeold = thetabar / rhotildeold
        thetatilde = stildeold * rhobar
        rhodold = ctildeold * rhobar
        betad = -stildeold * betad + ctildeold * betahat
        tautildeold = (zetaold - thetatildeold * tautildeold) / rhotildeold
        taud = (zeta - thetatilde * tautildeold) / rhodold
        d = d + betacheck**2
        normr_new = torch.sqrt(d + (betad - taud) ** 2 + betadd**2)
        normA2 = normA2 + beta**2
        normA = torch.sqrt(normA2)
        normA2 = normA2 + alpha**2
        maxrbar = torch.maximum(maxrbar, rhobarold)
        if iterations > 1:
            minrbar = torch.minimum(minrbar, rhobarold)
        condA = torch.maximum(maxrbar, rhotemp) / torch.minimum(minrbar, rhotemp)

        xnorm = rhs.norms(X_next)
        # The common case, in one sync: everything finite, so a frozen column's zero
        # step leaves its x as it is.
        if math.isfinite(float((normr_new + xnorm).sum())):
            update = active
            X, X_next, normx = X_next, X, xnorm
        else:
            finite = torch.isfinite(normr_new) & torch.isfinite(X_next).all(dim=-2)
            update = active & finite
            X = torch.where(per_column(update), X_next, X)
            X_next = torch.empty_like(X)
            normx = rhs.norms(X)
        normr = torch.where(update, normr_new, normr)
        normar = torch.where(update, zetabar.abs(), normar)
        # SciPy's tests: 1 a consistent system, 2 a least-squares solution, 3 cond(A).
        test1 = normr / normb
        test2 = normar / torch.where(normA * normr > 0, normA * normr, 1.0)
        test3 = 1.0 / condA
        rtol1 = btol + atol * normA * normx / normb
        t1 = test1 / (1 + normA * normx / normb)
        stop_ok = (test1 <= rtol1) | (test2 <= atol) | (1 + t1 <= 1) | (1 + test2 <= 1)
        stop_ok = stop_ok | (normA * normr == 0)
        stop_ill = (test3 <= ctol) | (1 + test3 <= 1)
        converged = converged | (update & stop_ok)
        ill = ill | (update & ~stop_ok & stop_ill)
        active = update & ~stop_ok & ~stop_ill
        if callback is not None:
            callback(rhs.user(X.clone()))  # x is updated in place after the call
    return X, iterations, normA2, converged, active, ill


def _max(a: float, b: float) -> float:
    """``torch.maximum`` on floats: NaN wins."""
    return a if a != a or a >= b else b


def _min(a: float, b: float) -> float:
    """``torch.minimum`` on floats: NaN wins."""
    return a if a != a or a <= b else b


def _lsmr_column(
    rhs: RightHandSide,
    mv: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    rmv: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    U: torch.Tensor,
    Vv: torch.Tensor,
    X: torch.Tensor,
    alpha: float,
    beta: float,
    damp: float,
    atol: float,
    btol: float,
    conlim: float,
    maxiter: int,
    callback: Callable[[torch.Tensor], Any] | None,
) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The iterations of :func:`lsmr` for one right-hand side on the CPU: the block
    iteration's recurrences and SciPy's stopping tests with Python-float scalars (some 80
    one-element tensor ops an iteration there) and fused ``torch.add(alpha=)`` updates on
    1-D vectors. Returns what :func:`_lsmr_block` does."""
    div = ieee_div
    u, v, x = U.view(-1), Vv.view(-1), X.view(-1)
    u_spare, v_spare, x_next = torch.empty_like(u), torch.empty_like(v), torch.empty_like(x)

    # Bidiagonalisation and rotation state (Fong & Saunders, Algorithm 1).
    zetabar, alphabar = alpha * beta, alpha
    rho, rhobar, cbar, sbar = 1.0, 1.0, 1.0, 0.0
    h, hbar = v.clone(), torch.zeros_like(v)
    # Estimates of ||r||, ||A||, cond(A) (Fong & Saunders, section 4).
    betadd, betad, rhodold, tautildeold, thetatilde, zeta, d = beta, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0
    normA2 = alpha * alpha
    maxrbar, minrbar = 0.0, float(torch.finfo(X.dtype).max)
    normb = normr = beta
    normar = alpha * beta
    normx = 0.0
    ctol = 1.0 / conlim if conlim > 0 else 0.0
    active = normar > 0  # a zero b or a zero Aᵀ b: x = 0 solves it
    converged = not active
    ill = False
    iterations = 0
    while iterations < maxiter and active:
        iterations += 1
        mv(v, u_spare)
        u_spare.add_(u, alpha=-alpha)
        u, u_spare = u_spare, u
        beta = norm_of(u)
        u.div_(beta if beta > 0 else 1.0)
        rmv(u, v_spare)
        v_spare.add_(v, alpha=-beta)
        v, v_spare = v_spare, v
        alpha = norm_of(v)
        v.div_(alpha if alpha > 0 else 1.0)

        alphahat = math.hypot(alphabar, damp)
        chat = div(alphabar, alphahat)
        shat = div(damp, alphahat)
        rhoold = rho
        rho = math.hypot(alphahat, beta)
        c, s = div(alphahat, rho), div(beta, rho)
        thetanew = s * alpha
        alphabar = c * alpha
        rhobarold, zetaold = rhobar, zeta
        thetabar = sbar * rho
        rhotemp = cbar * rho
        rhobar = math.hypot(cbar * rho, thetanew)
        cbar = div(cbar * rho, rhobar)
        sbar = div(thetanew, rhobar)
        zeta = cbar * zetabar
        zetabar = -sbar * zetabar

        torch.add(h, hbar, alpha=-div(thetabar * rho, rhoold * rhobarold), out=hbar)
        torch.add(x, hbar, alpha=div(zeta, rho * rhobar), out=x_next)
        torch.add(v, h, alpha=-div(thetanew, rho), out=h)

        betaacute = chat * betadd
        betacheck = -shat * betadd
        betahat = c * betaacute
        betadd = -s * betaacute
        thetatildeold = thetatilde
        rhotildeold = math.hypot(rhodold, thetabar)
        ctildeold = div(rhodold, rhotildeold)
        stildeold = div(thetabar, rhotildeold)
        thetatilde = stildeold * rhobar
        rhodold = ctildeold * rhobar
        betad = -stildeold * betad + ctildeold * betahat
        tautildeold = div(zetaold - thetatildeold * tautildeold, rhotildeold)
        taud = div(zeta - thetatilde * tautildeold, rhodold)
        d = d + betacheck * betacheck
        normr_new = math.sqrt(d + (betad - taud) * (betad - taud) + betadd * betadd)
        normA2 = normA2 + beta * beta
        normA = math.sqrt(normA2)
        normA2 = normA2 + alpha * alpha
        maxrbar = _max(maxrbar, rhobarold)
        if iterations > 1:
            minrbar = _min(minrbar, rhobarold)
        condA = div(_max(maxrbar, rhotemp), _min(minrbar, rhotemp))

        xnorm = norm_of(x_next)
        update = math.isfinite(normr_new + xnorm)
        if update:
            x, x_next, normx = x_next, x, xnorm
        else:
            update = math.isfinite(normr_new) and bool(torch.isfinite(x_next).all())
            if update:
                x, x_next = x_next, x
            normx = norm_of(x)
        if update:
            normr = normr_new
            normar = abs(zetabar)
        # SciPy's tests: 1 a consistent system, 2 a least-squares solution, 3 cond(A).
        test1 = div(normr, normb)
        test2 = div(normar, normA * normr if normA * normr > 0 else 1.0)
        test3 = div(1.0, condA)
        rtol1 = btol + div(atol * normA * normx, normb)
        t1 = div(test1, 1 + div(normA * normx, normb))
        stop_ok = (
            test1 <= rtol1 or test2 <= atol or 1 + t1 <= 1 or 1 + test2 <= 1 or normA * normr == 0
        )
        stop_ill = test3 <= ctol or 1 + test3 <= 1
        converged = converged or (update and stop_ok)
        ill = ill or (update and not stop_ok and stop_ill)
        active = update and not stop_ok and not stop_ill
        if callback is not None:
            callback(rhs.user(x.view(-1, 1).clone()))

    def flag(value: bool) -> torch.Tensor:
        return torch.tensor([value], device=X.device)

    normA2_t = torch.tensor([normA2], dtype=X.dtype, device=X.device)
    return x.view(-1, 1), iterations, normA2_t, flag(converged), flag(active), flag(ill)


def _check_damp(fn: str, damp: object) -> float:
    if isinstance(damp, bool) or not isinstance(damp, numbers.Real):
        raise TypeError(f"{fn}: damp must be a real number, got {type(damp).__name__}")
    if not math.isfinite(damp):
        raise ValueError(f"{fn}: damp must be finite, got {damp!r}")
    return float(damp)


def _true_tests(
    op: LinearOperator,
    rhs: RightHandSide,
    X: torch.Tensor,
    damp: float,
    atol: float,
    btol: float,
    normA: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(converged, ||b - A x||)`` per column: SciPy's tests 1 (a consistent system) and 2
    (a least-squares solution) on the true (damped) residual; ``normA`` is LSMR's estimate."""
    R = rhs.block - op.matvec(X)
    normr = rhs.norms(R)
    normx = rhs.norms(X)
    normb = rhs.norms(rhs.block)
    AtR = op.rmatvec(R)
    if damp:
        AtR = AtR - damp**2 * X
        normr_damped = torch.sqrt(normr**2 + damp**2 * normx**2)
    else:
        normr_damped = normr
    normar = rhs.norms(AtR)
    eps = torch.finfo(X.dtype).eps
    consistent = normr_damped <= torch.clamp(btol * normb + atol * normA * normx, min=0) + eps * (
        normb + normA * normx
    )
    least_squares = normar <= max(atol, eps) * normA * normr_damped
    converged = torch.isfinite(X).all(dim=-2) & (consistent | least_squares | (normar == 0))
    return converged, normr
