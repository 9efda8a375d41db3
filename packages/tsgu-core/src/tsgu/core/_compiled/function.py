"""``tsgu::function``: an eager tsgu function, differentiable, as one custom op.

Some operations (the segment reductions of :func:`~tsgu.core.sparse_softmax` and
:func:`~tsgu.core.sparse_logsumexp`, tsgu-graph's grouped products) read their index
tensors on the host to plan the work, which Dynamo cannot trace. Registered here under a
name with a shape function, such an operation runs in a compiled region as one op on its
tensors (a list) and its options (JSON). Its backward is a second op, ``tsgu::function_vjp``,
that runs the eager function again and its own O(nnz) backward; that op's backward,
``tsgu::function_vjp2``, runs the eager double backward, so second derivatives work as they
do eagerly (third derivatives do not: ``function_vjp2`` has no autograd formula).
"""

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

import torch

from .options import encode_options

__all__ = ["call_function", "register_function"]

Function = Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]

_FUNCTIONS: dict[str, tuple[Function, Function]] = {}


def register_function(name: str, function: Function, fake: Function) -> None:
    """Make ``call_function(name, tensors, options)`` run ``function(tensors, options)`` as
    one custom op, so that it compiles with ``torch.compile(fullgraph=True)``.

    ``function(tensors, options)`` is an eager computation returning one tensor,
    differentiable (by ordinary autograd) in its floating-point tensors; ``options`` is a
    dict of str, bool, int, float, None, lists and dicts of them. ``fake(tensors, options)``
    returns an empty tensor with the output's shape, dtype and device, reading only the
    tensors' metadata (they are fake tensors while Dynamo traces). The gradients are the
    eager function's own (it runs again in the backward); second derivatives work where the
    eager function's do.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import call_compiled, register_compiled
    >>> def scaled_gather(tensors, options):  # reads the indices: Dynamo would not trace it
    ...     x, index = tensors
    ...     return x[index.tolist()] * options["scale"]
    >>> register_compiled(
    ...     "my_package.scaled_gather",
    ...     scaled_gather,
    ...     lambda tensors, options: tensors[0].new_empty(tensors[1].shape),
    ... )
    >>> def f(x, index):  # torch.compile(f, fullgraph=True) traces it: one op
    ...     return call_compiled("my_package.scaled_gather", [x, index], {"scale": 2.0})
    >>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = f(x, torch.tensor([2, 0]))
    >>> y
    tensor([6., 2.], grad_fn=<...>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([2., 0., 2.])
    """
    _FUNCTIONS[name] = (function, fake)


def call_function(
    name: str, tensors: Sequence[torch.Tensor], options: dict[str, Any]
) -> torch.Tensor:
    """``function(tensors, options)`` of the function registered as ``name``, as one op
    (see :func:`register_compiled`).

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import call_compiled, register_compiled
    >>> def like_first(t, o):
    ...     return t[0].new_empty(t[0].shape)
    >>> register_compiled("my_package.double", lambda t, o: 2 * t[0], like_first)
    >>> call_compiled("my_package.double", [torch.ones(2)], {})
    tensor([2., 2.])
    """
    out: torch.Tensor = function_op(name, list(tensors), encode_options(options))
    return out


def _fresh(out: torch.Tensor, inputs: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:  # noqa: UP045
    """``out``, copied if it shares memory with an input (a custom op's output may not)."""
    ptr = out.untyped_storage().data_ptr()
    if any(t is not None and t.untyped_storage().data_ptr() == ptr for t in inputs):
        return out.clone()
    return out


def _differentiable(tensors: list[torch.Tensor]) -> list[int]:
    return [i for i, t in enumerate(tensors) if t.is_floating_point()]


@torch.library.custom_op("tsgu::function", mutates_args=())
def function_op(name: str, tensors: list[torch.Tensor], options: str) -> torch.Tensor:
    with torch.no_grad():
        out = _FUNCTIONS[name][0](list(tensors), json.loads(options))
    return _fresh(out, tensors)


@function_op.register_fake
def _(name, tensors, options):  # type: ignore[no-untyped-def]
    return _FUNCTIONS[name][1](list(tensors), json.loads(options))


@contextlib.contextmanager
def _autograd() -> Iterator[None]:
    """Autograd recording inside an op body, where the dispatcher excludes it: the eager
    function's own backward (sparse tensors included, which torch.func does not take) is
    what the vjp ops run."""
    exclude = torch._C._dispatch_tls_local_exclude_set()
    autograd = torch._C.DispatchKeySet(torch._C.DispatchKey.AutogradFunctionality)
    include = torch._C._dispatch_tls_local_include_set()
    with torch._C._ForceDispatchKeyGuard(include, exclude - autograd), torch.enable_grad():
        yield


def _leaves(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    floats = set(_differentiable(tensors))
    return [t.detach().requires_grad_(i in floats) for i, t in enumerate(tensors)]


def _or_zeros(
    grads: Sequence[Optional[torch.Tensor]],  # noqa: UP045
    like: Sequence[torch.Tensor],
    inputs: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    return [
        torch.zeros_like(w) if g is None else _fresh(g.detach(), inputs)
        for w, g in zip(like, grads, strict=True)
    ]


@torch.library.custom_op("tsgu::function_vjp", mutates_args=())
def function_vjp(
    name: str, tensors: list[torch.Tensor], options: str, grad: torch.Tensor
) -> list[torch.Tensor]:
    """The gradients of the floating-point tensors, in order (zeros for an unused one)."""
    leaves = _leaves(list(tensors))
    floats = [leaves[i] for i in _differentiable(leaves)]
    with _autograd():
        out = _FUNCTIONS[name][0](leaves, json.loads(options))
        grads = torch.autograd.grad(out, floats, grad, allow_unused=True)
    return _or_zeros(grads, floats, [*tensors, grad])


@function_vjp.register_fake
def _(name, tensors, options, grad):  # type: ignore[no-untyped-def]
    return [tensors[i].new_empty(tensors[i].shape) for i in _differentiable(list(tensors))]


@torch.library.custom_op("tsgu::function_vjp2", mutates_args=())
def function_vjp2(
    name: str,
    tensors: list[torch.Tensor],
    options: str,
    grad: torch.Tensor,
    grad_grads: list[torch.Tensor],
) -> list[torch.Tensor]:
    """The gradients of ``sum_i <vjp_i, grad_grads_i>`` for the floating-point tensors and
    for ``grad`` (last)."""
    leaves = _leaves(list(tensors))
    floats = [leaves[i] for i in _differentiable(leaves)]
    grad_leaf = grad.detach().requires_grad_()
    wrt = [*floats, grad_leaf]
    with _autograd():
        out = _FUNCTIONS[name][0](leaves, json.loads(options))
        vjps = torch.autograd.grad(out, floats, grad_leaf, create_graph=True, allow_unused=True)
        terms = [
            (v * gg).sum()
            for v, gg in zip(vjps, grad_grads, strict=True)
            if v is not None and v.requires_grad
        ]
        grads: Sequence[Optional[torch.Tensor]] = [None] * len(wrt)  # noqa: UP045
        if terms:  # else the first derivative depends on no input
            grads = torch.autograd.grad(torch.stack(terms).sum(), wrt, allow_unused=True)
    return _or_zeros(grads, wrt, [*tensors, grad, *grad_grads])


@function_vjp2.register_fake
def _(name, tensors, options, grad, grad_grads):  # type: ignore[no-untyped-def]
    floats = [tensors[i].new_empty(tensors[i].shape) for i in _differentiable(list(tensors))]
    return [*floats, grad.new_empty(grad.shape)]


def _setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.name, ctx.options = inputs[0], inputs[2]
    ctx.count = len(inputs[1])
    ctx.save_for_backward(*inputs[1], *inputs[3:4])


def _full(tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> list[Any]:
    """Gradients of the floating-point tensors spread over all the tensors (None for ints)."""
    out: list[Any] = [None] * len(tensors)
    for i, g in zip(_differentiable(list(tensors)), grads, strict=True):
        out[i] = g
    return out


def _function_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    tensors = list(ctx.saved_tensors)
    grads = function_vjp(ctx.name, tensors, ctx.options, grad)
    return None, _full(tensors, grads), None


def _vjp_backward(ctx: Any, grad_grads: list[Optional[torch.Tensor]]) -> tuple[Any, ...]:  # noqa: UP045
    saved = list(ctx.saved_tensors)
    tensors, grad = saved[: ctx.count], saved[ctx.count]
    floats = [tensors[i] for i in _differentiable(tensors)]
    filled = [
        torch.zeros_like(f) if gg is None else gg for f, gg in zip(floats, grad_grads, strict=True)
    ]
    *grads, grad_of_grad = function_vjp2(ctx.name, tensors, ctx.options, grad, filled)
    return None, _full(tensors, grads), None, grad_of_grad


function_op.register_autograd(_function_backward, setup_context=_setup)
function_vjp.register_autograd(_vjp_backward, setup_context=_setup)
