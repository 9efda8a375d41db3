"""``sparse_logsumexp`` and ``sparse_bidir_logsumexp``: log-sum-exp over stored values.

The meaning is torchsparsegradutils 0.2.5's: reduce rows, columns or whole matrices of a
sparse COO/CSR/CSC matrix (or of each matrix of a batch), counting absent entries as zeros
(``include_zeros=True``, the dense ``torch.logsumexp``) or leaving them out (a support mask).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ._compiled.function import call_function, register_function
from ._compiled.parts import SparseParts, tensor_of
from ._pattern import Pattern, values_of
from ._segment import (
    Cells,
    Segments,
    check_input,
    gather,
    gather_kernel,
    global_shift,
    output_shape,
    reduced_axis,
    segment_max,
    sum_kernel,
)
from .validation import check_choice

__all__ = ["sparse_bidir_logsumexp", "sparse_logsumexp"]

_OUTPUT_LAYOUTS = ("tuple", "padded", "nested")


class _SegmentLogSumExp(torch.autograd.Function):
    """``log(sum_k exp(values_k) + absent)`` per group; ``shift`` is a global shift or None."""

    @staticmethod
    def forward(
        values: torch.Tensor,
        seg: Segments,
        absent: torch.Tensor | None,
        shift: float | None,
    ) -> torch.Tensor:
        if shift is not None:
            total = sum_kernel(seg, torch.sub(values, shift).exp_())
            if absent is not None:
                total.add_(absent * math.exp(-shift))
            return total.log_().add_(shift)
        # Per-group max shift; a group with absent entries (zeros) is shifted by at least 0.
        top = segment_max(seg, values)
        if absent is not None:
            top = torch.where(absent > 0, top.clamp(min=0.0), top)
        # An empty group (-inf) or an infinite value keeps shift 0: inf - inf would be NaN.
        group_shift = torch.where(torch.isfinite(top), top, top.new_zeros(()))
        total = sum_kernel(seg, torch.sub(values, gather_kernel(seg, group_shift)).exp_())
        if absent is not None:
            # groups with absent entries have shift >= 0: the clamp only guards the others,
            # whose term is 0 (0 * exp(-shift) could be 0 * inf)
            total.add_(absent * torch.exp(-group_shift.clamp(min=0.0)))
        return total.log_().add_(group_shift)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        values, seg, _, shift = inputs
        ctx.seg, ctx.shift = seg, shift
        ctx.save_for_backward(values, output)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        values, out = ctx.saved_tensors
        seg, shift = ctx.seg, ctx.shift
        # grad_values[k] = grad_out[g_k] * exp(values[k] - out[g_k]), written with
        # differentiable ops (gather is a Function whose backward is a segment sum), so
        # that the backward has a backward too.
        if shift is not None:
            # exp(v - out[g]) = exp(v - shift) * exp(shift - out[g]): one gather, not two.
            # An empty group's out is -inf (never gathered): keep its factor finite.
            safe_out = torch.where(out == -math.inf, out.new_full((), shift), out)
            weight = gather(seg, grad_out * torch.exp(shift - safe_out))
            local = torch.sub(values, shift)
        else:
            weight = gather(seg, grad_out)
            local = values - gather(seg, out)
        if torch.is_grad_enabled():  # create_graph: keep every intermediate intact
            return weight * local.exp(), None, None, None
        return weight.mul_(local.exp_()), None, None, None


def _logsumexp(
    cells: Cells, values: torch.Tensor, axis: str, include_zeros: bool, shift: float | None
) -> torch.Tensor:
    """The flat ``(groups,)`` reduction of the cell values over ``axis``."""
    seg = cells.segments(axis)
    absent = seg.absent(values.dtype) if include_zeros else None
    out: torch.Tensor = _SegmentLogSumExp.apply(values, seg, absent, shift)
    return out


def _prepare(A: torch.Tensor, include_zeros: bool) -> tuple[Cells, torch.Tensor, float | None]:
    pattern = Pattern.of(A)
    cells = Cells(A, pattern)
    values = cells.merge(values_of(A, pattern))
    return cells, values, global_shift(values.detach(), include_zeros)


def sparse_logsumexp(
    input: torch.Tensor,
    dim: int | list[int] | tuple[int, ...],
    keepdim: bool = False,
    include_zeros: bool = True,
) -> torch.Tensor:
    r"""Log-sum-exp of a sparse matrix along ``dim``, as :func:`torch.logsumexp`, in O(nnz).

    Parameters
    ----------
    input : torch.Tensor
        Sparse COO (coalesced or not), CSR or CSC, float32 or float64: a matrix ``(r, c)``
        or a batch ``(b, r, c)`` whose matrices are reduced one by one. CSR/CSC may have
        int32 or int64 indices. Duplicate COO entries count as their sum (the value the
        tensor holds).
    dim : int or sequence of int
        Unbatched: ``1`` (one value per row), ``0`` (one per column) or ``[0, 1]`` (a
        scalar). Batched: ``2``, ``1`` or ``[1, 2]``; the batch dimension ``0`` is never
        reduced. Negative dims count from the end.
    keepdim : bool, default False
        Keep the reduced dimensions with size 1.
    include_zeros : bool, default True
        ``True``: every absent entry is a zero, contributing ``exp(0) = 1``; the result
        equals ``torch.logsumexp(input.to_dense(), dim)``. ``False``: absent entries are
        ``-inf`` (the pattern is a support mask); a row with no stored entry gives ``-inf``.

    Returns
    -------
    torch.Tensor
        Dense, shaped as :func:`torch.logsumexp` shapes it: ``(r,)`` for ``dim=1``, ``(c,)``
        for ``dim=0``, ``()`` for ``[0, 1]``; ``(b, r)``, ``(b, c)``, ``(b,)`` batched.

    Raises
    ------
    TypeError
        ``input`` is not a sparse COO/CSR/CSC tensor (dense, BSR, ...); ``dim`` is not an
        int or a sequence of ints.
    ValueError
        A hybrid tensor (dense dimensions), a rank other than 2 or 3, a dtype other than
        float32/float64; ``dim`` empty, out of range, repeated, or naming the batch
        dimension of a batched input.

    Notes
    -----
    With :math:`S_g` the stored values of group :math:`g` (a row, a column or a matrix),
    :math:`z_g` its number of absent entries (counted only with ``include_zeros``) and
    :math:`s_g` a shift,

    .. math::

        \mathrm{out}_g = s_g + \log\Big(\sum_{k \in S_g} e^{v_k - s_g} + z_g\, e^{-s_g}\Big),
        \qquad \bar v_k = \bar{\mathrm{out}}_{g(k)}\, e^{v_k - \mathrm{out}_{g(k)}} .

    :math:`s_g` is the group's maximum (with 0 when it has absent entries); on the CPU one
    shift serves every group when all exponents lie within a range where that is just as
    exact, which spares a pass. Infinities and NaN behave as in :func:`torch.logsumexp`,
    gradients included. The gradient of ``input`` is sparse, with its layout, indices and
    value order (duplicates of an uncoalesced COO tensor each get their cell's gradient);
    it is O(nnz) and itself differentiable.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_logsumexp
    >>> i = torch.tensor([[0, 1, 1], [1, 0, 2]])
    >>> x = torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0, 3.0]), (3, 3))
    >>> sparse_logsumexp(x, dim=1)
    tensor([1.5514, 3.3490, 1.0986])
    >>> torch.logsumexp(x.to_dense(), dim=1)
    tensor([1.5514, 3.3490, 1.0986])
    >>> sparse_logsumexp(x, dim=1, include_zeros=False)
    tensor([1.0000, 3.3133,   -inf])
    >>> sparse_logsumexp(x, dim=[0, 1], keepdim=True)
    tensor([[3.5889]])
    """
    fn = "sparse_logsumexp"
    if isinstance(input, SparseParts):  # a compiled region: the eager function as one op
        options = {"layout": str(input.layout), "shape": list(input.shape), "dim": dim}
        options.update(keepdim=keepdim, include_zeros=include_zeros)
        return call_function("logsumexp", [*input.indices, input.values()], options)
    A = check_input(fn, input)
    axis = reduced_axis(fn, A, dim)
    cells, values, shift = _prepare(A, include_zeros)
    out = _logsumexp(cells, values, axis, include_zeros, shift)
    return out.reshape(output_shape(A, axis, keepdim))


def sparse_bidir_logsumexp(
    input: torch.Tensor,
    keepdim: bool = False,
    include_zeros: bool = True,
    output_layout: Literal["tuple", "padded", "nested"] = "tuple",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Column-wise and row-wise log-sum-exp of a sparse matrix, in one call.

    The same as ``(sparse_logsumexp(input, -2, ...), sparse_logsumexp(input, -1, ...))``
    (the reduction over rows, one value per column, comes first), sharing the work on the
    pattern (reading it, merging COO duplicates) between the two.

    Parameters
    ----------
    input : torch.Tensor
        As in :func:`sparse_logsumexp`: sparse COO/CSR/CSC ``(r, c)`` or ``(b, r, c)``.
    keepdim : bool, default False
        Keep the reduced dimension of each result; only with ``output_layout="tuple"``.
    include_zeros : bool, default True
        As in :func:`sparse_logsumexp`.
    output_layout : {"tuple", "padded", "nested"}, default "tuple"
        ``"tuple"``: ``(col_lse, row_lse)``, shapes ``(c,)``, ``(r,)`` (batched
        ``(b, c)``, ``(b, r)``). ``"padded"``: one tensor ``(2, G)`` (batched ``(2, b, G)``),
        ``G = max(r, c)``, ``out[0]`` the column result and ``out[1]`` the row result, each
        padded with ``-inf``. ``"nested"``: ``torch.nested.as_nested_tensor([col_lse,
        row_lse])`` (torch's nested tensors are a prototype and warn so).

    Returns
    -------
    tuple of torch.Tensor, or torch.Tensor
        As ``output_layout`` says.

    Raises
    ------
    TypeError
        ``input`` is not a sparse COO/CSR/CSC tensor.
    ValueError
        A hybrid tensor, a rank other than 2 or 3, a dtype other than float32/float64; an
        unknown ``output_layout``; ``keepdim=True`` with an ``output_layout`` other than
        ``"tuple"``.

    Notes
    -----
    Each result and its gradient are those of :func:`sparse_logsumexp`; the gradient of
    ``input`` is the sum of both, sparse with the input's pattern and order.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_bidir_logsumexp
    >>> i = torch.tensor([[0, 1, 1], [1, 0, 2]])
    >>> x = torch.sparse_coo_tensor(i, torch.tensor([1.0, 2.0, 3.0]), (3, 3)).to_sparse_csr()
    >>> col_lse, row_lse = sparse_bidir_logsumexp(x)
    >>> col_lse
    tensor([2.2395, 1.5514, 3.0949])
    >>> row_lse
    tensor([1.5514, 3.3490, 1.0986])
    >>> sparse_bidir_logsumexp(x, include_zeros=False, output_layout="padded")
    tensor([[2.0000, 1.0000, 3.0000],
            [1.0000, 3.3133,   -inf]])
    """
    fn = "sparse_bidir_logsumexp"
    A = check_input(fn, input)
    check_choice(fn, "output_layout", output_layout, _OUTPUT_LAYOUTS)
    if keepdim and output_layout != "tuple":
        raise ValueError(
            f"{fn}: keepdim=True needs output_layout='tuple', got "
            f"output_layout={output_layout!r}; keep the dimensions after unpacking the tuple"
        )
    cells, values, shift = _prepare(A, include_zeros)
    col_lse = _logsumexp(cells, values, "cols", include_zeros, shift)
    row_lse = _logsumexp(cells, values, "rows", include_zeros, shift)
    if output_layout == "tuple":
        return (
            col_lse.reshape(output_shape(A, "cols", keepdim)),
            row_lse.reshape(output_shape(A, "rows", keepdim)),
        )
    b, r, c = cells.batch, cells.n, cells.m
    col_lse, row_lse = col_lse.reshape(b, c), row_lse.reshape(b, r)
    if output_layout == "nested":
        if A.dim() == 2:
            col_lse, row_lse = col_lse[0], row_lse[0]
        return torch.nested.as_nested_tensor([col_lse, row_lse])
    width = max(r, c)
    padded = torch.stack(
        [
            F.pad(col_lse, (0, width - c), value=-math.inf),
            F.pad(row_lse, (0, width - r), value=-math.inf),
        ]
    )
    return padded if A.dim() == 3 else padded[:, 0]


def _compiled_function(tensors: list[torch.Tensor], options: dict[str, Any]) -> torch.Tensor:
    """The eager logsumexp on a compiled op's tensors."""
    A = tensor_of(getattr(torch, options["layout"].split(".")[-1]), tensors, options["shape"])
    return sparse_logsumexp(A, options["dim"], options["keepdim"], options["include_zeros"])


def _compiled_fake(tensors: list[torch.Tensor], options: dict[str, Any]) -> torch.Tensor:
    """The output's shape as :func:`torch.logsumexp` gives it (the dims are checked when the
    op runs)."""
    shape, dim = options["shape"], options["dim"]
    reduced = {d % len(shape) for d in ([dim] if isinstance(dim, int) else dim)}
    out = [
        1 if i in reduced else s
        for i, s in enumerate(shape)
        if options["keepdim"] or i not in reduced
    ]
    return tensors[-1].new_empty(out)


register_function("logsumexp", _compiled_function, _compiled_fake)
