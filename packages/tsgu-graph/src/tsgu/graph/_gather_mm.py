"""``gather_mm``: each row times the matrix its index picks."""

from __future__ import annotations

import torch

from tsgu.core.extend import call_compiled, register_compiled

from ._autograd import grouped_mm
from ._grouping import Grouping
from ._validate import check_gather, check_operands

__all__ = ["gather_mm"]


def gather_mm(a: torch.Tensor, b: torch.Tensor, idx_b: torch.Tensor) -> torch.Tensor:
    r"""Multiply each row of ``a`` by the matrix of ``b`` that ``idx_b`` picks for it.

    ``out[i] = a[i] @ b[idx_b[i]]``. This is ``dgl.ops.gather_mm`` (typed edges or nodes
    in any order, each multiplied by the weight of its relation type), with gradients for
    ``a`` and ``b``.

    Parameters
    ----------
    a : torch.Tensor
        Dense ``(N, D1)``: float32 or float64 (float16/bfloat16 are meant for CUDA).
    b : torch.Tensor
        Dense ``(R, D1, D2)``, the dtype and device of ``a``.
    idx_b : torch.Tensor
        ``(N,)`` int32 or int64 indices into ``b``'s first dimension, in ``[0, R)``, in any
        order; a matrix no row picks simply gets a zero gradient. On the CPU or on a's
        device. (DGL takes it as a keyword; here it may also be passed by position, as in
        torchsparsegradutils 0.2.)

    Returns
    -------
    torch.Tensor
        ``(N, D2)``, the dtype and device of ``a``.

    Raises
    ------
    TypeError
        An argument that is not a tensor, or a sparse one.
    ValueError
        ``a`` not 2D, ``b`` not 3D, ``b.shape[1] != a.shape[1]``, ``idx_b`` not of shape
        ``(N,)``; a dtype other than float32/float64/float16/bfloat16 for ``a``, a different
        one for ``b``, a non-integer ``idx_b``; ``a`` and ``b`` on different devices,
        ``idx_b`` on a third; an index outside ``[0, R)``.

    Notes
    -----
    With :math:`\bar C` the incoming gradient,

    .. math::

        C_i = A_i B_{\mathrm{idx}_i}, \qquad \bar A_i = \bar C_i B_{\mathrm{idx}_i}^\top,
        \qquad \bar B_r = \sum_{i : \mathrm{idx}_i = r} A_i^\top \bar C_i ,

    built from the same products, so second derivatives are exact.

    Sort and segment: a stable sort of ``idx_b`` (skipped when it is already sorted) puts
    the rows of each type together, and the segments are multiplied as in
    :func:`~tsgu.graph.segment_mm`, in one kernel call with no Python loop over the types;
    nothing of size N x D1 x D2 is formed (``torch.bmm(a[:, None], b[idx_b])`` builds one).
    The indices are read on the host once (a device synchronisation when they live on a
    GPU) to check their range: indices out of range are an error. Every float dtype works.

    Examples
    --------
    >>> import torch
    >>> from tsgu.graph import gather_mm
    >>> a = torch.arange(1.0, 7.0, dtype=torch.float64).reshape(3, 2).requires_grad_()
    >>> b = torch.stack([torch.eye(2), -torch.eye(2)]).double().requires_grad_()
    >>> c = gather_mm(a, b, torch.tensor([1, 0, 1]))
    >>> c
    tensor([[-1., -2.],
            [ 3.,  4.],
            [-5., -6.]], dtype=torch.float64, grad_fn=<...>)
    >>> c.sum().backward()
    >>> b.grad[0]  # a[1].T @ ones: the one row that picked b[0]
    tensor([[3., 3.],
            [4., 4.]], dtype=torch.float64)
    """
    if torch.compiler.is_compiling():  # the grouping reads the indices: one op, traced as such
        check_operands("gather_mm", a, b)
        return call_compiled("tsgu.graph.gather_mm", [a, b, idx_b], {})
    a, b, idx, is_sorted = check_gather(a, b, idx_b)
    return grouped_mm(a, b, Grouping.from_indices(idx, is_sorted, a, b))


def _compiled(tensors: list[torch.Tensor], options: dict[str, object]) -> torch.Tensor:
    """The eager gather_mm on a compiled op's tensors."""
    return gather_mm(*tensors)


def _compiled_fake(tensors: list[torch.Tensor], options: dict[str, object]) -> torch.Tensor:
    a, b = tensors[0], tensors[1]
    return a.new_empty((a.shape[0], b.shape[-1]))


register_compiled("tsgu.graph.gather_mm", _compiled, _compiled_fake)
