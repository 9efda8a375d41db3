"""segment_mm and gather_mm under torch.compile(fullgraph=True): one custom op each.

Both read their indices on the host to group the rows, which Dynamo cannot trace; in a
compiled region they run as tsgu-core's ``tsgu::function`` op, with their eager gradients.
"""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import generator, tol
from tsgu.graph import gather_mm, segment_mm

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _operands(dtype, n=12, r=4, d1=3, d2=5):
    a = torch.randn(n, d1, generator=generator(1), dtype=torch.float64).to(dtype)
    b = torch.randn(r, d1, d2, generator=generator(2), dtype=torch.float64).to(dtype)
    return a, b


def _compare(f, inputs, dtype):
    eager_in = [x.detach().clone().requires_grad_() for x in inputs]
    compiled_in = [x.detach().clone().requires_grad_() for x in inputs]
    expected = f(*eager_in)
    got = torch.compile(f, fullgraph=True, backend="aot_eager")(*compiled_in)
    torch.testing.assert_close(got, expected, **tol(dtype))
    weights = torch.randn(expected.shape, generator=generator(3), dtype=torch.float64).to(dtype)
    grads_expected = torch.autograd.grad((expected * weights).sum(), eager_in)
    grads_got = torch.autograd.grad((got * weights).sum(), compiled_in)
    for g, e in zip(grads_got, grads_expected, strict=True):
        torch.testing.assert_close(g, e, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_segment_mm_compiled_equals_eager(dtype):
    a, b = _operands(dtype)
    seglen = torch.tensor([3, 0, 7, 2])

    def f(a, b):
        return torch.relu(segment_mm(a, b, seglen))

    _compare(f, [a, b], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ordered", [True, False])
def test_gather_mm_compiled_equals_eager(dtype, ordered):
    a, b = _operands(dtype)
    idx = torch.randint(0, b.shape[0], (a.shape[0],), generator=generator(4))
    if ordered:
        idx = idx.sort().values

    def f(a, b):
        return gather_mm(a, b, idx) * 2

    _compare(f, [a, b], dtype)


@pytest.mark.parametrize(
    ("name", "third"),
    [("segment_mm", torch.tensor([3, 0, 7, 2])), ("gather_mm", torch.tensor([1, 0] * 6))],
)
def test_ops_opcheck_and_gradgradcheck(name, third):
    a, b = (t.requires_grad_() for t in _operands(torch.float64))
    op = torch.ops.tsgu.function.default
    torch.library.opcheck(op, (f"tsgu.graph.{name}", [a, b, third], "{}"))

    def f(a, b):
        return op(f"tsgu.graph.{name}", [a, b, third], "{}")

    assert torch.autograd.gradcheck(f, (a, b))
    assert torch.autograd.gradgradcheck(f, (a, b))


def test_compiled_lengths_are_checked_when_the_op_runs():
    a, b = _operands(torch.float64)
    f = torch.compile(lambda a, b: segment_mm(a, b, torch.tensor([1, 1, 1, 1])), fullgraph=True)
    with pytest.raises(ValueError, match=r"^segment_mm: seglen_a must sum to N"):
        f(a, b)


def test_compiled_operands_are_checked_while_tracing():
    a, b = _operands(torch.float64)
    f = torch.compile(lambda a, b: gather_mm(a, b, torch.zeros(12, dtype=torch.int64)))
    with pytest.raises(ValueError, match=r"^gather_mm: b must have the dtype of a"):
        f(a, b.float())
