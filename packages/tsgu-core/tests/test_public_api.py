"""The public surface of tsgu.core is pinned: a change to it is a deliberate one."""

from __future__ import annotations

from pathlib import Path

import pytest

import tsgu.core as tc
import tsgu.core.extend as ext

EXPECTED = {
    "ConvergenceWarning",
    "Preconditioner",
    "SolveInfo",
    "SparseParameter",
    "__version__",
    "bicgstab",
    "block_jacobi",
    "cg",
    "gmres",
    "ic0",
    "ilu0",
    "jacobi",
    "lsmr",
    "minres",
    "sparse_generic_lstsq",
    "sparse_generic_solve",
    "sparse_triangular_solve",
    "sparse_add",
    "sparse_transpose",
    "convert_coo_to_csr",
    "convert_coo_to_csr_indices_values",
    "make_spd_sparse",
    "poisson_2d",
    "poisson_3d",
    "rand_sparse",
    "rand_sparse_tri",
    "sparse_bidir_logsumexp",
    "sparse_block_diag",
    "sparse_block_diag_split",
    "sparse_coo_tensor",
    "sparse_csc_tensor",
    "sparse_csr_tensor",
    "sparse_eye",
    "sparse_log_softmax",
    "sparse_logsumexp",
    "sparse_mm",
    "sparse_sampled_mm",
    "sparse_softmax",
    "stack_csr",
}


# tsgu.core.extend, the extension layer satellites build on, is public API too.
EXPECTED_EXTEND = {
    "INT32_MAX",
    "KernelChoice",
    "LinearSolver",
    "Pattern",
    "attach_values",
    "call_compiled",
    "check_solve_operands",
    "check_tol_or_rtol",
    "fold_rhs",
    "from_values",
    "gather_at_pattern",
    "index_dtype_for",
    "linear_solve",
    "pattern_matmul",
    "register_compiled",
    "sampled_product",
    "stored_values",
    "values_of",
}
MODULES = [(tc, EXPECTED), (ext, EXPECTED_EXTEND)]


@pytest.mark.parametrize(("module", "expected"), MODULES, ids=["core", "extend"])
def test_all_is_pinned(module, expected):
    assert set(module.__all__) == expected
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize(("module", "expected"), MODULES, ids=["core", "extend"])
def test_public_functions_have_docstrings_with_examples(module, expected):
    for name in module.__all__:
        obj = getattr(module, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    src = Path(tc.__file__).parents[1]
    assert not (src / "__init__.py").exists()
