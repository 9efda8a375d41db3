"""``segment_mm``: each contiguous block of rows times its own matrix."""

from __future__ import annotations

import torch

from tsgu.core.extend import call_compiled, register_compiled

from ._autograd import grouped_mm
from ._grouping import Grouping
from ._validate import check_operands, check_segment

__all__ = ["segment_mm"]


def segment_mm(a: torch.Tensor, b: torch.Tensor, seglen_a: torch.Tensor) -> torch.Tensor:
    r"""Multiply each contiguous segment of rows of ``a`` by its own matrix of ``b``.

    The rows of ``a`` are cut into R consecutive segments of lengths ``seglen_a``; segment r
    is multiplied by ``b[r]``. This is ``dgl.ops.segment_mm`` (the relation-typed linear
    layer of RGCN/HGT with nodes or edges sorted by type), with gradients for ``a`` and ``b``.

    Parameters
    ----------
    a : torch.Tensor
        Dense ``(N, D1)``: float32 or float64 (float16/bfloat16 are meant for CUDA).
    b : torch.Tensor
        Dense ``(R, D1, D2)``, the dtype and device of ``a``.
    seglen_a : torch.Tensor
        ``(R,)`` int32 or int64 segment lengths, non-negative, summing to N; zero lengths
        (empty segments) are allowed. On the CPU or on a's device.

    Returns
    -------
    torch.Tensor
        ``(N, D2)``: rows ``s_r:e_r`` hold ``a[s_r:e_r] @ b[r]``, where
        ``s_r = seglen_a[:r].sum()`` and ``e_r = s_r + seglen_a[r]``.

    Raises
    ------
    TypeError
        An argument that is not a tensor, or a sparse one.
    ValueError
        ``a`` not 2D, ``b`` not 3D, ``b.shape[1] != a.shape[1]``, ``seglen_a`` not of shape
        ``(R,)``; a dtype other than float32/float64/float16/bfloat16 for ``a``, a different
        one for ``b``, a non-integer ``seglen_a``; ``a`` and ``b`` on different devices,
        ``seglen_a`` on a third; a negative length, or lengths not summing to N.

    Notes
    -----
    With :math:`A_r` the rows of segment r and :math:`\bar C` the incoming gradient,

    .. math::

        C_r = A_r B_r, \qquad \bar A_r = \bar C_r B_r^\top, \qquad
        \bar B_r = A_r^\top \bar C_r ,

    and :math:`\bar B_r = 0` for an empty segment. The backward is built from the same
    two products, so second derivatives are exact.

    All segments go to one kernel call, with no Python loop over them:
    ``torch.nn.functional.grouped_mm`` where the installed torch runs it for the device and
    dtype (torch 2.13: float32, float16, bfloat16 on the CPU; CUDA builds per their support;
    D1 and D2 multiples of 16 bytes), otherwise one ``torch.bmm`` over zero-padded tiles of
    the segments. The choice is internal and both give the same result. The lengths are
    read on the host once (a device synchronisation when they live on a GPU) to validate
    them: a sum other than N is an error.

    Examples
    --------
    >>> import torch
    >>> from tsgu.graph import segment_mm
    >>> a = torch.arange(6.0).reshape(3, 2).requires_grad_()
    >>> b = torch.stack([torch.eye(2), 2 * torch.eye(2)]).requires_grad_()
    >>> c = segment_mm(a, b, torch.tensor([1, 2]))  # row 0 times b[0], rows 1-2 times b[1]
    >>> c
    tensor([[ 0.,  1.],
            [ 4.,  6.],
            [ 8., 10.]], grad_fn=<...>)
    >>> c.sum().backward()
    >>> b.grad[1]  # a[1:3].T @ ones
    tensor([[6., 6.],
            [8., 8.]])
    """
    if torch.compiler.is_compiling():  # the grouping reads the indices: one op, traced as such
        check_operands("segment_mm", a, b)
        return call_compiled("tsgu.graph.segment_mm", [a, b, seglen_a], {})
    a, b, lengths = check_segment(a, b, seglen_a)
    return grouped_mm(a, b, Grouping.from_lengths(lengths, a, b))


def _compiled(tensors: list[torch.Tensor], options: dict[str, object]) -> torch.Tensor:
    """The eager segment_mm on a compiled op's tensors."""
    return segment_mm(*tensors)


def _compiled_fake(tensors: list[torch.Tensor], options: dict[str, object]) -> torch.Tensor:
    a, b = tensors[0], tensors[1]
    return a.new_empty((a.shape[0], b.shape[-1]))


register_compiled("tsgu.graph.segment_mm", _compiled, _compiled_fake)
