"""The public surface of tsgu.cupy is pinned: a change to it is a deliberate one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tsgu.cupy as tcp
from tsgu.cupy import _backend

EXPECTED = {
    "__version__",
    "c2t_coo",
    "c2t_csr",
    "have_cupy",
    "sparse_solve_c4t",
    "t2c_coo",
    "t2c_csr",
}


def test_all_is_pinned():
    assert set(tcp.__all__) == EXPECTED
    for name in tcp.__all__:
        assert hasattr(tcp, name), name
    assert isinstance(tcp.have_cupy, bool)


def test_public_functions_have_docstrings_with_examples():
    for name in tcp.__all__:
        obj = getattr(tcp, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    src = Path(tcp.__file__).parents[1]
    assert not (src / "__init__.py").exists()


def test_import_and_cpu_solve_work_without_cupy():
    """A fresh interpreter in which ``import cupy`` fails: the CPU path needs SciPy only."""
    code = "\n".join(
        [
            "import sys",
            "sys.modules['cupy'] = None  # import cupy now raises ImportError",
            "import torch",
            "import tsgu.cupy as tcp",
            "assert tcp.have_cupy is False",
            "A = torch.tensor([[2.0, 1.0], [0.0, 4.0]]).to_sparse_csr()",
            "x = tcp.sparse_solve_c4t(A, torch.tensor([3.0, 4.0]))",
            "assert torch.allclose(x, torch.tensor([1.0, 1.0])), x",
            "assert 'cupy' not in [m for m in sys.modules if sys.modules[m] is not None]",
            "print('ok')",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cuda_tensor_without_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(ImportError, match=r"tsgu-cupy\[cuda12\].*tsgu-cupy\[cuda13\]"):
        _backend.backend_for("sparse_solve_c4t", torch.device("cuda", 0))
