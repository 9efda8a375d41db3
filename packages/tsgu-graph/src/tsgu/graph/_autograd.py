r"""The two differentiable products on a :class:`~._grouping.Grouping`.

With ``g(i)`` the group of row i,

* ``grouped_mm``:    :math:`Y_i = X_i W_{g(i)}`, whose gradients are
  :math:`\bar X_i = \bar Y_i W_{g(i)}^\top` (again a grouped_mm, with :math:`W^\top`) and
  :math:`\bar W_r = \sum_{g(i) = r} X_i^\top \bar Y_i` (a grouped_outer);
* ``grouped_outer``: :math:`C_r = \sum_{g(i) = r} X_i^\top Y_i`, whose gradients are
  :math:`\bar X_i = Y_i \bar C_{g(i)}^\top` and :math:`\bar Y_i = X_i \bar C_{g(i)}`
  (two grouped_mm).

Each backward is built from the two products themselves, so gradients of any order are
exact. ``ctx.needs_input_grad`` is honoured: an unused gradient costs nothing.
"""

from __future__ import annotations

from typing import Any

import torch

from ._grouping import Grouping

__all__ = ["grouped_mm", "grouped_outer"]


class _GroupedMM(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, grouping: Grouping) -> torch.Tensor:
        return grouping.mm(x, w)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, w, grouping = inputs
        ctx.grouping = grouping
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, w = ctx.saved_tensors
        grad_x = grad_w = None
        # grad_w (R x P x Q, small) first: its N-row temporaries are gone before grad_x's
        # come, so the peak holds one N-row gradient plus two temporaries, not three.
        if ctx.needs_input_grad[1]:
            grad_w = grouped_outer(x, grad, ctx.grouping)
        if ctx.needs_input_grad[0]:
            grad_x = grouped_mm(grad, w.mT, ctx.grouping)
        return grad_x, grad_w, None


class _GroupedOuter(torch.autograd.Function):
    @staticmethod
    def forward(x: torch.Tensor, y: torch.Tensor, grouping: Grouping) -> torch.Tensor:
        return grouping.outer(x, y)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, y, grouping = inputs
        ctx.grouping = grouping
        ctx.save_for_backward(x, y)

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, y = ctx.saved_tensors
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = grouped_mm(y, grad.mT, ctx.grouping)
        if ctx.needs_input_grad[1]:
            grad_y = grouped_mm(x, grad, ctx.grouping)
        return grad_x, grad_y, None


def grouped_mm(x: torch.Tensor, w: torch.Tensor, grouping: Grouping) -> torch.Tensor:
    """``out[i] = x[i] @ w[group(i)]``, differentiable in x and w to any order."""
    out: torch.Tensor = _GroupedMM.apply(x, w, grouping)
    return out


def grouped_outer(x: torch.Tensor, y: torch.Tensor, grouping: Grouping) -> torch.Tensor:
    """``out[r] = sum over rows i of group r of x[i]^T y[i]``, differentiable to any order."""
    out: torch.Tensor = _GroupedOuter.apply(x, y, grouping)
    return out
