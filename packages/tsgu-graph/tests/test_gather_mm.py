"""gather_mm against a per-row reference, gradcheck/gradgradcheck, and every error."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import devices, generator, tol
from tsgu.graph import _paths, gather_mm

# (name, idx, R, D1, D2): unsorted and sorted indices, types no row picks, R = 1, N = 0.
INDICES = [
    ("unsorted", [2, 0, 2, 1, 0, 2, 2, 1, 0, 2], 3, 4, 8),
    ("sorted", [0, 0, 1, 1, 1, 3, 3], 4, 8, 4),
    ("unused types", [4, 1, 4, 4, 1, 6], 7, 4, 4),
    ("R=1", [0, 0, 0, 0, 0], 1, 4, 4),
    ("odd dims", [1, 0, 1, 1, 0, 2], 3, 3, 5),
    ("descending", [3, 3, 2, 1, 0, 0], 4, 4, 8),
    ("N=0", [], 3, 4, 8),
]


def reference(a: torch.Tensor, b: torch.Tensor, idx: list[int]) -> torch.Tensor:
    """The definition, row by row."""
    rows = [a[i] @ b[r] for i, r in enumerate(idx)]
    out = torch.stack(rows) if rows else a.new_zeros(0, b.shape[2])
    return out + 0 * (a.sum() + b.sum())  # connected to both, also when N = 0


def skip_unless_runnable(path, device, dtype, d1, d2):
    """The grouped kernel runs only where torch has it and rows are 16-byte aligned."""
    if path == "grouped" and not (
        _paths.grouped_kernel() is not None
        and _paths.aligned_for_grouped(d1, d2, dtype=dtype)
        and _paths.grouped_supported(torch.device(device), dtype)
    ):
        pytest.skip(f"no grouped kernel for {dtype} on {device} with D1={d1}, D2={d2}")


def operands(
    n: int, r: int, d1: int, d2: int, dtype: torch.dtype, device: str = "cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = generator(seed)
    a = torch.randn(n, d1, generator=gen, dtype=torch.float64)
    b = torch.randn(r, d1, d2, generator=gen, dtype=torch.float64)
    return a.to(device, dtype), b.to(device, dtype)


@pytest.mark.parametrize("path", [None, "grouped", "padded"])
@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "idx", "R", "d1", "d2"), INDICES, ids=[c[0] for c in INDICES])
def test_matches_the_per_row_definition(name, idx, R, d1, d2, dtype, index_dtype, device, path):
    skip_unless_runnable(path, device, dtype, d1, d2)
    a, b = operands(len(idx), R, d1, d2, dtype, device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    with _paths.force_path(path):
        out = gather_mm(a, b, torch.tensor(idx, dtype=index_dtype))
    assert out.shape == (len(idx), d2) and out.dtype == dtype and out.device == a.device

    a64 = a.detach().double().requires_grad_(True)
    b64 = b.detach().double().requires_grad_(True)
    expected = reference(a64, b64, idx)
    torch.testing.assert_close(out.double(), expected, **tol(dtype))

    weight = torch.randn(out.shape, generator=generator(1), dtype=torch.float64).to(device)
    (out.double() * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(a.grad.double(), a64.grad, **tol(dtype))
    torch.testing.assert_close(b.grad.double(), b64.grad, **tol(dtype))
    for r in set(range(R)) - set(idx):  # a type no row picks gets exactly zero
        assert torch.equal(b.grad[r], torch.zeros_like(b.grad[r]))


def test_float64_works():
    """torchsparsegradutils 0.2 crashed here (its output buffer had the default dtype)."""
    a, b = operands(6, 2, 3, 3, torch.float64)
    out = gather_mm(a, b, torch.tensor([1, 0, 1, 1, 0, 0]))
    assert out.dtype == torch.float64


@pytest.mark.parametrize("seed", range(6))
def test_random_shapes(seed):
    gen = generator(200 + seed)
    R = int(torch.randint(1, 9, (), generator=gen))
    N = int(torch.randint(0, 40, (), generator=gen))
    idx = torch.randint(0, R, (N,), generator=gen)
    d1, d2 = (int(d) for d in torch.randint(1, 10, (2,), generator=gen))
    a, b = operands(N, R, d1, d2, torch.float32, seed=seed)
    out = gather_mm(a, b, idx)
    torch.testing.assert_close(out, reference(a, b, idx.tolist()), **tol(torch.float32))


@pytest.mark.parametrize("device", devices())
def test_indices_on_the_device_of_a(device):
    idx = [1, 0, 2, 1]
    a, b = operands(4, 3, 4, 4, torch.float64, device)
    on_device = gather_mm(a, b, torch.tensor(idx, device=device))
    on_cpu = gather_mm(a, b, torch.tensor(idx))
    torch.testing.assert_close(on_device, on_cpu, rtol=0, atol=0)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype, device):
    idx = torch.randint(0, 4, (40,), generator=generator(3))
    a, b = operands(40, 4, 16, 8, dtype, device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    out = gather_mm(a, b, idx)
    assert out.dtype == dtype
    out.float().square().sum().backward()
    a32 = a.detach().float().requires_grad_(True)
    b32 = b.detach().float().requires_grad_(True)
    expected = reference(a32, b32, idx.tolist())
    expected.square().sum().backward()
    loose = {"rtol": 3e-2, "atol": 3e-2}
    torch.testing.assert_close(out.float(), expected, **loose)
    scale = a32.grad.abs().max()
    torch.testing.assert_close(a.grad.float() / scale, a32.grad / scale, **loose)
    scale = b32.grad.abs().max()
    torch.testing.assert_close(b.grad.float() / scale, b32.grad / scale, **loose)


def test_keyword_call_as_in_dgl():
    a, b = operands(3, 2, 4, 4, torch.float64)
    idx = torch.tensor([1, 0, 1])
    torch.testing.assert_close(gather_mm(a, b, idx_b=idx), gather_mm(a, b, idx))


def test_does_not_modify_its_inputs():
    a, b = operands(5, 3, 4, 4, torch.float64)
    idx = torch.tensor([2, 0, 1, 0, 2])
    copies = (a.clone(), b.clone(), idx.clone())
    gather_mm(a, b, idx)
    for before, after in zip(copies, (a, b, idx), strict=True):
        assert torch.equal(before, after)


# ----------------------------------------------------------------------- gradcheck
GRAD_CASES = [
    ("unsorted", [2, 0, 2, 1, 0], 4, 3, 2),  # type 3 unused
    ("sorted", [0, 0, 1, 1], 2, 2, 3),
    ("R=1", [0, 0, 0], 1, 3, 3),
]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize(
    ("name", "idx", "R", "d1", "d2"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES]
)
def test_gradcheck_and_gradgradcheck(name, idx, R, d1, d2, device):
    a, b = operands(len(idx), R, d1, d2, torch.float64, device)
    a.requires_grad_(True)
    b.requires_grad_(True)
    index = torch.tensor(idx)

    def fn(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return gather_mm(a, b, index)

    assert torch.autograd.gradcheck(fn, (a, b))
    assert torch.autograd.gradgradcheck(fn, (a, b))


# -------------------------------------------------------------------------- errors
def _ok() -> dict[str, object]:
    return {"a": torch.zeros(6, 4), "b": torch.zeros(3, 4, 5), "idx_b": torch.tensor([0, 2] * 3)}


ERRORS = [
    ("a not a tensor", {"a": [[1.0]]}, TypeError, r"gather_mm: a must be a torch.Tensor"),
    ("b not a tensor", {"b": None}, TypeError, r"gather_mm: b must be a torch.Tensor"),
    ("idx a list", {"idx_b": [0, 2] * 3}, TypeError, r"gather_mm: idx_b must be a torch.Tensor"),
    ("a sparse", {"a": torch.zeros(6, 4).to_sparse_csr()}, TypeError, r"a must be a dense"),
    ("b sparse", {"b": torch.zeros(3, 4, 5).to_sparse()}, TypeError, r"b must be a dense"),
    (
        "idx sparse",
        {"idx_b": torch.tensor([0, 2] * 3).to_sparse()},
        TypeError,
        r"idx_b must be a dense",
    ),
    ("a 1D", {"a": torch.zeros(6)}, ValueError, r"gather_mm: a must have 2 dimensions"),
    ("b 2D", {"b": torch.zeros(4, 5)}, ValueError, r"gather_mm: b must have 3 dimensions"),
    ("b 4D", {"b": torch.zeros(1, 3, 4, 5)}, ValueError, r"b must have 3 dimensions"),
    ("D1 mismatch", {"b": torch.zeros(3, 2, 5)}, ValueError, r"b must have shape \(R, D1, D2\)"),
    (
        "a complex",
        {"a": torch.zeros(6, 4, dtype=torch.complex64)},
        ValueError,
        r"a must have dtype float32, float64, float16 or bfloat16, got torch.complex64",
    ),
    (
        "dtype mismatch",
        {"b": torch.zeros(3, 4, 5, dtype=torch.float16)},
        ValueError,
        r"b must have the dtype of a",
    ),
    (
        "idx float",
        {"idx_b": torch.zeros(6)},
        ValueError,
        r"idx_b must have dtype int32 or int64",
    ),
    (
        "idx 2D",
        {"idx_b": torch.zeros(6, 1, dtype=torch.int64)},
        ValueError,
        r"idx_b must have 1 dimensions",
    ),
    (
        "idx wrong length",
        {"idx_b": torch.tensor([0, 1])},
        ValueError,
        r"idx_b must have N = a.shape\[0\] = 6 entries, got shape \(2,\)",
    ),
    (
        "idx too large",
        {"idx_b": torch.tensor([0, 1, 3, 0, 0, 0])},
        ValueError,
        r"idx_b must hold indices in \[0, R\) = \[0, 3\) with R = b.shape\[0\], "
        r"got values from 0 to 3",
    ),
    (
        "idx negative",
        {"idx_b": torch.tensor([0, -1, 2, 0, 0, 0])},
        ValueError,
        r"idx_b must hold indices in \[0, R\) = \[0, 3\).*got values from -1 to 2",
    ),
    (
        "a and b on different devices",
        {"a": torch.zeros(6, 4, device="meta")},
        ValueError,
        r"a and b must be on the same device",
    ),
    (
        "idx on a third device",
        {"idx_b": torch.zeros(6, dtype=torch.int64, device="meta")},
        ValueError,
        r"idx_b must be on the CPU or on a's device \(cpu\), got meta",
    ),
]


@pytest.mark.parametrize(("name", "change", "error", "match"), ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_input_raises_before_any_work(name, change, error, match):
    kwargs = {**_ok(), **change}
    with pytest.raises(error, match=match):
        gather_mm(**kwargs)


def test_out_of_range_on_an_empty_b():
    with pytest.raises(ValueError, match=r"idx_b must hold indices in \[0, R\) = \[0, 0\)"):
        gather_mm(torch.zeros(2, 4), torch.zeros(0, 4, 4), torch.tensor([0, 0]))
