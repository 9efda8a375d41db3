"""``tsgu::spmm`` and ``tsgu::sampled``: the two products, as custom ops on a pattern's parts.

``spmm(layout, i0, i1, shape, values, B, transpose)`` is ``A @ B`` (``Aᵀ @ B`` with
``transpose``) for the folded matrix A holding ``values`` (flat, in stored order) at the
pattern; ``sampled(layout, i0, i1, shape, U, V)`` is ``<U[row_k], V[col_k]>`` at every stored
entry. Each one's backward is the other (and spmm on the transposed pattern), the same
pair as :func:`tsgu.core.extend.pattern_matmul` / :func:`~tsgu.core.extend.sampled_product`,
so gradients stay O(nnz) and every backward is differentiable again.
"""

from typing import Any, Optional

import torch

from .._pattern import _matmul_kernel, _sampled_kernel
from .parts import nnz_of, pattern_of

__all__ = ["sampled", "spmm"]


@torch.library.custom_op("tsgu::spmm", mutates_args=())
def spmm(
    layout: str,
    index0: torch.Tensor,
    index1: Optional[torch.Tensor],  # noqa: UP045 (the spelling every torch reads)
    shape: list[int],
    values: torch.Tensor,
    B: torch.Tensor,
    transpose: bool,
) -> torch.Tensor:
    pattern = pattern_of(layout, index0, index1, shape, values)
    return _matmul_kernel(pattern.t if transpose else pattern, values, B)


@spmm.register_fake
def _(layout, index0, index1, shape, values, B, transpose):  # type: ignore[no-untyped-def]
    b = shape[0] if len(shape) == 3 else 1
    rows = b * (shape[-1] if transpose else shape[-2])
    return B.new_empty((rows, B.shape[1]))


@torch.library.custom_op("tsgu::sampled", mutates_args=())
def sampled(
    layout: str,
    index0: torch.Tensor,
    index1: Optional[torch.Tensor],  # noqa: UP045 (the spelling every torch reads)
    shape: list[int],
    U: torch.Tensor,
    V: torch.Tensor,
) -> torch.Tensor:
    return _sampled_kernel(pattern_of(layout, index0, index1, shape, U), U, V)


@sampled.register_fake
def _(layout, index0, index1, shape, U, V):  # type: ignore[no-untyped-def]
    return U.new_empty((nnz_of(layout, index0, index1),))


def _spmm_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    layout, index0, index1, shape, values, B, transpose = inputs
    ctx.layout, ctx.shape, ctx.transpose = layout, shape, transpose
    ctx.save_for_backward(index0, index1, values, B)


def _spmm_backward(ctx: Any, grad_C: torch.Tensor) -> tuple[Any, ...]:
    index0, index1, values, B = ctx.saved_tensors
    parts = (ctx.layout, index0, index1, ctx.shape)
    grad_values = grad_B = None
    if ctx.needs_input_grad[4]:
        # C = A B: grad A_ij = <grad_C[i], B[j]>; C = Aᵀ B: grad A_ij = <B[i], grad_C[j]>
        grad_values = sampled(*parts, B, grad_C) if ctx.transpose else sampled(*parts, grad_C, B)
    if ctx.needs_input_grad[5]:
        grad_B = spmm(*parts, values, grad_C, not ctx.transpose)
    return None, None, None, None, grad_values, grad_B, None


def _sampled_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    layout, index0, index1, shape, U, V = inputs
    ctx.layout, ctx.shape = layout, shape
    ctx.save_for_backward(index0, index1, U, V)


def _sampled_backward(ctx: Any, grad_values: torch.Tensor) -> tuple[Any, ...]:
    index0, index1, U, V = ctx.saved_tensors
    parts = (ctx.layout, index0, index1, ctx.shape)
    grad_U = grad_V = None
    if ctx.needs_input_grad[4]:
        grad_U = spmm(*parts, grad_values, V, False)
    if ctx.needs_input_grad[5]:
        grad_V = spmm(*parts, grad_values, U, True)
    return None, None, None, None, grad_U, grad_V


spmm.register_autograd(_spmm_backward, setup_context=_spmm_setup)
sampled.register_autograd(_sampled_backward, setup_context=_sampled_setup)
