"""``tsgu::linear_solve``: tsgu's one differentiable solve as one custom op on a matrix's parts.

A :class:`~tsgu.core.extend.LinearSolver` is a Python object made from a sparse tensor,
which neither Dynamo nor a custom op can carry. In a compiled region a solve therefore names
its solver: a :class:`SolverSpec` (a registered name and options of plain values, passed to
the op as JSON), and the op, when it runs, builds the sparse tensor from the parts and the
solver from the spec with the factory registered under that name. The whole solve (a
Krylov loop whose length depends on the data included) is one node of the graph, and its
backward is this op again on the transposed system plus a ``tsgu::sampled`` product at A's
pattern: O(nnz), differentiable again. Each solve registers its factory once
(:func:`register_solver`) and calls :func:`parts_linear_solve` on parts; the mechanism (the
op, its gradients, the folding of right-hand sides) is written once, here.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, cast

import torch

from .._linear_solve import LinearSolver, _solve_checked, check_solve_operands, fold_block
from .._pattern import Pattern
from .options import encode_options
from .parts import SparseParts, nnz_of, pattern_of, sparse_of
from .products import sampled

__all__ = ["SolverSpec", "parts_linear_solve", "register_solver"]

Factory = Callable[[torch.Tensor, Pattern, dict[str, Any]], LinearSolver]
UsedEntries = Callable[[Pattern, dict[str, Any]], Optional[torch.Tensor]]  # noqa: UP045

_FACTORIES: dict[str, tuple[Factory, UsedEntries | None]] = {}


@dataclass(frozen=True)
class SolverSpec:
    """A registered solver's name and its options (bools, numbers, strings, None)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


def register_solver(name: str, factory: Factory, used_entries: UsedEntries | None = None) -> None:
    """Make ``SolverSpec(name, options)`` usable in compiled regions.

    ``factory(A, pattern, options)`` builds the :class:`LinearSolver` for sparse ``A`` (no
    autograd) when the op runs; ``used_entries(pattern, options)`` is the mask of A's
    entries its solves read (None: all), as :meth:`LinearSolver.used_entries`.
    """
    _FACTORIES[name] = (factory, used_entries)


@torch.library.custom_op("tsgu::linear_solve", mutates_args=())
def linear_solve_op(
    layout: str,
    index0: torch.Tensor,
    index1: Optional[torch.Tensor],  # noqa: UP045 (the spelling every torch reads)
    shape: list[int],
    values: torch.Tensor,
    B: torch.Tensor,
    transpose: bool,
    solver: str,
    options: str,
    fn: str,
) -> torch.Tensor:
    A, pattern = sparse_of(layout, index0, index1, shape, values.detach())
    factory = _FACTORIES[solver][0]
    with torch.no_grad():
        X = _solve_checked(factory(A, pattern, json.loads(options)), B, transpose, fn)
    if X.untyped_storage().data_ptr() == B.untyped_storage().data_ptr():
        X = X.clone()  # a custom op's output may not alias its input
    return X


@linear_solve_op.register_fake
def _(layout, index0, index1, shape, values, B, transpose, solver, options, fn):  # type: ignore[no-untyped-def]
    return B.new_empty(B.shape)


@torch.library.custom_op("tsgu::used_entries", mutates_args=())
def used_entries_op(
    layout: str,
    index0: torch.Tensor,
    index1: Optional[torch.Tensor],  # noqa: UP045 (the spelling every torch reads)
    shape: list[int],
    solver: str,
    options: str,
) -> torch.Tensor:
    pattern = pattern_of(layout, index0, index1, shape, torch.empty(0))
    used = _FACTORIES[solver][1]
    mask = used(pattern, json.loads(options)) if used is not None else None
    if mask is None:
        return torch.ones(pattern.nnz, dtype=torch.bool, device=index0.device)
    return mask.to(torch.bool).clone()


@used_entries_op.register_fake
def _(layout, index0, index1, shape, solver, options):  # type: ignore[no-untyped-def]
    return index0.new_empty((nnz_of(layout, index0, index1),), dtype=torch.bool)


def _setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    layout, index0, index1, shape, values, _, transpose, solver, options, fn = inputs
    ctx.layout, ctx.shape, ctx.transpose = layout, shape, transpose
    ctx.solver, ctx.options, ctx.fn = solver, options, fn
    ctx.save_for_backward(index0, index1, values, output)


def _backward(ctx: Any, grad_X: torch.Tensor) -> tuple[Any, ...]:
    index0, index1, values, X = ctx.saved_tensors
    parts = (ctx.layout, index0, index1, ctx.shape)
    spec = (ctx.solver, ctx.options, ctx.fn)
    # grad_B = A⁻ᵀ grad_X (A⁻¹ grad_X for a solve with Aᵀ): the same op, transposed
    grad_B = linear_solve_op(*parts, values, grad_X, not ctx.transpose, *spec)
    grad_values = None
    if ctx.needs_input_grad[4]:
        G, Xf = grad_B.reshape(-1, grad_B.shape[-1]), X.reshape(-1, X.shape[-1])
        # A X = B: grad_A = -grad_B Xᵀ; Aᵀ X = B: grad_A = -X grad_Bᵀ; at A's pattern only
        outer = sampled(*parts, Xf, G) if ctx.transpose else sampled(*parts, G, Xf)
        if _FACTORIES[ctx.solver][1] is not None:
            outer = outer * used_entries_op(*parts, ctx.solver, ctx.options).to(outer.dtype)
        grad_values = -outer
    grad_B_out = grad_B if ctx.needs_input_grad[5] else None
    return None, None, None, None, grad_values, grad_B_out, None, None, None, None


linear_solve_op.register_autograd(_backward, setup_context=_setup)


def parts_linear_solve(
    A: SparseParts,
    B: torch.Tensor,
    spec: SolverSpec,
    *,
    transpose: bool = False,
    fn: str = "linear_solve",
) -> torch.Tensor:
    """:func:`tsgu.core.extend.linear_solve` for parts ``A`` (a compiled region), with the
    solver named by a :class:`SolverSpec`: the checks, the folding, one ``tsgu::linear_solve``."""
    A_, B = check_solve_operands(fn, cast(torch.Tensor, A), B)
    block, unfold = fold_block(A_, B)
    options = encode_options(spec.options)
    values = A.values().reshape(-1)
    X = linear_solve_op(*A.args(), values, block, transpose, spec.name, options, fn)
    return unfold(X)
