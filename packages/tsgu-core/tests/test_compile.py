"""tsgu under torch.compile(fullgraph=True): custom ops on a sparse matrix's parts.

Every op is checked by ``torch.library.opcheck`` and, compiled, against eager in values and
gradients over COO/CSR x int32/int64 x float32/float64 x unbatched/batched. The matrix goes
through tsgu's constructors inside the compiled function, as a user writes it.
"""

from __future__ import annotations

import pytest
import torch

import tsgu.core as tc
from tsgu.core._compiled.parts import SparseParts
from tsgu.core._compiled.products import sampled, spmm
from tsgu.core.testing import assert_error_policy, case, generator, tol

LAYOUT_INDEX = [
    pytest.param(torch.sparse_coo, torch.int32, id="coo-int32"),
    pytest.param(torch.sparse_coo, torch.int64, id="coo-int64"),
    pytest.param(torch.sparse_csr, torch.int32, id="csr-int32"),
    pytest.param(torch.sparse_csr, torch.int64, id="csr-int64"),
]
DTYPES = [torch.float32, torch.float64]
BATCHES = ["unbatched", "batched"]
# aot_eager traces with Dynamo and AOTAutograd (fullgraph) without inductor's C++ build,
# which the matrix of cases would pay once per case; one case per op runs inductor too.
BACKEND = "aot_eager"


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def parts_of(A: torch.Tensor, index_dtype: torch.dtype):
    """A's index tensors (in ``index_dtype``), values and a builder through tsgu's constructors."""
    shape = tuple(A.shape)
    if A.layout == torch.sparse_coo:
        indices = A._indices().to(index_dtype)

        def build(v):
            return tc.sparse_coo_tensor(indices, v, shape)

        return (indices,), A._values(), build
    crow, col = A.crow_indices().to(index_dtype), A.col_indices().to(index_dtype)

    def build(v):
        return tc.sparse_csr_tensor(crow, col, v, shape)

    return (crow, col), A.values(), build


def matrix(name, layout, batch, dtype):
    return case(name).make(layout=layout, index_dtype=torch.int64, batch=batch, dtype=dtype)


def dense(shape, dtype, seed=1):
    return torch.randn(shape, generator=generator(seed), dtype=torch.float64).to(dtype)


def compare(f, inputs, dtype, backend=BACKEND, precision=None):
    """f compiled with fullgraph=True against f eager: outputs and gradients of all inputs
    (an input f does not use has no gradient in either)."""
    eager_in = [x.detach().clone().requires_grad_() for x in inputs]
    compiled_in = [x.detach().clone().requires_grad_() for x in inputs]
    expected = f(*eager_in)
    got = torch.compile(f, fullgraph=True, backend=backend)(*compiled_in)
    close = precision or tol(dtype)
    torch.testing.assert_close(got, expected, **close)
    weights = dense(expected.shape, dtype, seed=7)
    grads_expected = torch.autograd.grad((expected * weights).sum(), eager_in, allow_unused=True)
    grads_got = torch.autograd.grad((got * weights).sum(), compiled_in, allow_unused=True)
    assert any(g is not None for g in grads_expected)
    for g, e in zip(grads_got, grads_expected, strict=True):
        assert (g is None) == (e is None)
        if e is not None:
            torch.testing.assert_close(g, e, **close)


# ------------------------------------------------------------------------- the snippet
def test_issue_snippet_compiles_with_fullgraph():
    A = tc.poisson_2d(6, dtype=torch.float64)
    crow, col = A.crow_indices(), A.col_indices()
    shape = A.shape  # Dynamo refuses to read anything of a sparse tensor, even its shape
    X = dense((A.shape[1], 3), torch.float64)

    def f(vals, X):
        M = tc.sparse_csr_tensor(crow, col, vals, shape)
        return tc.sparse_mm(M, X).sum()

    compare(f, [A.values(), X], torch.float64, backend="inductor")


def test_constructors_return_sparse_tensors_outside_compiled_regions():
    A = tc.poisson_2d(4)
    M = tc.sparse_csr_tensor(A.crow_indices(), A.col_indices(), A.values(), A.shape)
    assert isinstance(M, torch.Tensor) and M.layout == torch.sparse_csr


# -------------------------------------------------------------------------- the ops
def _spmm_args(layout, index_dtype, batch, dtype, transpose=False):
    A = matrix("nonsymmetric", layout, batch, dtype)
    (index0, *rest), values, _ = parts_of(A, index_dtype)
    b = A.shape[0] if A.dim() == 3 else 1
    rows = b * (A.shape[-2] if transpose else A.shape[-1])
    B = dense((rows, 3), dtype).requires_grad_()
    parts = ("coo" if layout == torch.sparse_coo else "csr", index0, rest[0] if rest else None)
    return (*parts, list(A.shape), values.reshape(-1).detach().requires_grad_(), B, transpose)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("transpose", [False, True])
def test_opcheck_spmm_and_sampled(layout, index_dtype, batch, transpose):
    args = _spmm_args(layout, index_dtype, batch, torch.float64, transpose)
    torch.library.opcheck(spmm, args)
    layout_name, index0, index1, shape = args[:4]
    b = shape[0] if len(shape) == 3 else 1
    U = dense((b * shape[-2], 2), torch.float64).requires_grad_()
    V = dense((b * shape[-1], 2), torch.float64, seed=2).requires_grad_()
    torch.library.opcheck(sampled, (layout_name, index0, index1, shape, U, V))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("batch", BATCHES)
def test_spmm_gradgradcheck(layout, index_dtype, batch):
    args = _spmm_args(layout, index_dtype, batch, torch.float64)
    parts, values, B = args[:4], args[4], args[5]

    def f(v, B):
        return spmm(*parts, v, B, False)

    assert torch.autograd.gradcheck(f, (values, B))
    assert torch.autograd.gradgradcheck(f, (values, B))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_sparse_mm_compiled_equals_eager(layout, index_dtype, dtype, batch):
    A = matrix("nonsymmetric", layout, batch, dtype)
    _, values, build = parts_of(A, index_dtype)
    B = dense((*A.shape[:-2], A.shape[-1], 3), dtype)

    def f(v, B):
        return tc.sparse_mm(build(v), B)

    compare(f, [values, B], dtype)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
def test_sparse_mm_vector_compiled_equals_eager(layout, index_dtype):
    A = matrix("nonsymmetric", layout, "unbatched", torch.float64)
    _, values, build = parts_of(A, index_dtype)

    def f(v, b):
        return tc.sparse_mm(build(v), b)

    compare(f, [values, dense((A.shape[-1],), torch.float64)], torch.float64)


def test_sparse_mm_compiled_gradient_is_o_nnz():
    """The compiled backward hands the values their gradient: one entry per stored value."""
    A = matrix("nonsymmetric", torch.sparse_csr, "unbatched", torch.float64)
    _, values, build = parts_of(A, torch.int32)
    v = values.detach().clone().requires_grad_()
    f = torch.compile(lambda v, B: tc.sparse_mm(build(v), B).sum(), fullgraph=True)
    f(v, dense((A.shape[-1], 2), torch.float64)).backward()
    assert v.grad.shape == v.shape


def test_compiled_index_check_runs_when_the_op_runs():
    A = matrix("nonsymmetric", torch.sparse_csr, "unbatched", torch.float64)
    crow, col = A.crow_indices(), A.col_indices().clone()
    bad = A.shape[-1] + 5
    col[3] = bad  # out of range
    shape = tuple(A.shape)
    f = torch.compile(
        lambda v, B: tc.sparse_mm(tc.sparse_csr_tensor(crow, col, v, shape), B),
        fullgraph=True,
        backend=BACKEND,
    )
    expected = rf"^sparse_csr_tensor: col_indices\[3\] = {bad} is out of range"
    with pytest.raises(ValueError, match=expected):
        f(A.values().clone(), dense((A.shape[-1], 2), torch.float64))


def test_parts_of_another_layout_are_refused():
    A = matrix("nonsymmetric", torch.sparse_csr, "unbatched", torch.float64).to_sparse_csc()
    parts = SparseParts(torch.sparse_csc, (A.ccol_indices(), A.row_indices()), A.values(), A.shape)
    with pytest.raises(TypeError) as info:
        tc.sparse_mm(parts, dense((A.shape[-1], 2), torch.float64))
    assert_error_policy(info.value, "sparse_mm: A must be")


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
def test_sparse_sampled_mm_compiled_equals_eager(layout, index_dtype, dtype, batch):
    A = matrix("nonsymmetric", layout, batch, dtype)
    _, values, build = parts_of(A, index_dtype)
    lead = A.shape[:-2]
    U, V = dense((*lead, A.shape[-2], 2), dtype), dense((*lead, 2, A.shape[-1]), dtype, seed=2)
    X = dense((*lead, A.shape[-1], 3), dtype, seed=4)

    def f(v, U, V, X):  # the sampled product read through a product with X
        S = tc.sparse_sampled_mm(build(v), U, V)
        return tc.sparse_mm(S, X)

    compare(f, [values, U, V, X], dtype)


def test_sparse_sampled_mm_csc_compiled_equals_eager():
    A = matrix("nonsymmetric", torch.sparse_csr, "unbatched", torch.float64).to_sparse_csc()
    ccol, row, shape = A.ccol_indices(), A.row_indices(), tuple(A.shape)
    U, V = dense((A.shape[0], 2), torch.float64), dense((2, A.shape[1]), torch.float64, seed=2)

    def f(v, U, V):  # a CSC result read back through its values
        S = tc.sparse_sampled_mm(tc.sparse_csc_tensor(ccol, row, v, shape), U, V)
        return S.values() * 1.0

    eager = f(A.values(), U, V)
    got = torch.compile(f, fullgraph=True, backend=BACKEND)(A.values().clone(), U, V)
    torch.testing.assert_close(got, eager)


# ------------------------------------------------------------------------- the solves
SOLVE_PRECISION = {
    torch.float32: {"rtol": 1e-3, "atol": 1e-4},
    torch.float64: {"rtol": 1e-7, "atol": 1e-9},
}


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("upper", [True, False])
def test_sparse_triangular_solve_compiled_equals_eager(layout, index_dtype, dtype, batch, upper):
    A = matrix("upper_triangular" if upper else "lower_triangular", layout, batch, dtype)
    _, values, build = parts_of(A, index_dtype)
    B = dense((*A.shape[:-2], A.shape[-1], 2), dtype)

    def f(v, B):
        return tc.sparse_triangular_solve(build(v), B, upper=upper)

    compare(f, [values, B], dtype)


def test_sparse_triangular_solve_transposed_unit_and_vector():
    A = matrix("lower_triangular", torch.sparse_csr, "unbatched", torch.float64)
    _, values, build = parts_of(A, torch.int32)

    def f(v, b):
        L = build(v)
        x = tc.sparse_triangular_solve(L, b, upper=False, transpose=True)
        return tc.sparse_triangular_solve(L, x, upper=False, unitriangular=True)

    compare(f, [values, dense((A.shape[-1],), torch.float64)], torch.float64)


def test_sparse_triangular_solve_compiled_reports_a_zero_diagonal():
    A = matrix("lower_triangular", torch.sparse_csr, "unbatched", torch.float64)
    _, values, build = parts_of(A, torch.int64)
    values = values.clone()
    diagonal = A.crow_indices()[1:] - 1  # the last entry of each row of a lower triangle
    values[diagonal[2]] = 0.0
    f = torch.compile(
        lambda v, b: tc.sparse_triangular_solve(build(v), b, upper=False),
        fullgraph=True,
        backend=BACKEND,
    )
    with pytest.raises(ValueError, match=r"^sparse_triangular_solve: A has a zero or missing"):
        f(values, dense((A.shape[-1],), torch.float64))


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(
    ("name", "solve"),
    [("spd", "cg"), ("spd", None), ("symmetric_indefinite", "minres"), ("nonsymmetric", None)],
)
def test_sparse_generic_solve_compiled_equals_eager(layout, index_dtype, dtype, batch, name, solve):
    """The whole Krylov solve (a loop whose length depends on the data) is one op."""
    A = matrix(name, layout, batch, dtype)
    _, values, build = parts_of(A, index_dtype)
    B = dense((*A.shape[:-2], A.shape[-1], 2), dtype)
    rtol = 1e-6 if dtype == torch.float32 else 1e-12

    def f(v, B):
        return tc.sparse_generic_solve(build(v), B, solve=solve, rtol=rtol, maxiter=1000)

    compare(f, [values, B], dtype, precision=SOLVE_PRECISION[dtype])


@pytest.mark.parametrize(
    ("solve", "options"),
    [
        ("gmres", {"rtol": 1e-12}),
        ("bicgstab", {"rtol": 1e-12}),
        ("lsmr", {"atol": 1e-14, "btol": 1e-14}),
    ],
)
def test_sparse_generic_solve_other_solvers_and_a_vector(solve, options):
    A = matrix("nonsymmetric", torch.sparse_csr, "unbatched", torch.float64)
    _, values, build = parts_of(A, torch.int32)

    def f(v, b):
        return tc.sparse_generic_solve(build(v), b, solve=solve, maxiter=1000, **options)

    b = dense((A.shape[-1],), torch.float64)
    compare(f, [values, b], torch.float64, precision=SOLVE_PRECISION[torch.float64])


def test_solve_ops_opcheck_and_gradgradcheck():
    from tsgu.core._compiled.linear_solve import linear_solve_op

    A = matrix("nonsymmetric", torch.sparse_csr, "batched", torch.float64)
    (crow, col), values, _ = parts_of(A, torch.int32)
    B = dense((A.shape[0], A.shape[-1], 2), torch.float64).requires_grad_()
    v = values.reshape(-1).detach().requires_grad_()
    options = (
        '{"kwargs": {"rtol": 1e-13}, "solve": "gmres", "transpose_solve": null, "vector": false}'
    )
    parts = ("csr", crow, col, list(A.shape))
    torch.library.opcheck(
        linear_solve_op, (*parts, v, B, False, "generic", options, "sparse_generic_solve")
    )

    def f(v, B):
        return linear_solve_op(*parts, v, B, False, "generic", options, "sparse_generic_solve")

    assert torch.autograd.gradcheck(f, (v, B), atol=1e-6)
    assert torch.autograd.gradgradcheck(f, (v, B), atol=1e-6)


def test_sparse_generic_solve_compiled_refuses_python_objects():
    A = matrix("spd", torch.sparse_csr, "unbatched", torch.float64)
    _, values, build = parts_of(A, torch.int64)
    b = dense((A.shape[-1],), torch.float64)
    f = torch.compile(
        lambda v, b: tc.sparse_generic_solve(build(v), b, solve=tc.cg), fullgraph=True
    )
    with pytest.raises(Exception, match="solve must be a solver name in a compiled region"):
        f(values.clone(), b)


# ------------------------------------------------------------------ SparseParameter
class _Model(torch.nn.Module):
    def __init__(self, A: torch.Tensor) -> None:
        super().__init__()
        self.weight = tc.SparseParameter(A)
        self.linear = torch.nn.Linear(3, 2, dtype=A.dtype)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(tc.sparse_mm(self.weight(), X)))


def _data(A, dtype):
    X = dense((A.shape[-1], 3), dtype)
    y = dense((A.shape[-2], 2), dtype, seed=3)
    return X, y


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_module_trains_as_eager(layout, dtype):
    """torch.compile(model, fullgraph=True): forward and backward compiled, torch's optimizer."""
    A = matrix("nonsymmetric", layout, "unbatched", dtype)
    X, y = _data(A, dtype)
    torch.manual_seed(0)
    eager = _Model(A)
    compiled_model = _Model(A)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, fullgraph=True, backend=BACKEND)
    for model, run in ((eager, eager), (compiled_model, compiled)):
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(run(X), y).backward()
            opt.step()
    torch.testing.assert_close(compiled_model.weight.values, eager.weight.values, **tol(dtype))
    torch.testing.assert_close(
        compiled_model.weight.values.grad, eager.weight.values.grad, **tol(dtype)
    )


def _sgd_step(model, X, y, lr=0.1):
    loss = torch.nn.functional.mse_loss(model(X), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(lr * p.grad)
            p.grad = None
    return loss.detach()


@pytest.mark.skipif(
    not hasattr(torch._dynamo.config, "trace_autograd_ops"),
    reason="Dynamo traces Tensor.backward() only from torch._dynamo.config.trace_autograd_ops",
)
@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_whole_training_step_is_one_fullgraph(layout):
    """Forward, backward and the update in one fullgraph function (torch.optim's step
    breaks the graph on purpose, pytorch#104053, so the update is written out)."""
    A = matrix("nonsymmetric", layout, "unbatched", torch.float64)
    X, y = _data(A, torch.float64)
    torch.manual_seed(0)
    eager, compiled_model = _Model(A), _Model(A)
    compiled_model.load_state_dict(eager.state_dict())
    step = torch.compile(_sgd_step, fullgraph=True)
    for _ in range(3):
        expected = _sgd_step(eager, X, y)
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            got = step(compiled_model, X, y)
        torch.testing.assert_close(got, expected)
    torch.testing.assert_close(compiled_model.weight.values, eager.weight.values)


def test_sparse_parameter_state_dict_and_errors():
    A = matrix("nonsymmetric", torch.sparse_csr, "batched", torch.float64)
    W = tc.SparseParameter(A)
    assert set(W.state_dict()) == {"crow_indices", "col_indices", "values"}
    torch.testing.assert_close(W().to_dense(), A.to_dense())
    with pytest.raises(TypeError) as info:
        tc.SparseParameter(A.to_dense())
    assert_error_policy(info.value, "SparseParameter: A must be")


# ---------------------------------------------------------------------- reductions
@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("log", [False, True])
def test_sparse_softmax_compiled_equals_eager(layout, index_dtype, dtype, batch, log):
    A = matrix("nonsymmetric", layout, batch, dtype)
    _, values, build = parts_of(A, index_dtype)
    X = dense((*A.shape[:-2], A.shape[-1], 2), dtype)
    softmax = tc.sparse_log_softmax if log else tc.sparse_softmax

    def f(v, X):  # the result read through a product
        return tc.sparse_mm(softmax(build(v), dim=-1), X)

    compare(f, [values, X], dtype)


@pytest.mark.parametrize(("layout", "index_dtype"), LAYOUT_INDEX)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("dim", "keepdim"), [(-1, False), (-2, True), ((-2, -1), False)])
def test_sparse_logsumexp_compiled_equals_eager(layout, index_dtype, dtype, batch, dim, keepdim):
    A = matrix("nonsymmetric", layout, batch, dtype)
    _, values, build = parts_of(A, index_dtype)

    def f(v):
        return tc.sparse_logsumexp(build(v), dim=dim, keepdim=keepdim)

    compare(f, [values], dtype)


def test_function_ops_opcheck_and_gradgradcheck():
    from tsgu.core._compiled.function import function_op
    from tsgu.core._compiled.options import encode_options

    A = matrix("nonsymmetric", torch.sparse_csr, "batched", torch.float64)
    (crow, col), values, _ = parts_of(A, torch.int32)
    v = values.detach().clone().requires_grad_()
    options = {"layout": str(A.layout), "shape": list(A.shape), "dim": -1}
    options.update(keepdim=False, include_zeros=False)
    torch.library.opcheck(function_op, ("logsumexp", [crow, col, v], encode_options(options)))

    def f(v):
        return function_op("logsumexp", [crow, col, v], encode_options(options))

    assert torch.autograd.gradcheck(f, (v,))
    assert torch.autograd.gradgradcheck(f, (v,))


def test_encode_options_is_json():
    import json

    from tsgu.core._compiled.options import encode_options

    options = {"b": [1, 2.5, None], "a": {"s": 'q"\\', "t": True}, "x": float("inf")}
    assert json.loads(encode_options(options)) == options


def test_op_pattern_cache_sees_in_place_index_edits():
    """Ops cache the pattern of the index tensors they meet; an in-place edit invalidates it."""
    A = matrix("nonsymmetric", torch.sparse_csr, "unbatched", torch.float64)
    crow, col = A.crow_indices().clone(), A.col_indices().clone()
    values, shape = A.values(), list(A.shape)
    B = dense((A.shape[-2], 2), torch.float64)
    first = spmm("csr", crow, col, shape, values, B, True)  # Aᵀ B: uses the cached transpose
    col.copy_((col + 1) % A.shape[-1])  # every entry one column to the right
    again = spmm("csr", crow, col, shape, values, B, True)
    edited = torch.sparse_csr_tensor(crow, col, values, A.shape).to_dense()
    torch.testing.assert_close(again, edited.mT @ B)
    assert not torch.equal(first, again)


def test_sparse_mm_compiled_across_sizes():
    """A second and third size recompile with dynamic shapes (the ops take SymInt shapes)."""

    def f(v, X, crow, col, shape):
        return tc.sparse_mm(tc.sparse_csr_tensor(crow, col, v, shape), X)

    g = torch.compile(f, fullgraph=True, backend=BACKEND)
    for grid in (3, 4, 5):
        A = tc.poisson_2d(grid, dtype=torch.float64)
        X = dense((A.shape[1], 2), torch.float64)
        args = (A.crow_indices(), A.col_indices(), tuple(A.shape))
        torch.testing.assert_close(g(A.values().clone(), X, *args), f(A.values(), X, *args))
