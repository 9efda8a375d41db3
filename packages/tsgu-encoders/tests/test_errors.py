"""Every documented bad input: its exception type and a message naming the argument."""

from __future__ import annotations

import pytest
import torch

from tsgu.encoders import PairwiseEncoder, calc_pairwise_coo_indices_nd, plot_pairwise_pattern

GOOD = {"radius": 1, "volume_shape": (2, 3, 3)}

CONSTRUCTION_ERRORS = [
    ({"radius": 0.5}, ValueError, r"radius must be a finite number >= 1.*got 0\.5"),
    ({"radius": 0}, ValueError, r"radius must be a finite number >= 1"),
    ({"radius": float("nan")}, ValueError, r"radius must be a finite number >= 1"),
    ({"radius": float("inf")}, ValueError, r"radius must be a finite number >= 1"),
    ({"radius": "2"}, TypeError, r"radius must be a real number, got str"),
    ({"radius": True}, TypeError, r"radius must be a real number, got bool"),
    ({"volume_shape": (2,)}, ValueError, r"volume_shape must be \(C, \*spatial\).*got \(2,\)"),
    ({"volume_shape": ()}, ValueError, r"volume_shape must be \(C, \*spatial\)"),
    ({"volume_shape": (0, 3)}, ValueError, r"volume_shape .*every size >= 1.*got \(0, 3\)"),
    ({"volume_shape": (2, 3, -1)}, ValueError, r"volume_shape .*every size >= 1"),
    ({"volume_shape": (2, 3.0)}, TypeError, r"volume_shape must hold ints"),
    ({"volume_shape": 5}, TypeError, r"volume_shape must be a tuple of ints.*got int"),
    ({"volume_shape": "23"}, TypeError, r"volume_shape must be a tuple of ints.*got str"),
    ({"diag": 1}, TypeError, r"diag must be a bool, got int"),
    ({"upper": "lower"}, TypeError, r"upper must be None, True or False, got str"),
    ({"channel_voxel_relation": "cross"}, ValueError, r"channel_voxel_relation must be one of"),
    (
        {"volume_shape": (1, 3, 3), "channel_voxel_relation": "intra"},
        ValueError,
        r"channel_voxel_relation must be 'indep' for a single channel, got 'intra'",
    ),
    (
        {"volume_shape": (1, 3), "channel_voxel_relation": "inter"},
        ValueError,
        r"channel_voxel_relation must be 'indep' for a single channel",
    ),
]


@pytest.mark.parametrize(("change", "error", "match"), CONSTRUCTION_ERRORS)
def test_encoder_construction_errors(change, error, match):
    with pytest.raises(error, match="PairwiseEncoder: " + match):
        PairwiseEncoder(**{**GOOD, **change})


@pytest.mark.parametrize(("change", "error", "match"), CONSTRUCTION_ERRORS)
def test_coo_indices_errors(change, error, match):
    with pytest.raises(error, match="calc_pairwise_coo_indices_nd: " + match):
        calc_pairwise_coo_indices_nd(**{**GOOD, **change})


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"layout": torch.sparse_csc}, ValueError, r"layout must be torch.sparse_coo or .*got CSC"),
        ({"layout": torch.strided}, ValueError, r"layout must be .*got dense \(strided\)"),
        ({"layout": "csr"}, ValueError, r"layout must be .*got 'csr'"),
        ({"indices_dtype": torch.int16}, ValueError, r"indices_dtype must be torch.int32 or"),
        ({"indices_dtype": torch.float32}, ValueError, r"indices_dtype must be .*float32"),
        ({"device": 3.0}, TypeError, r"device must be a str, int or torch.device, got float"),
        ({"device": "gpu7"}, ValueError, r"device must name a torch device, got 'gpu7'"),
    ],
)
def test_encoder_option_errors(change, error, match):
    with pytest.raises(error, match="PairwiseEncoder: " + match):
        PairwiseEncoder(**{**GOOD, **change})


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"dtype": torch.int16}, ValueError, r"dtype must be torch.int32 or torch.int64"),
        ({"device": []}, TypeError, r"device must be a str, int or torch.device, got list"),
    ],
)
def test_coo_indices_option_errors(change, error, match):
    with pytest.raises(error, match="calc_pairwise_coo_indices_nd: " + match):
        calc_pairwise_coo_indices_nd(**{**GOOD, **change})


def test_int32_overflow_is_refused_before_any_work():
    # 2**31 voxels: the check runs on sizes alone, nothing is allocated
    with pytest.raises(ValueError, match=r"indices_dtype torch.int32 cannot hold .*int64"):
        PairwiseEncoder(
            1, (2, 1024, 1024, 1024), layout=torch.sparse_csr, indices_dtype=torch.int32
        )
    with pytest.raises(ValueError, match=r"dtype torch.int32 cannot index a volume"):
        calc_pairwise_coo_indices_nd(1, (2, 1024, 1024, 1024), dtype=torch.int32)


@pytest.fixture
def enc():
    return PairwiseEncoder(1, (2, 3, 3), upper=False)  # 2 offsets


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ([[1.0]], TypeError, r"values must be a torch.Tensor, got list"),
        (
            torch.zeros(2, 2, 3, 3).to_sparse(),
            TypeError,
            r"values must be a dense .*got layout COO",
        ),
        (torch.zeros(2, 3, 3), ValueError, r"values must have 4 or 5 dimensions, got shape"),
        (torch.zeros(1, 1, 2, 2, 3, 3), ValueError, r"values must have 4 or 5 dimensions"),
        (
            torch.zeros(3, 2, 3, 3),
            ValueError,
            r"values must have shape \(N_offsets, C, \*spatial\) = \(2, 2, 3, 3\).*"
            r"got \(3, 2, 3, 3\); N_offsets = len\(encoder.offsets\) = 2",
        ),
        (torch.zeros(2, 1, 3, 3), ValueError, r"values must have shape .*got \(2, 1, 3, 3\)"),
        (torch.zeros(4, 2, 2, 3, 4), ValueError, r"values must have shape .*got \(4, 2, 2, 3, 4\)"),
        (
            torch.zeros(2, 2, 3, 3, dtype=torch.int64),
            ValueError,
            r"values must have dtype float32 or float64, got torch.int64",
        ),
        (
            torch.zeros(2, 2, 3, 3, dtype=torch.float16),
            ValueError,
            r"values must have dtype float32 or float64",
        ),
        (torch.zeros(0, 2, 2, 3, 3), ValueError, r"values must have a batch of at least one"),
    ],
)
def test_forward_errors(enc, values, error, match):
    with pytest.raises(error, match="PairwiseEncoder.forward: " + match):
        enc(values)


def test_forward_device_error(enc):
    with pytest.raises(ValueError, match=r"PairwiseEncoder.forward: values must be on the "):
        enc(torch.zeros(2, 2, 3, 3, device="meta"))


def test_plot_errors(enc):
    with pytest.raises(TypeError, match=r"plot_pairwise_pattern: encoder must be a Pairwise"):
        plot_pairwise_pattern("not an encoder")
    with pytest.raises(ValueError, match=r"plot_pairwise_pattern: the volume must have at most "):
        plot_pairwise_pattern(enc, max_voxels=10)


def test_upper_true_with_channel_relations_warns():
    with pytest.warns(UserWarning, match=r"upper=True .* pairs no channels here"):
        enc = PairwiseEncoder(1, (2, 3), upper=True, channel_voxel_relation="inter")
    assert all(o[0] == 0 for o in enc.offsets)
