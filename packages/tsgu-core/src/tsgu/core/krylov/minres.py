"""MINRES for symmetric (possibly indefinite) systems."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._common import (
    Operator,
    Start,
    dot,
    finish,
    norm_of,
    per_column,
    single_column,
    start,
    verdict,
)

__all__ = ["minres"]

# The single-column step's bounds on ||u|| and ||x|| (see _minres_column): a margin for the
# rounding of the products and sums they bound (relative n u at worst, far below 1%), and
# the bound on ||x_next|| below which x_next is certainly finite.
_MARGIN = 1.01
_CERTAIN = 1e300


def minres(
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
    """Solve ``A x = b`` for symmetric ``A`` (definite or indefinite) by MINRES.

    Paige and Saunders (1975), "Solution of sparse indefinite systems of linear
    equations": Lanczos tridiagonalisation with a QR update that minimises ``||r||`` over
    the Krylov space.

    Parameters
    ----------
    A, b, x0, rtol, atol, callback, return_info, tol
        As in :func:`tsgu.core.cg`; ``A`` must be symmetric (not necessarily definite).
    maxiter : int, optional
        Default ``5 * n``, as SciPy.
    M : torch.Tensor or callable, optional
        Symmetric positive definite preconditioner approximating ``A⁻¹``.

    Returns
    -------
    x : torch.Tensor
        Shaped like ``b``.
    info : SolveInfo
        Only with ``return_info=True``; ``residual_norm`` is the true ``||b - A x||``.
        ``converged`` tests the true residual in the norm of the stopping test (M's when
        preconditioned).

    Warns
    -----
    ConvergenceWarning
        When a column has not converged; x is then the last finite iterate.

    Raises
    ------
    TypeError, ValueError
        As in :func:`tsgu.core.cg`; also when ``M`` is not positive definite.

    Notes
    -----
    Stops a column when the residual estimate falls to ``max(rtol * ||b||, atol)``, the
    test of :func:`tsgu.core.cg`. ``scipy.sparse.linalg.minres`` stops earlier, on
    ``||r|| <= rtol (||A|| ||x|| + ||b||)``; give a smaller ``rtol`` here for the same
    final residual. Columns of a multi-RHS ``b`` iterate together.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import minres
    >>> A = torch.tensor([[1.0, 2.0], [2.0, -3.0]], dtype=torch.float64)  # indefinite
    >>> x = minres(A, torch.tensor([5.0, -4.0], dtype=torch.float64), rtol=1e-12)
    >>> x
    tensor([1., 2.], dtype=torch.float64)
    """
    with torch.no_grad():  # no graph through the iterations
        fn = "minres"
        s = start(
            fn,
            A,
            b,
            x0,
            rtol=rtol,
            atol=atol,
            tol=tol,
            maxiter=maxiter,
            default_maxiter_of_n=lambda n: 5 * n,
            M=M,
        )
        op, rhs, precond, maxiter = s.op, s.rhs, s.precond, s.maxiter
        B, X, R1 = s.rhs.block, s.X, s.R
        Y = precond(R1)
        beta1_sq = dot(R1, Y)
        if bool((beta1_sq < 0).any()):
            raise ValueError(f"{fn}: M must be positive definite (found rᵀ M r < 0)")
        beta1 = torch.sqrt(beta1_sq)
        threshold = torch.clamp(s.rtol * torch.sqrt(dot(B, precond(B))), min=atol)
        phibar = beta1.clone()
        active = phibar > threshold
        K = op.single_matrix()
        if K is not None and single_column(X, Y, R1) and bool(active):
            X, phibar, iterations, reason = _minres_column(
                X, R1, Y, float(beta1), float(threshold), K, M is None, maxiter, s, callback
            )
        else:
            X, phibar, iterations, reason = _minres_block(
                X, R1, Y, beta1, threshold, phibar, active, s, callback
            )

        # The verdict: the true residual of the returned x, in the norm of the stopping test
        # (M's, the 2-norm without M); an exhausted Krylov space ends a column there too.
        def m_norm(R: torch.Tensor) -> torch.Tensor:
            return torch.sqrt(torch.clamp(dot(R, precond(R)), min=0.0))

        converged, residual, reason = verdict(
            op,
            rhs,
            X,
            threshold,
            phibar <= threshold,
            reason,
            measure=m_norm,
            known=s.R if iterations == 0 else None,  # exact while x is still x0
        )
        return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)


def _minres_block(
    X: torch.Tensor,
    R1: torch.Tensor,
    Y: torch.Tensor,
    beta1: torch.Tensor,
    threshold: torch.Tensor,
    phibar: torch.Tensor,
    active: torch.Tensor,
    s: Start,
    callback: Callable[[torch.Tensor], Any] | None,
) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """The iterations of :func:`minres` on a block (columns and batch items together), with
    per-column tensor scalars. Returns ``(x, phibar, iterations, reason)``."""
    op, rhs, precond, maxiter, B = s.op, s.rhs, s.precond, s.maxiter, s.rhs.block
    safe = torch.ones_like(beta1)
    zeros = torch.zeros_like(beta1)
    tiny = torch.finfo(B.dtype).eps

    R2 = R1.clone()
    W = torch.zeros_like(B)
    W2 = torch.zeros_like(B)
    # Buffers made once: v, the product (it becomes r2; the old r1 becomes the next
    # product's buffer) and the next x.
    V, AV, X_next = torch.empty_like(B), torch.empty_like(B), torch.empty_like(B)
    beta, oldb = beta1.clone(), zeros.clone()
    dbar, epsln = zeros.clone(), zeros.clone()
    cs, sn = -torch.ones_like(beta1), zeros.clone()
    reason = "maxiter"
    iterations = 0
    while iterations < maxiter and bool(active.any()):
        # Lanczos step: v = y / beta; y = A v - (beta/oldb) r1 - (alfa/beta) r2
        inv_beta = 1.0 / torch.where(beta > 0, beta, safe)
        V = torch.mul(Y, per_column(inv_beta), out=V)
        AV = op.matvec(V, out=AV)
        if iterations > 0:
            AV = AV.addcmul_(per_column(beta / torch.where(oldb > 0, oldb, safe)), R1, value=-1.0)
        alfa = dot(V, AV)
        AV = AV.addcmul_(per_column(alfa * inv_beta), R2, value=-1.0)
        R1, R2, AV = R2, AV, R1
        Y = precond(R2)
        oldb = beta
        beta_sq = dot(R2, Y)
        beta = torch.sqrt(torch.clamp(beta_sq, min=0.0))
        # QR step: the previous rotation on the new column, then a new rotation.
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = torch.clamp(torch.hypot(gbar, beta), min=tiny)
        cs = gbar / gamma
        sn = beta / gamma
        phi = cs * phibar
        phibar_new = sn * phibar
        # w = (v - oldeps w1 - delta w2) / gamma, into the oldest w's storage
        W1, W2 = W2, W
        W = torch.addcmul(V, per_column(oldeps), W1, value=-1.0, out=W1)
        W = W.addcmul_(per_column(delta), W2, value=-1.0).mul_(per_column(1.0 / gamma))
        X_next = torch.addcmul(X, per_column(torch.where(active, phi, 0.0)), W, out=X_next)
        xnorm = rhs.norms(X_next)
        # The common case, in one sync: everything finite, so a frozen column's zero
        # step leaves its x as it is.
        if math.isfinite(float((phibar_new + xnorm).sum())):
            update = active
            X, X_next = X_next, X
        else:
            finite = torch.isfinite(phibar_new) & torch.isfinite(X_next).all(dim=-2)
            if bool((active & ~finite).any()):
                reason = "breakdown: non-finite iterate"
            update = active & finite
            X = torch.where(per_column(update), X_next, X)
            X_next = torch.empty_like(X)
        phibar = torch.where(update, phibar_new, phibar)
        # beta = 0: the Krylov space is exhausted and the solution exact.
        active = update & (phibar > threshold) & (beta > 0)
        iterations += 1
        if callback is not None:
            callback(rhs.user(X.clone()))  # x is updated in place after the call
    return X, phibar, iterations, reason


def _minres_column(
    X: torch.Tensor,
    R1: torch.Tensor,
    Y: torch.Tensor,
    beta: float,
    threshold: float,
    K: torch.Tensor,
    identity: bool,
    maxiter: int,
    s: Start,
    callback: Callable[[torch.Tensor], Any] | None,
) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """The iterations of :func:`minres` for one right-hand side on the CPU: the block
    iteration's recurrence with Python-float scalars and fused updates on 1-D vectors.

    ``v = y / beta`` is never formed: ``A v - (beta/oldb) r1`` is the product with y, then
    a scale and an axpy on the result, ``alfa = vᵀAv`` a dot with y, and w
    is kept as a float times a vector whose recurrence takes y as it is (``K``: the matrix, from
    :meth:`LinearOperator.single_matrix`). Returns ``(x, phibar, iterations, reason)``."""
    rhs, precond = s.rhs, s.precond
    tiny = torch.finfo(X.dtype).eps
    x = X.view(-1)
    r1 = R1.view(-1)
    y = Y.view(-1)
    r2 = r1.clone()
    # w is kept as scale * u (a Python float times a vector): the scale 1/(beta gamma) is
    # never applied to the vector, so w's recurrence is two fused passes, not three.
    u, u2 = torch.zeros_like(x), torch.zeros_like(x)
    scale = scale2 = 1.0
    av = torch.empty_like(x)
    x_next: torch.Tensor | None = None  # made where a step cannot be proven finite
    # x_next = x + step u is finite, by the triangle inequality, where the bound below on its
    # norm is under _CERTAIN (and phibar finite): then x is updated in place, with no pass
    # to check it and no second x in the caches. Without M the norm of y_old (r) is beta,
    # exact up to the rounding _MARGIN covers, so u_bound >= ||u|| and x_bound >= ||x||;
    # with M it is not known and every step takes the exact check, as before.
    u_bound = u2_bound = 0.0
    x_bound = norm_of(x) * _MARGIN if identity else math.inf
    phibar = beta
    oldb = dbar = epsln = sn = 0.0
    cs = -1.0
    active = True  # the caller checked phibar > threshold
    reason = "maxiter"
    iterations = 0
    while iterations < maxiter and active:
        # Lanczos step: v = y / beta; y = A v - (beta/oldb) r1 - (alfa/beta) r2
        beta_v = beta if beta > 0 else 1.0  # v = y / beta_v
        inv_beta = 1.0 / beta_v
        back = -(beta / (oldb if oldb > 0 else 1.0)) if iterations > 0 else 0.0
        # A v - (beta/oldb) r1 as the product, then a scale and an axpy on the (cached) result:
        # one sparse addmv with alpha and beta measured 5-13% slower for the whole solve
        torch.mv(K, y, out=av).mul_(inv_beta)
        if back != 0.0:
            av.add_(r1, alpha=back)
        alfa = float(torch.dot(y, av)) * inv_beta
        av.add_(r2, alpha=-(alfa * inv_beta))
        r1, r2, av = r2, av, r1
        # v = y_old / beta_old, for w below: r1's storage without M; with M a copy (an M
        # may hand back the same output buffer at every call)
        y_old = y if identity else y.clone()
        y = r2 if identity else precond(r2.view(-1, 1)).reshape(-1)
        oldb = beta
        beta_sq = float(torch.dot(r2, y))
        beta = math.sqrt(beta_sq) if beta_sq > 0 else (beta_sq if beta_sq != beta_sq else 0.0)
        # QR step: the previous rotation on the new column, then a new rotation.
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = math.hypot(gbar, beta)
        gamma = gamma if not gamma < tiny else tiny  # NaN stays NaN, as torch.clamp
        cs = gbar / gamma
        sn = beta / gamma
        phi = cs * phibar
        phibar_new = sn * phibar
        # w = (v - oldeps w1 - delta w2) / gamma with v = y_old / beta, into the oldest w's
        # storage: u = y_old - beta oldeps w1 - beta delta w2, w = u / (beta gamma)
        (u1, scale1, u1_bound), (u2, scale2, u2_bound) = (u2, scale2, u2_bound), (u, scale, u_bound)
        a, b = -oldeps * scale1 * beta_v, -delta * scale2 * beta_v
        u = torch.add(y_old, u1, alpha=a, out=u1)
        u.add_(u2, alpha=b)
        scale = inv_beta / gamma
        step = phi * scale
        u_bound = (oldb + abs(a) * u1_bound + abs(b) * u2_bound) * _MARGIN
        x_next_bound = (x_bound + abs(step) * u_bound) * _MARGIN
        if x_next_bound < _CERTAIN and math.isfinite(phibar_new):
            x.add_(u, alpha=step)  # certainly finite
            update = True
        else:
            if x_next is None:
                x_next = torch.empty_like(x)
            torch.add(x, u, alpha=step, out=x_next)
            # x_next finite? Its sum of squares (which overflows where its norm does)
            x_squared = float(torch.dot(x_next, x_next))
            update = math.isfinite(phibar_new + x_squared)
            if not update:
                update = math.isfinite(phibar_new) and bool(torch.isfinite(x_next).all())
                if not update:
                    reason = "breakdown: non-finite iterate"
            elif identity:  # the bounds afresh, from the exact norms
                x_next_bound = math.sqrt(x_squared) * _MARGIN
                u_bound = norm_of(u) * _MARGIN
            if update:
                x, x_next = x_next, x
        if update:
            x_bound = x_next_bound
            phibar = phibar_new
        # beta = 0: the Krylov space is exhausted and the solution exact.
        active = update and phibar > threshold and beta > 0
        iterations += 1
        if callback is not None:
            callback(rhs.user(x.view(-1, 1).clone()))
    return x.view(-1, 1), torch.tensor([phibar], dtype=X.dtype, device=X.device), iterations, reason
