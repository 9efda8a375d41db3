"""The public surface of tsgu.jax is pinned: a change to it is a deliberate one."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("jax")

import tsgu.jax as tj

EXPECTED = {
    "SparseMatvec",
    "__version__",
    "j2t",
    "j2t_coo",
    "j2t_csr",
    "sparse_solve_j4t",
    "spmm_t4j",
    "t2j",
    "t2j_coo",
    "t2j_csr",
}


def test_all_is_pinned():
    assert set(tj.__all__) == EXPECTED
    for name in tj.__all__:
        assert hasattr(tj, name), name


def test_public_functions_have_docstrings_with_examples():
    for name in tj.__all__:
        obj = getattr(tj, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


def test_version():
    assert tj.__version__ == "0.1.0"


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    assert not (Path(tj.__file__).parents[1] / "__init__.py").exists()


def test_importing_tsgu_jax_leaves_64_bit_mode_alone():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    code = "import jax, tsgu.jax; print(jax.config.jax_enable_x64)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"
