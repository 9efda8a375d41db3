"""The public surface of tsgu.core is pinned: a change to it is a deliberate one."""

from __future__ import annotations

from pathlib import Path

import tsgu.core as tc

EXPECTED = {
    "ConvergenceWarning",
    "Preconditioner",
    "SolveInfo",
    "__version__",
    "bicgstab",
    "block_jacobi",
    "cg",
    "gmres",
    "ic0",
    "ilu0",
    "jacobi",
    "linear_cg",
    "lsmr",
    "minres",
    "sparse_generic_lstsq",
    "sparse_generic_solve",
    "sparse_triangular_solve",
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


def test_all_is_pinned():
    assert set(tc.__all__) == EXPECTED
    for name in tc.__all__:
        assert hasattr(tc, name), name


def test_public_functions_have_docstrings_with_examples():
    for name in tc.__all__:
        obj = getattr(tc, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    src = Path(tc.__file__).parents[1]
    assert not (src / "__init__.py").exists()
