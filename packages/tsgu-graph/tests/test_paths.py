"""The two kernels (torch's grouped GEMM, the padded bmm) agree, to the second derivative.

The choice between them is internal; ``force_path`` pins it here. The grouped kernel runs
only where the installed torch has it for the device and dtype (torch 2.13 on the CPU:
float32/float16/bfloat16, not float64), so its tests skip elsewhere.
"""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import devices, generator
from tsgu.graph import _paths, gather_mm, segment_mm
from tsgu.graph._grouping import Grouping, _tile_length

D1, D2 = 8, 16  # multiples of 16 bytes in every dtype: both kernels can run


def _grouped_available(device: str, dtype: torch.dtype) -> bool:
    return _paths.grouped_kernel() is not None and _paths.grouped_supported(
        torch.device(device), dtype
    )


def _needs_grouped(device: str, dtype: torch.dtype) -> None:
    if not _grouped_available(device, dtype):
        pytest.skip(f"torch {torch.__version__} has no grouped GEMM for {dtype} on {device}")


def _problem(op: str, device: str, dtype: torch.dtype, seed: int = 0):
    gen = generator(seed)
    R = 6
    if op == "segment":
        lengths = torch.tensor([90, 0, 1, 170, 0, 50])  # long enough for the grouped kernel
        index = lengths
    else:
        index = torch.randint(0, R - 1, (320,), generator=gen)  # type R - 1 unused
    n = int(lengths.sum()) if op == "segment" else index.numel()
    a = torch.randn(n, D1, generator=gen).to(device, dtype)
    b = torch.randn(R, D1, D2, generator=gen).to(device, dtype)
    fn = segment_mm if op == "segment" else gather_mm
    return fn, a, b, index


def _first_and_second(fn, a, b, index):
    """Output, gradients, and second derivatives (gradient of a function of the gradients)."""
    a = a.detach().requires_grad_(True)
    b = b.detach().requires_grad_(True)
    out = fn(a, b, index)
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=out.device)
    loss = (out * weight.view_as(out)).sum() + out.square().sum()
    ga, gb = torch.autograd.grad(loss, (a, b), create_graph=True)
    gga, ggb = torch.autograd.grad(ga.square().sum() + gb.square().sum(), (a, b))
    return [t.detach() for t in (out, ga, gb, gga, ggb)]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("op", ["segment", "gather"])
def test_grouped_and_padded_agree_to_the_second_derivative(op, device):
    _needs_grouped(device, torch.float32)
    fn, a, b, index = _problem(op, device, torch.float32)
    with _paths.force_path("grouped"):
        grouped = _first_and_second(fn, a, b, index)
    with _paths.force_path("padded"):
        padded = _first_and_second(fn, a, b, index)
    for g, p in zip(grouped, padded, strict=True):
        # float32, different summation orders: agreement relative to each result's size
        torch.testing.assert_close(g, p, rtol=1e-4, atol=1e-5 * float(p.abs().max()))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("op", ["segment", "gather"])
def test_grouped_and_padded_agree_in_half_precision(op, dtype, device):
    _needs_grouped(device, dtype)
    fn, a, b, index = _problem(op, device, dtype)
    with _paths.force_path("grouped"):
        grouped = fn(a, b, index)
    with _paths.force_path("padded"):
        padded = fn(a, b, index)
    torch.testing.assert_close(grouped.float(), padded.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("op", ["segment", "gather"])
def test_without_a_grouped_kernel_the_fallback_gives_the_same(op, device, monkeypatch):
    """An older torch (no grouped_mm at all): the automatic choice falls back cleanly."""
    fn, a, b, index = _problem(op, device, torch.float32)
    lengths = torch.tensor([40, 30])
    if device == "cpu" and _grouped_available(device, torch.float32):
        assert Grouping.from_lengths(lengths, a[:70], b[:2]).path == "grouped"
    automatic = _first_and_second(fn, a, b, index)
    monkeypatch.setattr(_paths, "_GROUPED", None)
    monkeypatch.setattr(_paths, "_SUPPORT", {})
    assert Grouping.from_lengths(lengths, a[:70], b[:2]).path == "padded"
    fallback = _first_and_second(fn, a, b, index)
    for x, y in zip(automatic, fallback, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5 * float(y.abs().max()))


def test_a_kernel_that_fails_its_probe_is_not_used(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("not implemented for this device")

    monkeypatch.setattr(_paths, "_GROUPED", broken)
    monkeypatch.setattr(_paths, "_SUPPORT", {})
    a, b = torch.randn(5, D1), torch.randn(2, D1, D2)
    assert not _paths.grouped_supported(a.device, a.dtype)
    assert Grouping.from_lengths(torch.tensor([2, 3]), a, b).path == "padded"
    torch.testing.assert_close(
        segment_mm(a, b, torch.tensor([2, 3])), torch.cat([a[:2] @ b[0], a[2:] @ b[1]])
    )


def test_a_kernel_that_is_wrong_fails_its_probe(monkeypatch):
    real = _paths._GROUPED
    if real is None:
        pytest.skip("no grouped kernel in this torch")

    def off_by_one(*args, **kwargs):
        return real(*args, **kwargs) + 1

    monkeypatch.setattr(_paths, "_GROUPED", off_by_one)
    monkeypatch.setattr(_paths, "_SUPPORT", {})
    assert not _paths.grouped_supported(torch.device("cpu"), torch.float32)


def test_automatic_choice():
    lengths = torch.tensor([40, 30])  # long groups
    a64, b64 = torch.randn(70, D1, dtype=torch.float64), torch.randn(2, D1, D2, dtype=torch.float64)
    expected = "grouped" if _grouped_available("cpu", torch.float64) else "padded"
    assert Grouping.from_lengths(lengths, a64, b64).path == expected
    a, b = a64.float(), b64.float()
    expected = "grouped" if _grouped_available("cpu", torch.float32) else "padded"
    assert Grouping.from_lengths(lengths, a, b).path == expected
    # rows of 3 floats (12 bytes) break the kernel's 16-byte stride rule
    assert Grouping.from_lengths(lengths, a[:, :3], b[:, :3, :5]).path == "padded"
    # many groups of a few rows: one padded bmm beats one mm call per group on the CPU
    short = torch.full((20,), 3)
    assert Grouping.from_lengths(short, a[:60], torch.randn(20, D1, D2)).path == "padded"


def test_forcing_the_grouped_kernel_where_it_cannot_run_is_an_error():
    a, b = torch.randn(5, 3), torch.randn(2, 3, 5)
    with (
        _paths.force_path("grouped"),
        pytest.raises(RuntimeError, match="the grouped kernel was forced but cannot run"),
    ):
        segment_mm(a, b, torch.tensor([2, 3]))


def test_force_path_checks_its_argument_and_restores():
    with (
        pytest.raises(ValueError, match="segment_mm and gather_mm: path must be one of"),
        _paths.force_path("cuda"),
    ):
        pass
    with _paths.force_path("padded"):
        assert _paths.forced_path() == "padded"
    assert _paths.forced_path() is None


# ------------------------------------------------------------------ padded tiling
def test_equal_lengths_need_no_copy():
    lengths = torch.tensor([4, 4, 4])
    a, b = torch.randn(12, 3), torch.randn(3, 3, 5)
    grouping = Grouping.from_lengths(lengths, a, b)
    assert grouping.path == "padded"
    assert grouping.identity and grouping.tile_group is None and grouping.height == 4
    torch.testing.assert_close(segment_mm(a, b, lengths), torch.bmm(a.view(3, 4, 3), b).view(12, 5))


def test_balanced_lengths_take_one_tile_per_group():
    lengths = torch.tensor([90, 100, 110, 95])
    assert _tile_length(lengths, 64, 64) == 110


def test_uneven_lengths_bound_the_padding():
    lengths = torch.tensor([100_000] + [10] * 1023)
    height = _tile_length(lengths, 64, 64)
    tiles = int(((lengths + height - 1) // height).sum())
    assert height < 100_000
    # the padded block stays within 2 N rows (one block of R x longest would be 1024 N)
    assert tiles * height <= 2 * int(lengths.sum())


def test_uneven_lengths_agree_with_the_definition():
    lengths = torch.tensor([0, 300, 1, 2, 0, 45])
    gen = generator(5)
    a = torch.randn(int(lengths.sum()), 3, generator=gen, dtype=torch.float64)
    b = torch.randn(6, 3, 2, generator=gen, dtype=torch.float64)
    grouping = Grouping.from_lengths(lengths, a, b)
    assert grouping.height < 300 and grouping.tile_group is not None
    expected = torch.cat([a[:300] @ b[1], a[300:301] @ b[2], a[301:303] @ b[3], a[303:] @ b[5]])
    torch.testing.assert_close(segment_mm(a, b, lengths), expected)
