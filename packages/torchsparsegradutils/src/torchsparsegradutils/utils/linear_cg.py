"""0.2's ``linear_cg``: conjugate gradients in gpytorch's convention, 0.2.7's interface.

tsgu's :func:`tsgu.core.cg` stops each column at SciPy's test and reports a
:class:`tsgu.core.SolveInfo`; 0.2's ``linear_cg`` differs in ways its users depend on (its
stopping rules, its ``CGInfo`` record, errors on breakdown, the Lanczos tridiagonal
matrices of ``n_tridiag``), all of which need CG's inner coefficients. So the iteration is
written here, in 0.2's convention: the right-hand sides are scaled to unit norm, iterated
together, and scaled back.

Where 0.2.2 and 0.2.7 differ, this follows 0.2.7 (see the package's migration notes):
tolerance 1e-5 and every column below it, instead of tolerance 1 on the mean over
columns after at least ``min(10, max_iter - 1) + 1`` iterations. 0.2.2's rule is
``convergence_reduction="mean", min_iter=11, stop_updating_after=1e-10`` (with
``tolerance=1``, its default).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch

from tsgu.core import ConvergenceWarning

from .._errors import check_operator
from ._lanczos import Tridiagonal

__all__ = ["CGInfo", "LinearCGSettings", "linear_cg"]

Operator = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


class LinearCGSettings(NamedTuple):
    """0.2's settings (0.2.7's defaults: ``cg_tolerance`` 1e-5; 0.2.2 had 1)."""

    max_cg_iterations: int = 1000
    max_lanczos_quadrature_iterations: int = 20
    cg_tolerance: float = 1e-5
    terminate_cg_by_size: bool = False
    verbose_linalg: bool = False


@dataclass(frozen=True)
class CGInfo:
    """How :func:`linear_cg` stopped (0.2.7's record).

    Residual tensors have shape ``(*batch, k)``; a vector right-hand side gives ``(1,)``.

    Attributes
    ----------
    iterations, matvecs : int
        CG iterations run, and products with A (one per iteration, one for the initial
        residual, one for the true residual at the end).
    converged : torch.Tensor
        Per column: the recomputed true relative residual meets ``tolerance``.
    recursive_relative_residual, true_relative_residual : torch.Tensor
        ``||r|| / ||b||`` from CG's recurrence, and recomputed as ``||b - A x|| / ||b||``.
    tolerance : float
    reason : str
        ``"converged"`` (the true residual meets the tolerance), ``"recursive_converged"``
        or ``"mean_converged"`` (the stopping rule was met, the true residual is not),
        ``"stopped_updating"`` (every column was frozen by ``stop_updating_after`` before
        the first iteration) or ``"max_iter"``.
    """

    iterations: int
    matvecs: int
    converged: torch.Tensor
    recursive_relative_residual: torch.Tensor
    true_relative_residual: torch.Tensor
    tolerance: float
    reason: Literal[
        "converged", "recursive_converged", "mean_converged", "stopped_updating", "max_iter"
    ]


def _dot(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Column-wise inner products of ``(..., n, k)`` blocks, kept ``(..., 1, k)``."""
    return (X * Y).sum(-2, keepdim=True)


def _finite_nonnegative(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"linear_cg: {name} must be finite and non-negative, got {value}")
    return value


class _Checked:
    """Products with A and M that must keep the right-hand side's shape, dtype and device."""

    def __init__(
        self,
        A: Operator,
        M: Callable[[torch.Tensor], torch.Tensor] | None,
        like: torch.Tensor,
    ) -> None:
        check_operator("linear_cg", "matmul_closure", A)
        if isinstance(A, torch.Tensor):
            A = A.matmul
        self._A, self._M, self._like = A, M, like
        self.matvecs = 0

    def _check(self, what: str, out: Any, like: torch.Tensor) -> torch.Tensor:
        if (
            not isinstance(out, torch.Tensor)
            or out.shape != like.shape
            or out.dtype != like.dtype
            or out.device != like.device
        ):
            got = (
                f"{tuple(out.shape)}, {out.dtype}, {out.device}"
                if isinstance(out, torch.Tensor)
                else type(out).__name__
            )
            raise RuntimeError(
                f"linear_cg: {what} output must match rhs shape, device, and dtype "
                f"({tuple(like.shape)}, {like.dtype}, {like.device}), got {got}"
            )
        return out

    def A(self, X: torch.Tensor) -> torch.Tensor:
        self.matvecs += 1
        return self._check("matmul_closure", self._A(X), self._like)

    def M(self, R: torch.Tensor) -> torch.Tensor:
        if self._M is None:
            return R
        return self._check("preconditioner", self._M(R), R)


def _breakdown(active: torch.Tensor, value: torch.Tensor, eps: torch.Tensor) -> bool:
    """Whether an active column's recurrence denominator is below eps or not finite."""
    return bool((active & ((value < eps) | ~torch.isfinite(value))).any())


def linear_cg(
    matmul_closure: Operator,
    rhs: torch.Tensor,
    n_tridiag: int = 0,
    tolerance: float | None = None,
    eps: float | None = None,
    stop_updating_after: float | None = None,
    max_iter: int | None = None,
    max_tridiag_iter: int | None = None,
    initial_guess: torch.Tensor | None = None,
    preconditioner: Callable[[torch.Tensor], torch.Tensor] | None = None,
    settings: LinearCGSettings = LinearCGSettings(),  # noqa: B008 - 0.2's default
    convergence_reduction: Literal["all", "mean"] = "all",
    min_iter: int = 0,
    return_info: bool = False,
    **kwargs: Any,
) -> Any:
    r"""Solve ``A x = b`` for symmetric positive definite ``A`` by conjugate gradients.

    torchsparsegradutils 0.2.7's ``linear_cg`` (gpytorch's convention): every column of
    ``rhs`` is scaled to unit norm, so residuals and tolerances are relative.

    Parameters
    ----------
    matmul_closure : torch.Tensor or callable
        ``A`` (its ``.matmul`` is used; sparse or dense) or ``A(X)`` for blocks shaped
        like ``rhs``.
    rhs : torch.Tensor
        Real floating point, ``(..., n)`` or ``(..., n, k)`` (any batch dimensions).
    n_tridiag : int
        Also return the Lanczos tridiagonal matrices of the first ``n_tridiag`` columns
        (see Notes); CG then runs at least ``min(max_tridiag_iter, n, max_iter - 1)``
        iterations.
    tolerance : float, optional
        Relative residual at which to stop (default ``settings.cg_tolerance``, 1e-5).
    eps : float, optional
        Smallest recurrence denominator accepted (default: the smallest normal number of
        rhs's dtype); an active column below it raises.
    stop_updating_after : float, optional
        A column whose relative residual falls to this stops being updated (default
        ``tolerance``).
    max_iter, max_tridiag_iter : int, optional
        Defaults ``settings.max_cg_iterations`` (1000) and
        ``settings.max_lanczos_quadrature_iterations`` (20).
    initial_guess : torch.Tensor, optional
        Shaped like ``rhs`` (zeros by default).
    preconditioner : callable, optional
        ``M(R)``, approximating ``A⁻¹ R`` (SPD).
    settings : LinearCGSettings
    convergence_reduction : {"all", "mean"}
        Stop when every column's relative residual is at most ``tolerance`` (0.2.7's
        default), or when their mean is (0.2.2's rule: with ``min_iter=11``,
        ``stop_updating_after=1e-10`` and ``tolerance=1``).
    min_iter : int
        Iterations to run before the stopping rule applies.
    return_info : bool
        Also return a :class:`CGInfo`.
    **kwargs
        ``tol`` or ``rtol`` (the 0.2 README's and SciPy's names) stand for ``tolerance``.

    Returns
    -------
    x : torch.Tensor
        Shaped like ``rhs``.
    T : torch.Tensor
        Only with ``n_tridiag > 0``: ``(n_tridiag, *batch, r, r)``, ``r <= min(
        max_tridiag_iter, n)``.
    info : CGInfo
        Only with ``return_info=True``.

    Warns
    -----
    tsgu.core.ConvergenceWarning
        A ``UserWarning``, 0.2's class: the true relative residual of some column is above
        ``tolerance``; or the result is zero for a nonzero right-hand side (a tolerance of 1
        or more is met by the zero initial guess, so no iteration runs).

    Raises
    ------
    TypeError
        ``rhs`` is not a real floating-point tensor; ``matmul_closure`` is neither a tensor
        nor a callable.
    ValueError
        Invalid ``tolerance``, ``eps``, ``stop_updating_after``, ``convergence_reduction``
        or ``min_iter``; an ``initial_guess`` of the wrong shape, dtype or device.
    RuntimeError
        ``matmul_closure`` is neither a tensor nor a callable (also a ``TypeError``);
        ``max_tridiag_iter > max_iter`` with ``n_tridiag`` (0.2 raised it without); a
        ``matmul_closure`` or ``preconditioner`` whose output does not match; NaN in the
        first residual; a breakdown (``pᵀAp`` or ``rᵀMr`` below ``eps`` or not finite: A
        or M is not positive definite).

    Notes
    -----
    Hestenes and Stiefel's CG, preconditioned. With ``n_tridiag``, the step sizes
    :math:`\alpha_k` and updates :math:`\beta_k` of each probe column give the Lanczos
    tridiagonal matrix :math:`T` with :math:`T_{00} = 1/\alpha_0`,
    :math:`T_{kk} = 1/\alpha_k + \beta_{k-1}/\alpha_{k-1}` and
    :math:`T_{k,k-1} = \sqrt{\beta_{k-1}}/\alpha_{k-1}`, whose eigenvalues approximate A's
    (gpytorch's stochastic Lanczos quadrature). No gradient flows through the iterations:
    to differentiate, pass this function to :func:`tsgu.core.sparse_generic_solve`.

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> x, info = linear_cg(A, b, return_info=True)
    >>> x, info.reason, info.iterations
    (tensor([0.0909, 0.6364], dtype=torch.float64), 'converged', 2)
    >>> x, T = linear_cg(A, b, n_tridiag=1, tolerance=0, max_iter=2, max_tridiag_iter=2)
    >>> torch.linalg.eigvalsh(T[0]), torch.linalg.eigvalsh(A)
    (tensor([2.3820, 4.6180], dtype=torch.float64), tensor([2.3820, 4.6180], dtype=torch.float64))
    """
    for name in ("tol", "rtol"):
        if name in kwargs:
            tolerance = kwargs.pop(name)
    if kwargs:
        raise TypeError(f"linear_cg: unexpected keyword arguments {sorted(kwargs)}")
    if not isinstance(rhs, torch.Tensor) or not rhs.is_floating_point():
        got = rhs.dtype if isinstance(rhs, torch.Tensor) else type(rhs).__name__
        raise TypeError(f"linear_cg: rhs must be a real floating-point torch.Tensor, got {got}")
    if rhs.dim() < 1:
        raise ValueError("linear_cg: rhs must have at least one dimension, got a scalar")
    vector = rhs.dim() == 1
    B = rhs.unsqueeze(-1) if vector else rhs
    if initial_guess is not None:
        if initial_guess.dim() == 1:
            initial_guess = initial_guess.unsqueeze(-1)
        if initial_guess.shape != B.shape:
            raise ValueError(
                f"linear_cg: initial_guess must have shape {tuple(B.shape)}, "
                f"got {tuple(initial_guess.shape)}"
            )
        if initial_guess.dtype != B.dtype or initial_guess.device != B.device:
            raise ValueError(
                f"linear_cg: initial_guess must share rhs's dtype and device ({B.dtype}, "
                f"{B.device}), got {initial_guess.dtype}, {initial_guess.device}"
            )
    max_iter = settings.max_cg_iterations if max_iter is None else max_iter
    max_tridiag_iter = (
        settings.max_lanczos_quadrature_iterations if max_tridiag_iter is None else max_tridiag_iter
    )
    tolerance = _finite_nonnegative(
        "tolerance", settings.cg_tolerance if tolerance is None else tolerance
    )
    eps = torch.finfo(B.dtype).tiny if eps is None else eps
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"linear_cg: eps must be finite and positive, got {eps}")
    stop_updating_after = _finite_nonnegative(
        "stop_updating_after", tolerance if stop_updating_after is None else stop_updating_after
    )
    if convergence_reduction not in ("all", "mean"):
        raise ValueError(
            "linear_cg: convergence_reduction must be 'all' or 'mean', "
            f"got {convergence_reduction!r}"
        )
    if min_iter < 0:
        raise ValueError(f"linear_cg: min_iter must be non-negative, got {min_iter}")
    if n_tridiag and max_tridiag_iter > max_iter:
        raise RuntimeError(
            f"linear_cg: max_tridiag_iter ({max_tridiag_iter}) > max_iter ({max_iter}): "
            "Getting a tridiagonalization larger than the number of CG iterations run is "
            "not possible!"
        )
    ops = _Checked(matmul_closure, preconditioner, B)
    eps_t = torch.tensor(eps, dtype=B.dtype, device=B.device)
    if not bool(eps_t > 0):
        raise ValueError(f"linear_cg: eps must be representable as a positive {B.dtype}, got {eps}")

    n = B.shape[-2]
    n_iter = min(max_iter, n) if settings.terminate_cg_by_size else max_iter
    b_norm = torch.linalg.vector_norm(B, dim=-2, keepdim=True)
    zero_rhs = b_norm == 0
    scale = b_norm.masked_fill(zero_rhs, 1)
    Bn = B / scale
    # The solution for a zero right-hand side is zero, whatever the initial guess.
    X = torch.zeros_like(B) if initial_guess is None else (initial_guess / scale)
    X = X.masked_fill(zero_rhs, 0)
    R = Bn - ops.A(X)
    X = X.expand_as(R).contiguous()
    if settings.verbose_linalg:
        print(f"Running CG on a {tuple(B.shape)} RHS for {n_iter} iterations (tol={tolerance}).")
    if torch.isnan(R).any():
        raise RuntimeError(
            "linear_cg: NaNs encountered when trying to perform matrix-vector multiplication"
        )
    r_norm = torch.linalg.vector_norm(R, dim=-2, keepdim=True)
    frozen = r_norm <= stop_updating_after
    tridiagonal = (
        Tridiagonal(min(max_tridiag_iter, n), R.shape[:-2], n_tridiag, B.dtype, B.device)
        if n_tridiag
        else None
    )
    iterations, stopped_by_rule, stopped_before = 0, False, False
    if bool(frozen.all()) and not n_tridiag and min_iter == 0:
        n_iter, stopped_before = 0, True
    else:
        Z = ops.M(R)
        P = Z
        rz = _dot(R, Z)
        if _breakdown(~frozen, rz, eps_t):
            raise RuntimeError(
                "linear_cg: CG breakdown: preconditioned residual inner product must be "
                "finite and at least eps (is the preconditioner positive definite?)"
            )
    # With n_tridiag, CG runs until T has its rows (or the iterations run out).
    tridiagonal_until = min(max_tridiag_iter, n, max_iter - 1) if n_tridiag else 0
    for k in range(n_iter):
        AP = ops.A(P)
        pAp = _dot(P, AP)
        if _breakdown(~frozen, pAp, eps_t):
            raise RuntimeError(
                "linear_cg: CG breakdown: p^T A p must be finite and at least eps for "
                "active right-hand sides (is A positive definite?)"
            )
        if _breakdown(~frozen, rz, eps_t):
            raise RuntimeError(
                "linear_cg: CG breakdown: residual inner product must be finite and at "
                "least eps for active right-hand sides"
            )
        alpha = torch.where(frozen | (pAp < eps_t), 0.0, rz / pAp)
        X = X + alpha * P
        R = R - alpha * AP
        Z = ops.M(R)
        rz_next = _dot(R, Z)
        beta = torch.where(rz < eps_t, 0.0, rz_next / rz)
        P = Z + beta * P
        rz = rz_next
        r_norm = torch.linalg.vector_norm(R, dim=-2, keepdim=True)
        frozen = r_norm <= stop_updating_after
        iterations = k + 1
        if convergence_reduction == "all":
            met = bool((r_norm <= tolerance).all())
        else:
            met = bool(r_norm.mean() <= tolerance)
        if iterations >= min_iter and met and k >= tridiagonal_until:
            stopped_by_rule = True
            break
        if tridiagonal is not None:
            tridiagonal.add(alpha.squeeze(-2), beta.squeeze(-2))

    X = X * scale
    true_residual = B - ops.A(X)
    true_relative = torch.linalg.vector_norm(true_residual, dim=-2) / scale.squeeze(-2)
    converged = true_relative <= tolerance
    if bool(converged.all()):
        reason = "converged"
    elif stopped_by_rule:
        reason = "mean_converged" if convergence_reduction == "mean" else "recursive_converged"
    elif stopped_before:
        reason = "stopped_updating"
    else:
        reason = "max_iter"
    if reason != "converged":
        warnings.warn(
            f"linear_cg did not converge: CG terminated in {iterations} iterations with "
            f"maximum true relative residual {float(true_relative.max()):.3e}, larger than "
            f"the tolerance of {tolerance} ({int((~converged).sum())} of "
            f"{converged.numel()} right-hand sides did not converge; reason: {reason})",
            ConvergenceWarning,
            stacklevel=2,
        )
    zero_result = ~zero_rhs.squeeze(-2) & (X == 0).all(-2)
    if bool(zero_result.any()):
        warnings.warn(
            f"linear_cg returned x = 0 for {int(zero_result.sum())} nonzero right-hand "
            f"side(s) after {iterations} iterations: a tolerance of {tolerance} is met by the "
            "zero initial guess. Pass a smaller tolerance (0.2.2's rule, tolerance=1 after at "
            "least 11 iterations, is convergence_reduction='mean', min_iter=11, "
            "stop_updating_after=1e-10)",
            ConvergenceWarning,
            stacklevel=2,
        )
    x = X.squeeze(-1) if vector else X
    out: tuple[Any, ...] = (x,)
    if tridiagonal is not None:
        out += (tridiagonal.result(),)
    if return_info:
        out += (
            CGInfo(
                iterations=iterations,
                matvecs=ops.matvecs,
                converged=converged,
                recursive_relative_residual=r_norm.squeeze(-2),
                true_relative_residual=true_relative,
                tolerance=tolerance,
                reason=reason,  # type: ignore[arg-type]
            ),
        )
    return out[0] if len(out) == 1 else out
