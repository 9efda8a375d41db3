"""segment_mm against a plain per-segment loop, gradcheck/gradgradcheck, and every error."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import devices, generator, tol
from tsgu.graph import _paths, segment_mm

# (name, lengths, D1, D2): empty segments first, in the middle and last; R = 1; N = 0;
# one-row segments; D1/D2 that the grouped kernel takes (multiples of 16 bytes) and not.
LENGTHS = [
    ("mixed", [3, 0, 5, 1, 0, 4], 4, 8),
    ("empty ends", [0, 0, 6, 2, 0], 8, 4),
    ("R=1", [7], 4, 4),
    ("R=1 odd dims", [7], 3, 5),
    ("all one row", [1, 1, 1, 1], 5, 3),
    ("equal lengths", [4, 4, 4], 4, 8),
    ("one long", [1, 29, 2, 0, 1], 4, 4),
    ("N=0", [0, 0], 4, 8),
    ("R=0", [], 4, 4),
]


def reference(a: torch.Tensor, b: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """The definition, one segment at a time (DGL's documented loop)."""
    out = a.new_zeros(a.shape[0], b.shape[2])
    start = 0
    for r, length in enumerate(lengths):
        out[start : start + length] = a[start : start + length] @ b[r]
        start += length
    return out + 0 * (a.sum() + b.sum())  # connected to both, also when N = 0 or R = 0


def skip_unless_runnable(path, device, dtype, d1, d2):
    """The grouped kernel runs only where torch has it and rows are 16-byte aligned."""
    if path == "grouped" and not (
        _paths.grouped_kernel() is not None
        and _paths.aligned_for_grouped(d1, d2, dtype=dtype)
        and _paths.grouped_supported(torch.device(device), dtype)
    ):
        pytest.skip(f"no grouped kernel for {dtype} on {device} with D1={d1}, D2={d2}")


def operands(
    lengths: list[int], d1: int, d2: int, dtype: torch.dtype, device: str = "cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = generator(seed)
    a = torch.randn(sum(lengths), d1, generator=gen, dtype=torch.float64)
    b = torch.randn(len(lengths), d1, d2, generator=gen, dtype=torch.float64)
    return a.to(device, dtype), b.to(device, dtype)


@pytest.mark.parametrize("path", [None, "grouped", "padded"])
@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "lengths", "d1", "d2"), LENGTHS, ids=[c[0] for c in LENGTHS])
def test_matches_the_per_segment_loop(name, lengths, d1, d2, dtype, index_dtype, device, path):
    skip_unless_runnable(path, device, dtype, d1, d2)
    a, b = operands(lengths, d1, d2, dtype, device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    seglen = torch.tensor(lengths, dtype=index_dtype)
    with _paths.force_path(path):
        out = segment_mm(a, b, seglen)
    assert out.shape == (a.shape[0], d2) and out.dtype == dtype and out.device == a.device

    a64 = a.detach().double().requires_grad_(True)
    b64 = b.detach().double().requires_grad_(True)
    expected = reference(a64, b64, lengths)
    torch.testing.assert_close(out.double(), expected, **tol(dtype))

    weight = torch.randn(out.shape, generator=generator(1), dtype=torch.float64).to(device)
    (out.double() * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(a.grad.double(), a64.grad, **tol(dtype))
    torch.testing.assert_close(b.grad.double(), b64.grad, **tol(dtype))
    for r, length in enumerate(lengths):
        if length == 0:  # an empty segment's matrix gets exactly zero
            assert torch.equal(b.grad[r], torch.zeros_like(b.grad[r]))


@pytest.mark.parametrize("seed", range(6))
def test_random_shapes(seed):
    gen = generator(100 + seed)
    R = int(torch.randint(1, 9, (), generator=gen))
    lengths = torch.randint(0, 12, (R,), generator=gen)
    lengths[torch.rand(R, generator=gen) < 0.3] = 0  # some empty segments
    d1, d2 = (int(d) for d in torch.randint(1, 10, (2,), generator=gen))
    lengths_list = lengths.tolist()
    a, b = operands(lengths_list, d1, d2, torch.float32, seed=seed)
    out = segment_mm(a, b, lengths)
    torch.testing.assert_close(out, reference(a, b, lengths_list), **tol(torch.float32))


@pytest.mark.parametrize("device", devices())
def test_lengths_on_the_device_of_a(device):
    lengths = [2, 0, 3]
    a, b = operands(lengths, 4, 4, torch.float64, device)
    on_device = segment_mm(a, b, torch.tensor(lengths, device=device))
    on_cpu = segment_mm(a, b, torch.tensor(lengths))
    torch.testing.assert_close(on_device, on_cpu, rtol=0, atol=0)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype, device):
    lengths = [5, 0, 11, 16]
    a, b = operands(lengths, 16, 8, dtype, device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    out = segment_mm(a, b, torch.tensor(lengths))
    assert out.dtype == dtype
    out.float().square().sum().backward()
    a32 = a.detach().float().requires_grad_(True)
    b32 = b.detach().float().requires_grad_(True)
    expected = reference(a32, b32, lengths)
    expected.square().sum().backward()
    loose = {"rtol": 3e-2, "atol": 3e-2}
    torch.testing.assert_close(out.float(), expected, **loose)
    scale = a32.grad.abs().max()
    torch.testing.assert_close(a.grad.float() / scale, a32.grad / scale, **loose)
    scale = b32.grad.abs().max()
    torch.testing.assert_close(b.grad.float() / scale, b32.grad / scale, **loose)


def test_non_contiguous_operands():
    lengths = [3, 0, 4]
    a, b = operands(lengths, 4, 8, torch.float64)
    a_view = a.t().contiguous().t()  # column-major
    b_view = b.transpose(1, 2).contiguous().transpose(1, 2)
    out = segment_mm(a_view, b_view, torch.tensor(lengths))
    torch.testing.assert_close(out, reference(a, b, lengths), **tol(torch.float64))


def test_only_the_needed_gradient():
    lengths = [2, 3]
    a, b = operands(lengths, 4, 4, torch.float64)
    b.requires_grad_(True)
    segment_mm(a, b, torch.tensor(lengths)).sum().backward()
    assert a.grad is None and b.grad is not None


# ----------------------------------------------------------------------- gradcheck
GRAD_CASES = [("mixed", [2, 0, 3, 1], 3, 2), ("R=1", [4], 2, 3), ("empty last", [3, 2, 0], 4, 4)]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize(
    ("name", "lengths", "d1", "d2"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES]
)
def test_gradcheck_and_gradgradcheck(name, lengths, d1, d2, device):
    a, b = operands(lengths, d1, d2, torch.float64, device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    seglen = torch.tensor(lengths)

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return segment_mm(a, b, seglen)

    assert torch.autograd.gradcheck(fn, (a, b))
    assert torch.autograd.gradgradcheck(fn, (a, b))


# -------------------------------------------------------------------------- errors
def _ok() -> dict[str, object]:
    return {
        "a": torch.zeros(10, 4),
        "b": torch.zeros(3, 4, 5),
        "seglen_a": torch.tensor([3, 0, 7]),
    }


ERRORS = [
    ("a not a tensor", {"a": [[1.0]]}, TypeError, r"segment_mm: a must be a torch.Tensor"),
    ("b not a tensor", {"b": 2.0}, TypeError, r"segment_mm: b must be a torch.Tensor"),
    ("seglen a list", {"seglen_a": [3, 0, 7]}, TypeError, r"seglen_a must be a torch.Tensor"),
    ("a sparse", {"a": torch.zeros(10, 4).to_sparse()}, TypeError, r"a must be a dense"),
    ("b sparse", {"b": torch.zeros(3, 4, 5).to_sparse()}, TypeError, r"b must be a dense"),
    (
        "seglen sparse",
        {"seglen_a": torch.tensor([3, 0, 7]).to_sparse()},
        TypeError,
        r"seglen_a must be a dense",
    ),
    ("a 1D", {"a": torch.zeros(10)}, ValueError, r"segment_mm: a must have 2 dimensions"),
    ("a 3D", {"a": torch.zeros(1, 10, 4)}, ValueError, r"a must have 2 dimensions"),
    ("b 2D", {"b": torch.zeros(4, 5)}, ValueError, r"segment_mm: b must have 3 dimensions"),
    ("D1 mismatch", {"b": torch.zeros(3, 6, 5)}, ValueError, r"b must have shape \(R, D1, D2\)"),
    (
        "a integer",
        {"a": torch.zeros(10, 4, dtype=torch.int64)},
        ValueError,
        r"a must have dtype float32, float64, float16 or bfloat16, got torch.int64",
    ),
    (
        "dtype mismatch",
        {"b": torch.zeros(3, 4, 5, dtype=torch.float64)},
        ValueError,
        r"b must have the dtype of a \(torch.float32\), got torch.float64",
    ),
    (
        "seglen float",
        {"seglen_a": torch.tensor([3.0, 0.0, 7.0])},
        ValueError,
        r"seglen_a must have dtype int32 or int64",
    ),
    (
        "seglen 2D",
        {"seglen_a": torch.tensor([[3, 0, 7]])},
        ValueError,
        r"seglen_a must have 1 dimensions",
    ),
    (
        "seglen wrong length",
        {"seglen_a": torch.tensor([3, 7])},
        ValueError,
        r"seglen_a must have R = b.shape\[0\] = 3 entries, got shape \(2,\)",
    ),
    (
        "negative length",
        {"seglen_a": torch.tensor([4, -1, 7])},
        ValueError,
        r"seglen_a must hold non-negative lengths, got -1 at index 1",
    ),
    (
        "sum too small",
        {"seglen_a": torch.tensor([3, 0, 6])},
        ValueError,
        r"seglen_a must sum to N = a.shape\[0\] = 10, got a sum of 9",
    ),
    (
        "sum too large",
        {"seglen_a": torch.tensor([3, 1, 7])},
        ValueError,
        r"seglen_a must sum to N = a.shape\[0\] = 10, got a sum of 11",
    ),
    (
        "a and b on different devices",
        {"b": torch.zeros(3, 4, 5, device="meta")},
        ValueError,
        r"a and b must be on the same device",
    ),
    (
        "seglen on a third device",
        {"seglen_a": torch.tensor([3, 0, 7], device="meta")},
        ValueError,
        r"seglen_a must be on the CPU or on a's device \(cpu\), got meta",
    ),
]


@pytest.mark.parametrize(("name", "change", "error", "match"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_before_any_work(name, change, error, match):
    kwargs = {**_ok(), **change}
    with pytest.raises(error, match=match):
        segment_mm(**kwargs)
