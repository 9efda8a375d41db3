"""The README's torchrun example runs, as printed there, on 2 processes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tsgu.distributed.testing import run_workers

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_torchrun_example_runs(tmp_path):
    if not README.exists():
        pytest.skip("README.md is not beside the tests (a copy of the tests alone)")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    example = next(b for b in blocks if b.startswith("# poisson.py"))
    script = tmp_path / "poisson.py"
    script.write_text(example)
    outputs = run_workers(script, 2, timeout=240)
    match = re.search(r"(\d+) CG iterations, \|\|x\|\|\^2 = ([\d.]+)", outputs[0])
    assert match, outputs[0]
    assert int(match.group(1)) > 0 and float(match.group(2)) > 0
    assert "Traceback" not in outputs[1] and "CG iterations" not in outputs[1]
