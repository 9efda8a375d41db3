"""plot_pairwise_pattern: a PNG of the offsets and the sparsity pattern; matplotlib optional."""

from __future__ import annotations

import sys

import pytest
import torch

from tsgu.encoders import PairwiseEncoder, plot_pairwise_pattern
from tsgu.encoders.plot import _coloured_matrix


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize(
    ("radius", "shape", "relation"),
    [
        (2, (1, 7), "indep"),
        (1, (2, 4, 4), "intra"),
        (2, (2, 3, 3, 3), "inter"),
        (1, (2, 2, 2, 2, 3), "inter"),
    ],
)
def test_writes_a_png(tmp_path, radius, shape, relation, layout):
    pytest.importorskip("matplotlib")
    enc = PairwiseEncoder(
        radius, shape, diag=True, upper=False, channel_voxel_relation=relation, layout=layout
    )
    path = tmp_path / "pattern.png"
    fig = plot_pairwise_pattern(enc, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) >= 2


def test_colours_mark_each_entry_with_its_offset():
    enc = PairwiseEncoder(1.5, (2, 3, 3), diag=True, channel_voxel_relation="inter")
    image = _coloured_matrix(enc)
    # put k + 1 in every slot k of the values: the matrix then is the colour image
    values = torch.arange(1, len(enc.offsets) + 1, dtype=torch.float64)
    values = values.reshape(-1, 1, 1, 1).expand(enc.values_shape)
    assert torch.equal(image.double(), enc(values).to_dense())


def test_missing_matplotlib_names_the_extra(monkeypatch):
    enc = PairwiseEncoder(1, (1, 4))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'tsgu-encoders\[plot\]'"):
        plot_pairwise_pattern(enc)


def test_importing_the_package_does_not_import_matplotlib():
    import subprocess

    code = "import sys, tsgu.encoders; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
