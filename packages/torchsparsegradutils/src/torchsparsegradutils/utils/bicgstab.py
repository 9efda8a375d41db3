"""0.2's ``bicgstab``: its settings tuple, over :func:`tsgu.core.bicgstab`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from tsgu.core import bicgstab as _bicgstab

from .._errors import check_operator
from ._complex import complex_dtype, embed, embed_vector, is_complex, unembed

__all__ = ["BICGSTABSettings", "bicgstab"]


class BICGSTABSettings(NamedTuple):
    """0.2's settings: ``matvec_max`` per right-hand side (default 2n), ``abstol``,
    ``reltol`` (relative to ``||b||``), ``precon``; ``logger`` is accepted and unused."""

    matvec_max: int | None = None
    abstol: float = 1e-8
    reltol: float = 1e-6
    precon: torch.Tensor | Callable[[torch.Tensor], torch.Tensor] | None = None
    logger: Any = None


def bicgstab(
    matmul_closure: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    initial_guess: torch.Tensor | None = None,
    settings: BICGSTABSettings = BICGSTABSettings(),  # noqa: B008 - 0.2's default
    **kwargs: Any,
) -> torch.Tensor:
    """BiCGSTAB with torchsparsegradutils 0.2.7's conventions (see :func:`tsgu.core.bicgstab`).

    A column stops when ``||b - A x|| <= max(abstol, reltol ||b||)`` (SciPy's test, as in
    0.2.7) or when it has used ``settings.matvec_max`` products with A (default ``2n``;
    the first residual's counts, each iteration costs two). ``matvec_max=0`` returns the
    initial guess, with a warning, as 0.2.7 did. Extra keyword arguments go to
    :func:`tsgu.core.bicgstab` (e.g. ``rtol``, ``maxiter``, ``M``) and override the settings.

    Complex systems are accepted, as in 0.2: they are solved as the real system of twice
    the size, ``[[Re A, -Im A], [Im A, Re A]]``. Unlike 0.2.2, ``initial_guess`` is honoured
    (0.2.2 returned ``x0 + A⁻¹ b``) and the columns of a multi-RHS ``rhs`` are solved
    together.

    Raises
    ------
    TypeError
        ``matmul_closure`` or ``settings.precon`` is neither a tensor nor a callable (the
        exception is also a ``RuntimeError``, 0.2's type for it).
    ValueError
        ``settings.matvec_max`` is negative, or any error of :func:`tsgu.core.bicgstab`.

    Examples
    --------
    >>> import torch
    >>> from torchsparsegradutils.utils import bicgstab
    >>> A = torch.tensor([[4.0, 1.0], [-2.0, 3.0]], dtype=torch.float64).to_sparse_csr()
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    >>> bicgstab(A, b, initial_guess=torch.ones(2, dtype=torch.float64))
    tensor([0.0714, 0.7143], dtype=torch.float64)
    >>> bicgstab(A.to(torch.complex128), 1j * b)
    tensor([0.+0.0714j, 0.+0.7143j], dtype=torch.complex128)
    """
    check_operator("bicgstab", "matmul_closure", matmul_closure)
    if settings.precon is not None:
        check_operator("bicgstab", "settings.precon", settings.precon)
    budget = settings.matvec_max
    if budget is not None and budget < 0:
        raise ValueError(f"bicgstab: settings.matvec_max must be nonnegative or None, got {budget}")
    if budget == 0:
        warnings.warn(
            "bicgstab: settings.matvec_max=0 returns the initial guess without evaluating "
            "the operator or checking convergence",
            UserWarning,
            stacklevel=2,
        )
        return torch.zeros_like(rhs) if initial_guess is None else initial_guess.clone()
    n = rhs.shape[0] if rhs.dim() == 1 else rhs.shape[-2]
    budget = 2 * n if budget is None else budget
    A, M = matmul_closure, settings.precon
    complex_problem = is_complex(A, rhs, initial_guess, M)
    if complex_problem:
        dtype = complex_dtype(A, rhs, initial_guess, M)
        A, rhs = embed(A, dtype), embed_vector(rhs, dtype)
        M = None if M is None else embed(M, dtype)
        initial_guess = None if initial_guess is None else embed_vector(initial_guess, dtype)
    options: dict[str, Any] = {
        "x0": initial_guess,
        "rtol": settings.reltol,
        "atol": settings.abstol,
        # the first residual takes one product (0.2.7 counted it) and each iteration two,
        # the last of which may stop halfway: ceil((budget - 1) / 2) iterations
        "maxiter": budget // 2,
        "M": M,
    }
    options.update(kwargs)
    x: torch.Tensor = _bicgstab(A, rhs, **options)
    return unembed(x) if complex_problem else x
