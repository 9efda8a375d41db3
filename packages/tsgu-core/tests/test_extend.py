"""tsgu.core.extend: the public extension layer, its one differentiable solve, and its helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import tsgu.core.extend as ext
from tsgu.core.testing import BATCH_FORMS, case, generator, values_at, with_values

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int64, id="coo"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]

PACKAGES = Path(__file__).resolve().parents[2]


class DenseLU(ext.LinearSolver):
    """A user-defined solver: one dense LU of each batch item, kept for every solve."""

    def __init__(self, A: torch.Tensor) -> None:
        self.LU, self.pivots = torch.linalg.lu_factor(A.detach().to_dense())
        self.calls: list[bool] = []

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        self.calls.append(transpose)
        return torch.linalg.lu_solve(self.LU, self.pivots, B, adjoint=transpose)


def _private_core_imports(path: Path) -> list[str]:
    """``tsgu.core`` imports of a private module or a private name in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tsgu.core"):
            module = node.module or ""
            names = [alias.name for alias in node.names]
            if any(part.startswith("_") for part in module.split(".")) or any(
                name.startswith("_") for name in names
            ):
                found.append(f"{path.name}:{node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["tsgu", "core"] and any(p.startswith("_") for p in parts):
                    found.append(f"{path.name}:{node.lineno}: import {alias.name}")
    return found


@pytest.mark.skipif(
    not (PACKAGES / "tsgu-core" / "src").is_dir(), reason="needs the source tree of every package"
)
def test_satellites_import_only_public_modules_of_tsgu_core():
    sources = [
        path
        for package in sorted(PACKAGES.iterdir())
        if package.name != "tsgu-core"
        for path in sorted((package / "src").rglob("*.py"))
    ]
    assert sources  # the scan reads something
    offending = [line for path in sources for line in _private_core_imports(path)]
    assert offending == []


def test_the_scan_finds_private_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from tsgu.core._pattern import Pattern\n"
        "from tsgu.core.triangular import _solve_kernel\n"
        "import tsgu.core._segment\n"
        "from tsgu.core import extend, cg as _cg\n"
    )
    assert len(_private_core_imports(bad)) == 3


# ------------------------------------------------------------------- linear_solve
@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
@pytest.mark.parametrize("transpose", [False, True])
def test_user_solver_gradcheck_and_gradgradcheck(layout, index_dtype, batch, transpose):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    values, rebuild = with_values(A)
    B = torch.randn((*A.shape[:-1], 2), generator=generator(1), dtype=torch.float64)
    B.requires_grad_(True)

    def f(v, b):
        M = rebuild(v)
        return ext.linear_solve(M, b, DenseLU(M), transpose=transpose)

    assert gradcheck(f, (values, B))
    assert gradgradcheck(f, (values, B))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("batch", "b_shape"),
    [
        ("unbatched", (12,)),
        ("unbatched", (12, 3)),
        ("unbatched", (2, 12, 3)),  # one A for a batch of blocks
        ("batched", (3, 12)),  # a batch of vectors
        ("batched", (3, 12, 2)),
    ],
)
def test_agrees_with_dense_for_every_right_hand_side(dtype, batch, b_shape):
    A = case("nonsymmetric").make(batch=batch, dtype=dtype).requires_grad_(True)
    B = torch.randn(b_shape, generator=generator(2), dtype=dtype).requires_grad_(True)
    X = ext.linear_solve(A, B, DenseLU(A))
    G = torch.randn(X.shape, generator=generator(3), dtype=dtype)
    X.backward(G)
    D = A.detach().to_dense().requires_grad_(True)
    B2 = B.detach().clone().requires_grad_(True)
    X2 = torch.linalg.solve(D, B2)  # B (b, n) with a batched D: a batch of vectors
    X2.backward(G)
    atol = 1e-10 if dtype == torch.float64 else 1e-4
    torch.testing.assert_close(X, X2, atol=atol, rtol=atol)
    torch.testing.assert_close(B.grad, B2.grad, atol=atol, rtol=atol)
    expected = values_at(A, D.grad).reshape(-1)
    torch.testing.assert_close(A.grad.values().reshape(-1), expected, atol=atol, rtol=atol)


def test_the_backward_reuses_the_solver_with_the_transposed_system():
    A = case("nonsymmetric").make().requires_grad_(True)
    solver = DenseLU(A)
    ext.linear_solve(A, torch.ones(12, dtype=torch.float64), solver).sum().backward()
    assert solver.calls == [False, True]  # forward with A, backward with Aᵀ, one object


def test_unread_entries_get_no_gradient():
    class Diagonal(ext.LinearSolver):
        """Reads A's diagonal only."""

        def __init__(self, A, pattern):
            self.d = pattern.diagonal(ext.stored_values(A).detach())
            self.pattern = pattern

        def solve(self, B, transpose):
            return B / self.d[:, None]

        def used_entries(self, pattern):
            return pattern.rows == pattern.cols

    A = case("nonsymmetric").make().requires_grad_(True)
    pattern = ext.Pattern.of(A)
    ext.linear_solve(
        A, torch.ones(12, 1, dtype=torch.float64), Diagonal(A, pattern)
    ).sum().backward()
    off = pattern.rows != pattern.cols
    assert bool(off.any()) and bool((A.grad.values()[off] == 0).all())
    assert bool((A.grad.values()[~off] != 0).all())


def test_a_solver_returning_the_wrong_shape_is_reported():
    class Broken(ext.LinearSolver):
        def solve(self, B, transpose):
            return B[:2]

    A = case("nonsymmetric").make()
    with pytest.raises(
        ValueError, match=r"my_solve: the solver's result must be a tensor of shape \(12, 1\)"
    ):
        ext.linear_solve(A, torch.ones(12, dtype=torch.float64), Broken(), fn="my_solve")


@pytest.mark.parametrize(
    ("A", "B", "error", "message"),
    [
        (
            lambda A: A.to_dense(),
            lambda B: B,
            TypeError,
            "linear_solve: A must be a sparse COO or CSR tensor, got layout dense",
        ),
        (lambda A: A, lambda B: B.float(), ValueError, r"must have the same dtype.*; cast"),
        (lambda A: A, lambda B: B[:5], ValueError, "linear_solve: B must have 12 rows"),
    ],
)
def test_operand_errors(A, B, error, message):
    M = case("nonsymmetric").make()
    with pytest.raises(error, match=message):
        ext.linear_solve(A(M), B(torch.ones(12, dtype=torch.float64)), DenseLU(M))


# ------------------------------------------------------------------------ helpers
@pytest.mark.parametrize(
    ("shape", "row_dim", "batch_dim", "block"),
    [
        ((5,), 0, None, (5, 1)),
        ((5, 3), 0, None, (5, 3)),
        ((2, 5, 3), 1, None, (5, 6)),
        ((2, 5), 1, 0, (2, 5, 1)),
        ((2, 5, 3), 1, 0, (2, 5, 3)),
        ((4, 7, 2, 5), -1, -2, (2, 5, 28)),
        ((4, 7, 5), -1, None, (5, 28)),
    ],
)
def test_fold_rhs_round_trips(shape, row_dim, batch_dim, block):
    T = torch.arange(torch.Size(shape).numel(), dtype=torch.float64).reshape(shape)
    folded, unfold = ext.fold_rhs(T, row_dim, batch_dim)
    assert tuple(folded.shape) == block
    assert torch.equal(unfold(folded), T)
    # every column of the block is one of T's vectors along the row axis
    column = folded.reshape(-1, *folded.shape[-2:])[0, :, 0] if folded.dim() == 3 else folded[:, 0]
    index = [0] * T.dim()
    index[row_dim] = slice(None)
    assert torch.equal(column, T[tuple(index)])


def test_kernel_choice_pins_and_restores():
    choice = ext.KernelChoice("op", ("a", "b"))
    with choice.force("b"):
        assert choice.forced() == "b"
        with choice.force(None):
            assert choice.forced() is None
        assert choice.forced() == "b"
    assert choice.forced() is None
    message = "op: path must be one of 'a', 'b' or None, got 'c'"
    with pytest.raises(ValueError, match=message), choice.force("c"):
        pass


def test_tol_and_rtol_together_are_an_error():
    ext.check_tol_or_rtol("f", {"tol": 1e-3})
    ext.check_tol_or_rtol("f", {"rtol": 1e-3})
    with pytest.raises(ValueError, match="f: tol and rtol must not both be given"):
        ext.check_tol_or_rtol("f", {"tol": 1e-3, "rtol": 1e-4})


def test_index_dtype_for_and_int32_max():
    assert torch.iinfo(torch.int32).max == ext.INT32_MAX
    assert ext.index_dtype_for(ext.INT32_MAX, preferred=torch.int32) == torch.int32
    assert ext.index_dtype_for(ext.INT32_MAX + 1, preferred=torch.int32) == torch.int64
    assert ext.index_dtype_for(5, preferred=torch.int64) == torch.int64


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_pattern_diagonal_and_transpose(layout, index_dtype, batch):
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    pattern = ext.Pattern.of(A)
    D = A.to_dense()
    values = ext.stored_values(A).reshape(-1)
    torch.testing.assert_close(
        pattern.diagonal(values), torch.diagonal(D, dim1=-2, dim2=-1).reshape(-1)
    )
    indices, perm = pattern.transposed_indices
    assert indices[0].dtype == (index_dtype if layout == torch.sparse_csr else torch.int64)
    if layout == torch.sparse_coo:
        T = torch.sparse_coo_tensor(indices[0], values[perm], A.shape)
        assert T.coalesce().indices().equal(indices[0])  # row-major already
    else:
        crow, col = indices
        T = torch.sparse_csr_tensor(crow, col, values[perm].reshape(col.shape), A.shape)
    torch.testing.assert_close(T.to_dense(), D.mT)


@pytest.mark.parametrize(
    ("layout", "index_dtype"),
    [*LAYOUT_INDEX, pytest.param(torch.sparse_csc, torch.int32, id="csc-int32")],
)
@pytest.mark.parametrize("batch", BATCH_FORMS)
def test_vector_products_match_one_column_and_differentiate(layout, index_dtype, batch):
    # pattern_matmul and sampled_product take vectors as well as (n, 1) columns: the same
    # bits, 1D results, and gradients (first and second order) in every argument
    A = case("nonsymmetric").make(layout=layout, index_dtype=index_dtype, batch=batch)
    pattern = ext.Pattern.of(A)
    values = ext.stored_values(A).reshape(-1).clone()
    gen = generator(7)
    x = torch.randn(pattern.ncols, generator=gen, dtype=torch.float64)
    u = torch.randn(pattern.nrows, generator=gen, dtype=torch.float64)
    y = ext.pattern_matmul(pattern, values, x)
    assert y.shape == (pattern.nrows,)
    assert torch.equal(y, ext.pattern_matmul(pattern, values, x[:, None])[:, 0])
    dense = torch.block_diag(*A.to_dense().reshape(-1, *A.shape[-2:]))
    torch.testing.assert_close(y, dense @ x)
    s = ext.sampled_product(pattern, u, x)
    assert s.shape == (pattern.nnz,)
    assert torch.equal(s, ext.sampled_product(pattern, u[:, None], x[:, None]))
    torch.testing.assert_close(s, (u[:, None] * x[None, :])[pattern.rows, pattern.cols])
    values.requires_grad_(True)
    x.requires_grad_(True)
    u.requires_grad_(True)
    assert gradcheck(lambda v, b: ext.pattern_matmul(pattern, v, b), (values, x))
    assert gradgradcheck(lambda v, b: ext.pattern_matmul(pattern, v, b), (values, x))
    assert gradcheck(lambda a, b: ext.sampled_product(pattern, a, b), (u, x))
    assert gradgradcheck(lambda a, b: ext.sampled_product(pattern, a, b), (u, x))


def test_functions_skip_the_signature_binding_outside_transforms(monkeypatch):
    # tsgu's Functions go straight to autograd's apply (Function.apply binds the arguments
    # to forward's signature at every call); under a functorch transform they take
    # Function.apply, which those transforms need
    calls = []
    original = torch.autograd.Function.apply.__func__

    def counting(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(torch.autograd.Function, "apply", classmethod(counting))
    A = case("nonsymmetric").make(layout=torch.sparse_csr, index_dtype=torch.int32)
    pattern = ext.Pattern.of(A)
    x = torch.randn(A.shape[-1], generator=generator(2), dtype=torch.float64)
    values = ext.stored_values(A).reshape(-1).clone().requires_grad_(True)
    ext.pattern_matmul(pattern, values, x).square().sum().backward()
    assert calls == []
    expected = 2 * ext.sampled_product(pattern, A.to_dense() @ x, x)
    torch.testing.assert_close(values.grad, expected)
    grad = torch.func.grad(lambda v: ext.pattern_matmul(pattern, v, x).square().sum())
    torch.testing.assert_close(grad(values.detach()), expected)
    assert "_PatternMatmul" in calls
