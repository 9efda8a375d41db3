"""``sparse_softmax`` and ``sparse_log_softmax`` over the stored values, any sparse layout.

Absent entries are ``-inf`` (the pattern is a support mask), as :func:`torch.sparse.softmax`
defines it; unlike torch 2.13's, these take CSR and CSC (graph attention over a CSR
adjacency), keep the input's pattern and give O(nnz) gradients that are differentiable again.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from ._compiled.function import call_function, register_function
from ._compiled.parts import SparseParts, tensor_of
from ._pattern import Pattern, from_values, values_of
from ._segment import (
    Cells,
    Segments,
    check_input,
    gather,
    gather_kernel,
    global_shift,
    reduced_axis,
    segment_max,
    segment_sum,
    sum_kernel,
)
from .validation import FLOAT_DTYPES

__all__ = ["sparse_log_softmax", "sparse_softmax"]


class _SegmentSoftmax(torch.autograd.Function):
    """Softmax (or log-softmax) of the values within each group."""

    @staticmethod
    def forward(
        values: torch.Tensor, seg: Segments, shift: float | None, log: bool
    ) -> torch.Tensor:
        if shift is not None:
            shifted = torch.sub(values, shift)
        else:
            # A group of -inf (or holding +inf) gets NaN, as torch.softmax gives.
            shifted = values - gather_kernel(seg, segment_max(seg, values))
        if log:
            total = sum_kernel(seg, shifted.exp())
            return shifted.sub_(gather_kernel(seg, total.log_()))
        exp = shifted.exp_()
        return exp.div_(gather_kernel(seg, sum_kernel(seg, exp)))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.seg, ctx.log = inputs[1], inputs[3]
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (out,) = ctx.saved_tensors
        seg = ctx.seg
        # Written with differentiable ops and the gather / segment-sum pair, so that this
        # backward has a backward (second derivatives).
        if ctx.log:  # grad - softmax * sum_group(grad)
            return grad - out.exp() * gather(seg, segment_sum(seg, grad)), None, None, None
        # softmax * (grad - sum_group(grad * softmax))
        return out * (grad - gather(seg, segment_sum(seg, grad * out))), None, None, None


def _softmax(
    fn: str, input: object, dim: object, dtype: torch.dtype | None, log: bool
) -> torch.Tensor:
    if isinstance(input, SparseParts):  # a compiled region: the eager function as one op
        options = {"layout": str(input.layout), "shape": list(input.shape), "dim": dim}
        options.update(dtype=None if dtype is None else str(dtype), log=log, fn=fn)
        values = call_function("softmax", [*input.indices, input.values()], options)
        parts = SparseParts(input.layout, input.indices, values, tuple(input.shape))
        return cast(torch.Tensor, parts)
    A = check_input(fn, input)
    if dtype is not None and dtype not in FLOAT_DTYPES:
        raise ValueError(f"{fn}: dtype must be torch.float32 or torch.float64, got {dtype}")
    axis = reduced_axis(fn, A, dim, single=True)
    pattern = Pattern.of(A)
    cells = Cells(A, pattern)
    values = cells.merge(values_of(A, pattern))
    if dtype is not None:
        values = values.to(dtype)
    seg = cells.segments(axis)
    out: torch.Tensor = _SegmentSoftmax.apply(
        values, seg, global_shift(values.detach(), False), log
    )
    return from_values(pattern, cells.spread(out))


def sparse_softmax(
    input: torch.Tensor, dim: int, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""Softmax of a sparse matrix's stored values along ``dim``; absent entries are -inf.

    Parameters
    ----------
    input : torch.Tensor
        Sparse COO (coalesced or not), CSR or CSC, float32 or float64, ``(r, c)`` or a batch
        ``(b, r, c)``; CSR/CSC may have int32 or int64 indices.
    dim : int
        ``1`` (each row sums to 1 over its stored entries) or ``0`` (each column);
        batched: ``2`` or ``1``. Negative dims count from the end; the batch dimension is
        never reduced.
    dtype : torch.dtype, optional
        Cast the values to float32 or float64 first, as :func:`torch.sparse.softmax` does.

    Returns
    -------
    torch.Tensor
        Sparse, with the input's layout, index tensors (same index dtype) and value order.
        For an uncoalesced COO input with repeated positions, a position's result sits on
        its first stored entry and the repeats hold 0, so ``out.coalesce()`` is
        ``torch.sparse.softmax(input, dim)``.

    Raises
    ------
    TypeError
        ``input`` is not a sparse COO/CSR/CSC tensor; ``dim`` is not an int.
    ValueError
        A hybrid tensor, a rank other than 2 or 3, a dtype other than float32/float64;
        ``dim`` out of range or the batch dimension of a batched input.
        (:func:`torch.sparse.softmax` raises ``NotImplementedError`` for CSR and CSC and
        reduces the batch dimension when asked to.)

    Notes
    -----
    Within each group :math:`g` (the stored entries of a row or a column),

    .. math::

        y_k = \frac{e^{v_k - s_g}}{\sum_{j \in g} e^{v_j - s_g}}, \qquad
        \bar v_k = y_k \Big(\bar y_k - \sum_{j \in g} \bar y_j\, y_j\Big),

    with :math:`s_g` the group's maximum (on the CPU, one shift for all groups when the
    values span a range where that is as exact). A row whose entries are all ``-inf``, or
    that holds ``+inf``, gives NaN, as :func:`torch.softmax` does. Rows without stored
    entries stay empty. The gradient of ``input`` is sparse with its pattern and order,
    O(nnz) and differentiable again.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_softmax
    >>> A = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]).to_sparse_csr()
    >>> S = sparse_softmax(A, dim=1)
    >>> S.layout, S.values()
    (torch.sparse_csr, tensor([0.2689, 0.7311, 1.0000]))
    >>> torch.sparse.softmax(A.to_sparse(), dim=1).values()
    tensor([0.2689, 0.7311, 1.0000])
    """
    return _softmax("sparse_softmax", input, dim, dtype, log=False)


def sparse_log_softmax(
    input: torch.Tensor, dim: int, *, dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""Log-softmax of a sparse matrix's stored values along ``dim``; absent entries are -inf.

    The logarithm of :func:`sparse_softmax`, computed directly (stable for very negative
    values). Parameters, layouts, returns and errors are those of :func:`sparse_softmax`.

    Parameters
    ----------
    input : torch.Tensor
        Sparse COO/CSR/CSC ``(r, c)`` or ``(b, r, c)``, float32 or float64.
    dim : int
        The dimension whose stored entries are normalised (not the batch dimension).
    dtype : torch.dtype, optional
        Cast the values to float32 or float64 first.

    Returns
    -------
    torch.Tensor
        Sparse with the input's layout, index tensors and value order.

    Raises
    ------
    TypeError
        ``input`` is not a sparse COO/CSR/CSC tensor; ``dim`` is not an int.
    ValueError
        A hybrid tensor, a bad rank or dtype, ``dim`` out of range or the batch dimension.

    Notes
    -----
    .. math::

        y_k = v_k - s_g - \log \sum_{j \in g} e^{v_j - s_g}, \qquad
        \bar v_k = \bar y_k - e^{y_k} \sum_{j \in g} \bar y_j .

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_log_softmax
    >>> A = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]).to_sparse_csr()
    >>> sparse_log_softmax(A, dim=1).values()
    tensor([-1.3133, -0.3133,  0.0000])
    """
    return _softmax("sparse_log_softmax", input, dim, dtype, log=True)


def _dtype(name: str | None) -> torch.dtype | None:
    return None if name is None else cast(torch.dtype, getattr(torch, name.split(".")[-1]))


def _compiled_function(tensors: list[torch.Tensor], options: dict[str, Any]) -> torch.Tensor:
    """The eager softmax on a compiled op's tensors: the values of the result, in the input's
    stored shape."""
    A = tensor_of(getattr(torch, options["layout"].split(".")[-1]), tensors, options["shape"])
    out = _softmax(options["fn"], A, options["dim"], _dtype(options["dtype"]), options["log"])
    return values_of(out).reshape(tensors[-1].shape)


def _compiled_fake(tensors: list[torch.Tensor], options: dict[str, Any]) -> torch.Tensor:
    values = tensors[-1]
    return values.new_empty(values.shape, dtype=_dtype(options["dtype"]) or values.dtype)


register_function("softmax", _compiled_function, _compiled_fake)
