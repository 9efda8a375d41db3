"""The public surface of tsgu.distributed is pinned: a change to it is a deliberate one."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import tsgu.distributed as td

EXPECTED = {
    "RankFailedError",
    "fail_together",
    "DistributedSparseMatrix",
    "RowPartition",
    "__version__",
    "bicgstab",
    "cg",
    "solve",
}
SRC = Path(td.__file__).parent


def test_all_is_pinned():
    assert set(td.__all__) == EXPECTED
    for name in td.__all__:
        assert hasattr(td, name), name


def test_public_names_have_docstrings_with_examples():
    for name in td.__all__:
        obj = getattr(td, name)
        if callable(obj):
            assert obj.__doc__ and "Examples" in obj.__doc__, name


def test_only_tsgu_core_and_torch_are_imported():
    """The package depends on tsgu-core and torch only, through their public modules."""
    for path in SRC.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in {"torch", "tsgu"} or top in sys.stdlib_module_names, (
                    path.name,
                    name,
                )
                if top == "tsgu":
                    assert name.startswith("tsgu.core") and "._" not in name, (path.name, name)


def test_tsgu_is_a_namespace_package():
    import tsgu

    assert getattr(tsgu, "__file__", None) is None  # PEP 420: no tsgu/__init__.py anywhere
    assert not (SRC.parent / "__init__.py").exists()
