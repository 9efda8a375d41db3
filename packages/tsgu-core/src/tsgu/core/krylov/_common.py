"""What every Krylov solver shares: operators, right-hand sides, stopping, reporting.

Every solver works on a canonical block ``(*batch, n, k)``: the k columns of a multi-RHS
solve (and the b items of a batched operator) advance together with batched dot products
over the ``n`` axis; each column has its own scalars and its own stopping test, and a
column that has converged (or broken down) is frozen rather than updated further.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch

from .._linear_solve import check_tol_or_rtol
from .._pattern import Pattern, stored_values
from .._structure import check_structure
from ..validation import COO, CSR, check_maxiter, check_tolerance, layout_name

__all__ = ["ConvergenceWarning", "SolveInfo"]

Operator: TypeAlias = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


class ConvergenceWarning(UserWarning):
    """A Krylov solve stopped before reaching its tolerance (iterations, residual, reason)."""


@dataclass(frozen=True)
class SolveInfo:
    """How a Krylov solve stopped.

    Attributes
    ----------
    converged : bool
        Every column's *true* residual ``||b - A x||``, measured once after the
        iterations, reached ``max(rtol * ||b||, atol)`` (LSMR: SciPy's tests, on the true
        residual), and x is finite. The recurrence alone never decides it: on a singular
        or zero A it can reach zero while x solves nothing.
    iterations : int
        Iterations run (for GMRES: inner iterations over all restart cycles).
    residual_norm : torch.Tensor
        The true residual norm ``||b - A x||`` per column: a scalar for a vector
        right-hand side, ``(k,)`` or ``(b, k)`` otherwise.
    reason : str
        ``"converged"``, ``"maxiter"`` or a description of a breakdown.
    """

    converged: bool
    iterations: int
    residual_norm: torch.Tensor
    reason: str


class LinearOperator:
    """A matrix, sparse or dense, or matvec callables, acting on canonical blocks."""

    def __init__(
        self,
        fn: str,
        A: Operator,
        rmatvec: Callable[[torch.Tensor], torch.Tensor] | None = None,
        name: str = "A",
    ) -> None:
        self._fn, self._name = fn, name
        self._rmatvec_user = rmatvec
        self.rhs: RightHandSide | None = None  # set by RightHandSide: a callable needs b's shape
        if isinstance(A, torch.Tensor):
            if A.layout in (COO, CSR):
                if A.dense_dim() != 0 or A.dim() not in (2, 3):
                    raise ValueError(
                        f"{fn}: {name} must be a 2D or batched 3D sparse matrix with scalar "
                        f"values, got shape {tuple(A.shape)}"
                    )
                check_structure(fn, name, A)
                self._pattern: Pattern | None = Pattern.of(A)
                self._values = stored_values(A).detach().reshape(-1)
                check_finite(fn, name, self._values, "stored value")
            elif A.layout == torch.strided:
                if A.dim() not in (2, 3):
                    raise ValueError(
                        f"{fn}: A must be 2D or batched 3D, got shape {tuple(A.shape)}"
                    )
                self._pattern = None
                self._dense = A.detach()
                if A.is_floating_point():
                    check_finite(fn, name, self._dense, "entry")
            else:
                raise TypeError(
                    f"{fn}: A must be a sparse COO/CSR tensor, a dense tensor or a callable, "
                    f"got layout {layout_name(A.layout)}; convert with A.to_sparse_csr()"
                )
            self.shape = tuple(A.shape)
            self.dtype: torch.dtype | None = A.dtype
            self.device: torch.device | None = A.device
            self._callable: Callable[[torch.Tensor], torch.Tensor] | None = None
        elif callable(A):
            self._pattern = None
            self._callable = A
            self.shape = ()  # unknown: a callable is checked through what it returns
            self.dtype = None
            self.device = None
        else:
            raise TypeError(
                f"{fn}: A must be a torch.Tensor (sparse or dense) or a callable, "
                f"got {type(A).__name__}"
            )

    @property
    def is_callable(self) -> bool:
        """A user's ``A(x)``: what it returns may alias its argument."""
        return self._callable is not None

    @property
    def batched(self) -> bool | None:
        """True or False for a matrix; None for a callable (b's shape decides)."""
        return len(self.shape) == 3 if self.shape else None

    def _kernel_matrix(self, pattern: Pattern) -> torch.Tensor:
        """The CSR tensor torch's kernel multiplies with (int32 indices where they fit, values
        in row-major order), built once per solve rather than once per product."""
        cache = self.__dict__.setdefault("_kernels", {})
        key = id(pattern)
        if key not in cache:
            crow, col, perm = pattern.kernel_form
            values = self._values if perm is None else self._values.index_select(0, perm)
            cache[key] = torch.sparse_csr_tensor(
                crow, col, values, (pattern.nrows, pattern.ncols), check_invariants=False
            )
        return cache[key]

    def _sparse(
        self, pattern: Pattern, X: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        k = X.shape[-1]
        A = self._kernel_matrix(pattern)
        flat = X.reshape(-1, k)
        if k == 1:  # the matrix-vector kernel, faster than a one-column product
            batch = X.shape[:-2]  # a batched pattern is the block-diagonal matrix of its items
            shape = (*batch, pattern.nrows // max(math.prod(batch), 1), 1)
            if out is not None and out.shape == shape and out.is_contiguous():
                torch.mv(A, flat[:, 0], out=out.view(-1))  # no fresh pages per product
                return out
            return torch.mv(A, flat[:, 0]).reshape(shape)
        return (A @ flat).reshape(*X.shape[:-2], -1, k)

    def vector_product(
        self, transposed: bool = False
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
        """``mv(x, out)``: ``A @ x`` (``Aᵀ @ x`` if ``transposed``) for one vector written
        into ``out`` (never aliasing x), straight to torch's kernel, or None where A is no
        single matrix (a callable, a batch).

        The single-column fast paths call it once per iteration, so it skips the block
        reshapes of :meth:`matvec` (a few microseconds a product at small n).
        """
        A = self.single_matrix(transposed)
        if A is None:
            return None

        def mv(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
            return torch.mv(A, x, out=out)

        return mv

    def single_matrix(self, transposed: bool = False) -> torch.Tensor | None:
        """The matrix torch's kernels multiply with (``Aᵀ`` if ``transposed``): the CSR
        kernel form of a sparse A or the dense A itself; None for a callable or a batch."""
        if self._callable is not None or len(self.shape) != 2:
            return None
        if self._pattern is not None:
            return self._kernel_matrix(self._pattern.t if transposed else self._pattern)
        return self._dense.mT if transposed else self._dense

    def matvec(self, X: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``A @ X`` for a canonical block X; ``out``, a buffer the result may be written to
        (and returned) where the kernel allows, never aliasing X."""
        if self._callable is not None:
            assert self.rhs is not None
            out = self._callable(self.rhs.user(X))
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != self.rhs.user_shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"{self._fn}: {self._name}(x) must return a tensor shaped like b "
                    f"{self.rhs.user_shape}, got {got}"
                )
            return self.rhs.canonical(out)
        if self._pattern is not None:
            return self._sparse(self._pattern, X, out)
        return self._dense @ X

    def rmatvec(self, X: torch.Tensor) -> torch.Tensor:
        """``A^T @ X`` for a canonical block X."""
        if self._callable is not None:
            assert self._rmatvec_user is not None and self.rhs is not None
            return self.rhs.canonical(self._rmatvec_user(self.rhs.user(X)))
        if self._pattern is not None:
            return self._sparse(self._pattern.t, X)
        return self._dense.mT @ X


class RightHandSide:
    """b in canonical ``(*batch, n, k)`` form, and the way back to the caller's shape.

    A vector is ``(n,)`` (or ``(b, n)`` for a batched operator) and becomes one column.
    """

    def __init__(self, fn: str, b: object, op: LinearOperator) -> None:
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"{fn}: b must be a torch.Tensor, got {type(b).__name__}")
        if b.layout != torch.strided:
            raise TypeError(
                f"{fn}: b must be a dense (strided) tensor, got layout {layout_name(b.layout)}; "
                "convert with b.to_dense()"
            )
        if op.batched is None:
            allowed: tuple[int, ...] = (1, 2, 3)
            expect = "(n,), (n, k) or (b, n, k)"
        elif op.batched:
            allowed, expect = (2, 3), "(b, n) or (b, n, k) for a batched A"
        else:
            allowed, expect = (1, 2), "(n,) or (n, k)"
        if b.dim() not in allowed:
            raise ValueError(f"{fn}: b must have shape {expect}, got {tuple(b.shape)}")
        if not b.is_floating_point():
            raise ValueError(f"{fn}: b must have a floating-point dtype, got {b.dtype}")
        self.vector = b.dim() == allowed[0]
        self.user_shape = tuple(b.shape)
        self.block = b.detach().unsqueeze(-1) if self.vector else b.detach()
        op.rhs = self

    @property
    def n(self) -> int:
        return self.block.shape[-2]

    def canonical(self, x: torch.Tensor) -> torch.Tensor:
        """A tensor in the caller's shape (vector or block) as a canonical block."""
        return x.unsqueeze(-1) if self.vector else x

    def user(self, X: torch.Tensor) -> torch.Tensor:
        """A canonical block in the caller's shape."""
        return X.squeeze(-1) if self.vector else X

    def norms(self, X: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(X, dim=-2)

    def report(self, norms: torch.Tensor) -> torch.Tensor:
        return norms.squeeze(-1) if self.vector else norms


def single_column(X: torch.Tensor, *others: torch.Tensor) -> bool:
    """One right-hand side, one matrix, on the CPU, in contiguous storage: the case the
    single-column fast paths serve.

    There the step sizes are Python floats: reading a scalar back costs nothing on a CPU,
    while every arithmetic op on a one-element tensor costs a few microseconds of dispatch,
    which at small n is more than the vector operations themselves. (On a GPU each read
    would be a host sync, so blocks, batches and GPUs keep the tensor-scalar iteration.)
    """
    return (
        X.dim() == 2
        and X.shape[-1] == 1
        and X.device.type == "cpu"
        and all(t.is_contiguous() for t in (X, *others))
    )


def norm_of(v: torch.Tensor) -> float:
    """The 2-norm of a contiguous vector, as a Python float (the single-column paths' scalars).

    The square root of BLAS's dot of v with itself: on the CPU it runs on every thread,
    where ``torch.linalg.vector_norm`` ran on one at twice the time (a 10⁶-vector out of
    cache, 2 threads: 0.39 ms against 0.65-0.77 ms). Neither rescales: both overflow to inf
    above about 1e154 and underflow to 0 alike."""
    flat = v.reshape(-1)
    return math.sqrt(float(torch.dot(flat, flat)))


def ieee_div(a: float, b: float) -> float:
    """``a / b`` as a tensor divides (a zero ``b`` gives ±inf or NaN), where Python raises."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def per_column(v: torch.Tensor) -> torch.Tensor:
    """Per-column scalars ``(*batch, k)`` broadcast over a block ``(*batch, n, k)``."""
    return v.unsqueeze(-2)


def dot(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Column-wise inner products of two canonical blocks: ``(*batch, k)``."""
    if X.shape[-1] == 1 and X.shape == Y.shape:  # one column: BLAS, no n-long temporary
        if X.dim() == 2:
            return torch.dot(X[:, 0], Y[:, 0]).reshape(1)
        return torch.matmul(X.mT, Y).squeeze(-1)
    return (X * Y).sum(dim=-2)


def as_preconditioner(
    fn: str, M: Operator | None, rhs: RightHandSide, op: LinearOperator | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``M`` (approximating A⁻¹: a tensor, sparse or dense, or a callable) on canonical blocks.

    A tensor or a tsgu preconditioner must fit the system (A's shape, b's dtype and device);
    a callable must return its input's shape.
    """
    if M is None:
        return lambda X: X
    B = rhs.block
    shape = getattr(M, "shape", None)
    if isinstance(shape, tuple | torch.Size) and (
        isinstance(M, torch.Tensor) or hasattr(M, "matmat")
    ):
        expected = tuple(op.shape) if op is not None and op.shape else None
        if expected is not None and len(expected) == 2 and expected[0] != expected[1]:
            expected = None
        if expected is None:  # a callable A: M must be (n, n), or (b, n, n) for a batch
            n = rhs.n
            expected = (
                (n, n) if B.dim() == 2 or op is None or not op.batched else (B.shape[0], n, n)
            )
            if len(tuple(shape)) == 3 and B.dim() == 3:
                expected = (B.shape[0], n, n)
        if tuple(shape) != expected:
            raise ValueError(f"{fn}: M must have A's shape {expected}, got shape {tuple(shape)}")
        dtype = getattr(M, "dtype", None)
        if dtype is not None and dtype != B.dtype:
            raise ValueError(
                f"{fn}: M must have the dtype of b ({B.dtype}), got {dtype}; build M from "
                f"A.to({B.dtype})"
            )
        device = getattr(M, "device", None)
        if device is not None and torch.device(device) != B.device:
            raise ValueError(f"{fn}: M must be on b's device ({B.device}), got {device}")
    matmat = getattr(M, "matmat", None)  # tsgu.core's preconditioners act on blocks
    if callable(matmat):
        return matmat
    if isinstance(M, torch.Tensor):
        if M.layout not in (COO, CSR, torch.strided):
            raise TypeError(
                f"{fn}: M must be a sparse COO/CSR or dense tensor or a callable, got layout "
                f"{layout_name(M.layout)}"
            )
        pre = LinearOperator(fn, M, name="M")
        pre.rhs = rhs
        return pre.matvec
    if callable(M):

        def apply(X: torch.Tensor) -> torch.Tensor:
            out = M(rhs.user(X))
            if not isinstance(out, torch.Tensor) or out.shape != rhs.user(X).shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"{fn}: M(r) must return a tensor shaped like r {tuple(rhs.user(X).shape)}, "
                    f"got {got}"
                )
            return rhs.canonical(out)

        return apply
    raise TypeError(f"{fn}: M must be a tensor or a callable, got {type(M).__name__}")


DEFAULT_RTOL = 1e-5  # SciPy's


def resolve_rtol(fn: str, rtol: float | None, tol: float | None) -> float:
    """``tol`` is the pre-1.12 SciPy (and torchsparsegradutils 0.2 README) name of ``rtol``:
    give one of them (default 1e-5)."""
    check_tol_or_rtol(fn, {"tol": tol, "rtol": rtol})
    if tol is not None:
        return check_tolerance(fn, "tol", tol)
    return check_tolerance(fn, "rtol", DEFAULT_RTOL if rtol is None else rtol)


def all_finite(t: torch.Tensor) -> bool:
    """Every entry of ``t`` finite, by a sum where it can: a NaN or Inf anywhere makes the
    sum non-finite, so a finite sum settles it in one read and no n-long boolean
    temporary; only a non-finite sum (an Inf or NaN, or an overflow) looks entry by entry."""
    if t.is_floating_point() and math.isfinite(float(t.sum())):
        return True
    return bool(torch.isfinite(t).all())


def check_finite(fn: str, name: str, t: torch.Tensor, what: str = "entry") -> None:
    """Every entry of ``t`` finite: a NaN or Inf in a system leaves nothing to solve."""
    if t.numel() == 0 or all_finite(t):
        return
    k = int(torch.nonzero(~torch.isfinite(t.reshape(-1)))[0, 0])
    raise ValueError(
        f"{fn}: {name} must be finite, got {float(t.reshape(-1)[k])} at {what} {k} "
        "(flat index); a NaN or Inf leaves no solution to find"
    )


def check_system(
    fn: str, op: LinearOperator, rhs: RightHandSide, x0: torch.Tensor | None, square: bool = True
) -> None:
    """Shapes, dtypes and devices of A, b and x0 agree (raises before any work)."""
    if op.shape:
        rows = op.shape[-2]
        if square and op.shape[-1] != rows:
            raise ValueError(f"{fn}: A must be square, got shape {op.shape}")
        if rhs.n != rows:
            raise ValueError(
                f"{fn}: b must have {rows} rows to match A of shape {op.shape}, "
                f"got shape {rhs.user_shape}"
            )
        if op.batched and rhs.block.shape[0] != op.shape[0]:
            raise ValueError(
                f"{fn}: batch sizes must match, got {op.shape[0]} for A and "
                f"{rhs.block.shape[0]} for b"
            )
    if op.dtype is not None:
        if op.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{fn}: A must have dtype float32 or float64, got {op.dtype}")
        if op.dtype != rhs.block.dtype:
            raise ValueError(
                f"{fn}: A and b must have the same dtype, got {op.dtype} and {rhs.block.dtype}"
            )
        if op.device != rhs.block.device:
            raise ValueError(
                f"{fn}: A and b must be on the same device, got {op.device} and {rhs.block.device}"
            )
    check_finite(fn, "b", rhs.block)
    if x0 is not None:
        if not isinstance(x0, torch.Tensor):
            raise TypeError(f"{fn}: x0 must be a torch.Tensor, got {type(x0).__name__}")
        if x0.layout != torch.strided:
            raise TypeError(
                f"{fn}: x0 must be a dense (strided) tensor, got layout {layout_name(x0.layout)}; "
                "convert with x0.to_dense()"
            )
        expected = list(rhs.user_shape)
        if op.shape:  # x has A's column count in place of b's row count
            expected[-1 if rhs.vector else -2] = op.shape[-1]
        if tuple(x0.shape) != tuple(expected):
            raise ValueError(f"{fn}: x0 must have shape {tuple(expected)}, got {tuple(x0.shape)}")
        if x0.dtype != rhs.block.dtype:
            raise ValueError(
                f"{fn}: x0 must have the dtype of b ({rhs.block.dtype}), got {x0.dtype}; "
                f"cast it with x0.to({rhs.block.dtype})"
            )
        if x0.device != rhs.block.device:
            raise ValueError(
                f"{fn}: x0 must be on b's device ({rhs.block.device}), got {x0.device}"
            )
        check_finite(fn, "x0", x0)


def default_maxiter(
    maxiter: int | None, n: int, default: Callable[[int], int], fn: str = "solver"
) -> int:
    """``default(n)`` unless given (SciPy's defaults: cg and bicgstab 10n, minres 5n)."""
    checked = check_maxiter(fn, maxiter)
    return max(default(max(n, 1)), 1) if checked is None else checked


@dataclass
class Start:
    """A square solve, checked and ready: operator, right-hand side, first iterate."""

    op: LinearOperator
    rhs: RightHandSide
    precond: Callable[[torch.Tensor], torch.Tensor]
    rtol: float
    atol: float
    maxiter: int
    X: torch.Tensor  # x0 (zeros by default) as a canonical block
    R: torch.Tensor  # b - A x0
    threshold: torch.Tensor  # max(rtol ||b||, atol) per column


def start(
    fn: str,
    A: Operator,
    b: torch.Tensor,
    x0: torch.Tensor | None,
    *,
    rtol: float | None,
    atol: float,
    tol: float | None,
    maxiter: int | None,
    default_maxiter_of_n: Callable[[int], int],
    M: Operator | None,
) -> Start:
    """Check a square system (before any work) and set up the first iterate."""
    rtol = resolve_rtol(fn, rtol, tol)
    atol = check_tolerance(fn, "atol", atol)
    op = LinearOperator(fn, A)
    rhs = RightHandSide(fn, b, op)
    check_system(fn, op, rhs, x0)
    maxiter = default_maxiter(maxiter, rhs.n, default_maxiter_of_n, fn)
    precond = as_preconditioner(fn, M, rhs, op)
    B = rhs.block
    X = torch.zeros_like(B) if x0 is None else rhs.canonical(x0.detach()).clone()
    R = B - op.matvec(X) if x0 is not None else B.clone()
    threshold = torch.clamp(rtol * rhs.norms(B), min=atol)
    return Start(op, rhs, precond, rtol, atol, maxiter, X, R, threshold)


def true_residual(op: LinearOperator, rhs: RightHandSide, X: torch.Tensor) -> torch.Tensor:
    """``b - A x`` for the returned x: one matvec after the iterations."""
    return rhs.block - op.matvec(X)


def finish(
    fn: str,
    rhs: RightHandSide,
    X: torch.Tensor,
    converged: torch.Tensor,
    iterations: int,
    residual: torch.Tensor,
    reason: str,
    return_info: bool,
) -> Any:
    """Return x (and the SolveInfo); warn with the numbers when it did not converge.

    ``converged`` and ``residual`` are the verdict and true residual of :func:`verdict`.
    """
    all_converged = bool(converged.all())
    if all_converged:
        reason = "converged"
    report = rhs.report(residual)
    if not all_converged:
        worst = float(residual.max()) if residual.numel() else float("nan")
        warnings.warn(
            f"{fn} did not converge: {reason} after {iterations} iterations, "
            f"largest true residual norm ||b - A x|| {worst:.3e} "
            f"({int((~converged).sum())} of {converged.numel()} columns unconverged)",
            ConvergenceWarning,
            stacklevel=3,  # the caller of the solver
        )
    x = rhs.user(X)
    if return_info:
        return x, SolveInfo(all_converged, iterations, report, reason)
    return x


def verdict(
    op: LinearOperator,
    rhs: RightHandSide,
    X: torch.Tensor,
    threshold: torch.Tensor,
    solver_converged: torch.Tensor,
    reason: str,
    measure: Callable[[torch.Tensor], torch.Tensor] | None = None,
    known: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(converged, true residual norms, reason)`` from the true residual of the returned x.

    A column converged when x is finite and ``measure(b - A x) <= threshold`` (``measure``:
    the solver's own norm, the 2-norm by default); the recurrence alone never decides it.
    A column the solver's recurrence took for converged that fails this is a breakdown.
    ``known``: the true residual when it is already at hand (no iteration ran: ``b - A x0``),
    which spares the matvec.
    """
    R = true_residual(op, rhs, X) if known is None else known
    norms = rhs.norms(R)
    measured = norms if measure is None else measure(R)
    finite = torch.isfinite(X.sum(dim=-2))  # a finite sum: every entry finite
    if not bool(finite.all()):  # an Inf or NaN, or an overflow: look entry by entry
        finite = torch.isfinite(X).all(dim=-2)
    converged = finite & (measured <= threshold)
    if bool((solver_converged & ~converged).any()):
        reason = (
            "breakdown: the recurrence reached the tolerance but the true residual "
            "||b - A x|| did not (A, or M, is singular or too ill-conditioned)"
        )
    return converged, norms, reason


def column_verdict(
    s: Start, X: torch.Tensor, iterations: int, reason: str, done: bool
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """:func:`verdict` on the result of a single-column path (``done``: its recurrence
    reached the tolerance); no matvec when no iteration ran (the residual is ``s.R``)."""
    return verdict(
        s.op,
        s.rhs,
        X,
        s.threshold,
        torch.tensor([done], device=X.device),
        reason,
        known=s.R if iterations == 0 else None,
    )
