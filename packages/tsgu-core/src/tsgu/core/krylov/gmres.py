"""Restarted GMRES for general square systems."""

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
    norm_of,
    per_column,
    single_column,
    start,
    verdict,
)

__all__ = ["gmres"]


def _safe(v: torch.Tensor) -> torch.Tensor:
    return torch.where(v > 0, v, torch.ones_like(v))


# Re-orthogonalise ("twice is enough") only where the first classical Gram-Schmidt pass
# left less than _ETA of the new vector w: ||w - V h|| < _ETA ||w||, h = Vᵀ w. The criterion
# is Daniel, Gragg, Kaufman and Stewart (1976), "Reorthogonalization and stable algorithms
# for updating the Gram-Schmidt QR factorization", Math. Comp. 30, 772-795. One pass leaves
# the new basis vector non-orthogonal by about u ||w|| / ||w - V h|| (u the unit roundoff),
# so a threshold _ETA bounds that loss by about u / _ETA at every step. Their 1/sqrt(2)
# (ARPACK's, SLEPc's) keeps it near u, but on a diagonally dominant operator, where A v
# stays close to v, the first pass leaves 0.4-0.5 of ||w|| at every step and the second pass
# ran always: twice the basis reads for no gain (benchmarks/krylov.py, convection-diffusion,
# measured). _ETA = 0.1 keeps the loss below about 10 u a step, orthogonal to working
# precision for the restart lengths GMRES uses, and re-orthogonalises where a pass cancels
# more than 90% of w, where the loss would grow; PETSc's GMRES default never re-orthogonalises.
# With ||w - V h||² = ||w||² - ||h||² (V orthonormal) the test reads
# ||h||² > (1 - _ETA²) ||w||², and ||w||² comes from the
# first pass's product itself: w is written as row j + 1 of the basis buffer and that
# row rides along, so the test costs no pass over w. It compares, never subtracts: no
# cancellation where the pass removed almost all of w (and then it re-orthogonalises).
_ETA = 0.1
_KEEP = 1 - _ETA * _ETA  # share of ||w||² whose projection onto the basis asks for a second pass


def gmres(
    A: Operator,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    restart: int = 20,
    maxiter: int | None = None,
    M: Operator | None = None,
    callback: Callable[[torch.Tensor], Any] | None = None,
    return_info: bool = False,
    tol: float | None = None,
) -> Any:
    """Solve ``A x = b`` for a general square ``A`` by restarted GMRES.

    Saad and Schultz (1986), "GMRES: a generalized minimal residual algorithm", with
    right preconditioning (``A M y = r``, ``x = x0 + M y``) so that the residual it
    monitors is the true one, classical Gram–Schmidt with a second pass where the first
    one cancelled most of the new vector (as stable as the modified form and a few batched
    operations per step), and Givens rotations per column.

    Parameters
    ----------
    A, b, x0, rtol, atol, M, return_info, tol
        As in :func:`tsgu.core.cg`; ``A`` need not be symmetric.
    restart : int
        Krylov vectors per cycle (default 20, as SciPy).
    maxiter : int, optional
        Restart cycles; default ``ceil(10 n / restart)``, about ``10 n`` inner iterations
        like the other solvers.
    callback : callable, optional
        Called as ``callback(x)`` after every restart cycle.

    Returns
    -------
    x : torch.Tensor
        Shaped like ``b``.
    info : SolveInfo
        Only with ``return_info=True``; ``iterations`` counts inner iterations and
        ``residual_norm`` is the true residual ``||b - A x||``.

    Warns
    -----
    ConvergenceWarning
        When a column has not converged after ``maxiter`` cycles.

    Raises
    ------
    TypeError, ValueError
        As in :func:`tsgu.core.cg`; also for ``restart < 1``.

    Notes
    -----
    Memory is ``restart + 1`` blocks of b's size. Unlike ``scipy.sparse.linalg.gmres``,
    a multi-RHS ``b`` is solved in one run, each column with its own Krylov space.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import gmres
    >>> A = torch.tensor([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    >>> x = gmres(A.to_sparse(), torch.tensor([4.0, 2.0, 5.0], dtype=torch.float64), rtol=1e-12)
    >>> x
    tensor([1., 1., 1.], dtype=torch.float64)
    """
    with torch.no_grad():  # no graph through the iterations
        fn = "gmres"
        if not isinstance(restart, int) or restart < 1:
            raise ValueError(f"{fn}: restart must be a positive int, got {restart!r}")
        s = start(
            fn,
            A,
            b,
            x0,
            rtol=rtol,
            atol=atol,
            tol=tol,
            maxiter=maxiter,
            # restart cycles: about 10 n inner iterations, like the other solvers
            default_maxiter_of_n=lambda n: math.ceil(10 * n / max(min(restart, n), 1)),
            M=M,
        )
        op, rhs, precond, maxiter = s.op, s.rhs, s.precond, s.maxiter
        restart = max(min(restart, rhs.n), 1)
        B, X, R, threshold = s.rhs.block, s.X, s.R, s.threshold
        if single_column(X, R):
            X, rnorm_column, iterations, reason = _gmres_column(s, restart, callback)
            reached = rnorm_column <= float(threshold)
            converged, residual, reason = column_verdict(s, X, iterations, reason, reached)
            return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)
        cols = B.shape[:-2] + B.shape[-1:]  # per-column scalar shape
        iterations = 0
        rnorm = rhs.norms(R)
        reason = "maxiter"
        # One column of an unbatched system: Gram-Schmidt as matrix-vector products over
        # the basis (BLAS, one pass each, no (j+1) x n temporaries).
        vector = B.dim() == 2 and B.shape[-1] == 1
        V = B.new_empty(restart + 1, *B.shape)  # every row used is written first
        Vm = V.view(restart + 1, -1) if vector else None
        for _ in range(maxiter):
            active = rnorm > threshold
            if not bool(active.any()):
                break
            V[0] = R / per_column(_safe(rnorm))
            H = B.new_zeros(restart + 1, restart, *cols)
            g = B.new_zeros(restart + 1, *cols)
            g[0] = rnorm
            cs = B.new_zeros(restart, *cols)
            sn = B.new_zeros(restart, *cols)
            done = ~active
            steps = 0
            for j in range(restart):  # inner iterations of one cycle
                # A M v_j straight into the next basis row (a copy where the kernel or a
                # user's A(x), which may return x itself, does not write there)
                W = op.matvec(precond(V[j]), out=V[j + 1])
                if W.data_ptr() != V[j + 1].data_ptr():
                    V[j + 1].copy_(W)
                W = V[j + 1]
                if Vm is not None:
                    basis, w = Vm[: j + 1], W[:, 0]
                    coef = torch.mv(Vm[: j + 2], w)  # Vᵀ w and, last, ||w||²
                    h = coef[:-1]
                    w.addmv_(basis.T, h, alpha=-1.0)
                    if bool(torch.dot(h, h) > _KEEP * coef[-1]):  # see _ETA
                        h2 = torch.mv(basis, w)  # second pass: re-orthogonalise
                        w.addmv_(basis.T, h2, alpha=-1.0)
                        h = h + h2
                    h = h.unsqueeze(-1)  # (j+1, 1)
                else:
                    basis = V[: j + 1]
                    coef = dot(V[: j + 2], W.unsqueeze(0))  # Vᵀ w and, last, ||w||²
                    h = coef[:-1]  # (j+1, *cols)
                    W -= (basis * h.unsqueeze(-2)).sum(0)
                    again = (h * h).sum(0) > _KEEP * coef[-1]  # per column (see _ETA)
                    if bool(again.any()):  # second pass, only for the columns that need it
                        h2 = torch.where(again, dot(basis, W.unsqueeze(0)), 0.0)
                        W -= (basis * h2.unsqueeze(-2)).sum(0)
                        h = h + h2
                h_next = rhs.norms(W)
                for i in range(j):  # earlier rotations on the new column (j small scalars)
                    top = cs[i] * h[i] + sn[i] * h[i + 1]
                    h[i + 1] = -sn[i] * h[i] + cs[i] * h[i + 1]
                    h[i] = top
                denom = _safe(torch.hypot(h[j], h_next))
                cs[j] = h[j] / denom
                sn[j] = h_next / denom
                h[j] = cs[j] * h[j] + sn[j] * h_next
                g_next = -sn[j] * g[j]
                g_j = cs[j] * g[j]
                # Columns already done contribute y_j = 0: a unit column with a zero target.
                unit = torch.zeros_like(h)
                unit[j] = 1.0
                H[: j + 1, j] = torch.where(done.unsqueeze(0), unit, h)
                g[j] = torch.where(done, 0.0, g_j)
                g[j + 1] = torch.where(done, 0.0, g_next)
                W.div_(per_column(_safe(h_next)))  # V[j + 1], in place
                done = done | (g_next.abs() <= threshold) | (h_next == 0)
                steps = j + 1
                iterations += 1
                if bool(done.all()):
                    break
            # y from the upper-triangular system of this cycle, per column.
            Hm = H[:steps, :steps].movedim(0, -1).movedim(0, -1)  # (*cols, steps, steps)
            gm = g[:steps].movedim(0, -1).unsqueeze(-1)  # (*cols, steps, 1)
            y = torch.linalg.solve_triangular(Hm, gm, upper=True).squeeze(-1).movedim(-1, 0)
            if Vm is not None:
                update = precond(torch.mv(Vm[:steps].T, y[:, 0]).unsqueeze(-1))
            else:
                update = precond((V[:steps] * y.unsqueeze(-2)).sum(0))
            X_new = X + update
            R_new = B - op.matvec(X_new)
            rnorm_new = rhs.norms(R_new)
            # x itself too: a matrix with no stored entries maps a NaN x to a finite residual
            ok = active & torch.isfinite(rnorm_new) & torch.isfinite(X_new).all(dim=-2)
            if bool((active & ~ok).any()):
                reason = "breakdown: non-finite iterate"
            X = torch.where(per_column(ok), X_new, X)
            R = torch.where(per_column(ok), R_new, R)
            rnorm = torch.where(ok, rnorm_new, rnorm)
            if callback is not None:
                callback(rhs.user(X))
            if not bool(ok.any()):
                break
        # The verdict: the true residual of the returned x, never the recurrence alone.
        start_residual = s.R if iterations == 0 else None  # exact while x is still x0
        converged, residual, reason = verdict(
            op, rhs, X, threshold, rnorm <= threshold, reason, known=start_residual
        )
        return finish(fn, rhs, X, converged, iterations, residual, reason, return_info)


def _gmres_column(
    s: Start, restart: int, callback: Callable[[torch.Tensor], Any] | None
) -> tuple[torch.Tensor, float, int, str]:
    """The restart cycles of :func:`gmres` for one right-hand side on the CPU: Gram-Schmidt
    as matrix-vector products over the basis (BLAS, one pass each), and the Hessenberg
    column, its Givens rotations and the residual estimate as Python floats (the block
    iteration spends a few tensor ops per earlier rotation per step: O(restart²) small ops
    a cycle). Returns ``(x, residual norm of the recurrence, iterations, reason)``."""
    op, rhs, precond = s.op, s.rhs, s.precond
    B, X, R = rhs.block, s.X, s.R
    threshold = float(s.threshold)
    rnorm = norm_of(R)
    reason = "maxiter"
    iterations = 0
    V = B.new_empty(restart + 1, B.shape[0])  # every row used is written first
    # the cycle's update, next x and next residual: buffers made once per solve, not fresh
    # pages at every restart (x and r swap with them where a cycle is accepted; empty_like
    # touches no page before a cycle writes it)
    step_buf, x_next, r_next = torch.empty_like(B[:, 0]), torch.empty_like(X), torch.empty_like(R)
    for _ in range(s.maxiter):
        if not rnorm > threshold:
            break
        torch.div(R.view(-1), rnorm if rnorm > 0 else 1.0, out=V[0])
        columns: list[list[float]] = []  # the upper-triangular factor, column by column
        g = [rnorm]
        cs: list[float] = []
        sn: list[float] = []
        for j in range(restart):  # inner iterations of one cycle
            # A M v_j straight into the next basis row (a copy where the kernel or a user's
            # A(x), which may return x itself, does not write there)
            w = V[j + 1]
            W = op.matvec(precond(V[j].view(-1, 1)), out=w.view(-1, 1))
            if W.data_ptr() != w.data_ptr():
                w.copy_(W.view(-1))
            basis = V[: j + 1]
            coef = torch.mv(V[: j + 2], w)  # Vᵀ w and, last, ||w||²
            h1 = coef[:-1]
            h = h1.tolist()
            w_squared = float(coef[-1])
            w.addmv_(basis.T, h1, alpha=-1.0)
            if math.fsum(c * c for c in h) > _KEEP * w_squared:  # see _ETA
                h2 = torch.mv(basis, w)  # second pass: re-orthogonalise
                w.addmv_(basis.T, h2, alpha=-1.0)
                h = (h1 + h2).tolist()
            h_next = norm_of(w)
            for i in range(j):  # earlier rotations on the new column
                top = cs[i] * h[i] + sn[i] * h[i + 1]
                h[i + 1] = -sn[i] * h[i] + cs[i] * h[i + 1]
                h[i] = top
            denom = math.hypot(h[j], h_next)
            denom = denom if denom > 0 else 1.0
            cs.append(h[j] / denom)
            sn.append(h_next / denom)
            h[j] = cs[j] * h[j] + sn[j] * h_next
            g_next = -sn[j] * g[j]
            g[j] = cs[j] * g[j]
            g.append(g_next)
            columns.append(h)
            w.div_(h_next if h_next > 0 else 1.0)  # V[j + 1], in place
            iterations += 1
            if abs(g_next) <= threshold or h_next == 0:
                break
        # y from the upper-triangular system of this cycle
        steps = len(columns)
        Hm = B.new_zeros(steps, steps)
        for j, h in enumerate(columns):
            Hm[: j + 1, j] = torch.tensor(h, dtype=B.dtype)
        gm = torch.tensor(g[:steps], dtype=B.dtype).unsqueeze(-1)
        y = torch.linalg.solve_triangular(Hm, gm, upper=True)[:, 0]
        step = precond(torch.mv(V[:steps].T, y, out=step_buf).unsqueeze(-1))
        X_new = torch.add(X, step, out=x_next)
        R_new = torch.sub(B, op.matvec(X_new, out=r_next), out=r_next)  # b - A x
        rnorm_new = norm_of(R_new)
        # x itself too: a matrix with no stored entries maps a NaN x to a finite residual.
        # A finite sum of squares proves it finite (one read); else entry by entry.
        flat = X_new.view(-1)
        ok = math.isfinite(rnorm_new) and (
            math.isfinite(float(torch.dot(flat, flat))) or bool(torch.isfinite(X_new).all())
        )
        if ok:
            X, x_next, R, r_next, rnorm = X_new, X, R_new, R, rnorm_new
        else:
            reason = "breakdown: non-finite iterate"
        if callback is not None:
            callback(rhs.user(X.clone()))  # x's storage is reused by later cycles
        if not ok:
            break
    return X, rnorm, iterations, reason
