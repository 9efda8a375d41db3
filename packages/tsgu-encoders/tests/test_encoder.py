"""PairwiseEncoder: gradients, batches, layouts, module behaviour and devices."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import tsgu.core as tc
from tsgu.core.testing import devices, generator, tol, weighted_sum
from tsgu.encoders import PairwiseEncoder

LAYOUTS = [torch.sparse_coo, torch.sparse_csr]
INDEX_DTYPES = [torch.int32, torch.int64]
BATCH = ["unbatched", "batched"]
# A small volume that exercises every kind of offset: spatial, channel, both, diagonal.
SHAPE, RADIUS = (2, 3, 2, 2), 1.5


# gradcheck perturbs every value: a smaller volume with every kind of offset still
GRAD_SHAPE, GRAD_RADIUS = (2, 2, 2), 1


def encoder(layout=torch.sparse_coo, index_dtype=torch.int64, small=False, **kw):
    args = {"diag": True, "upper": False, "channel_voxel_relation": "inter", **kw}
    shape, radius = (GRAD_SHAPE, GRAD_RADIUS) if small else (SHAPE, RADIUS)
    return PairwiseEncoder(radius, shape, layout=layout, indices_dtype=index_dtype, **args)


def random_values(enc, batch=None, dtype=torch.float64, seed=0, device="cpu"):
    shape = (*(() if batch is None else (batch,)), *enc.values_shape)
    return torch.randn(shape, dtype=dtype, generator=generator(seed)).to(device)


# ------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("batch", BATCH)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_and_gradgradcheck(layout, index_dtype, batch):
    enc = encoder(layout, index_dtype, small=True)
    values = random_values(enc, 2 if batch == "batched" else None).requires_grad_(True)
    nvox = enc.volume_numel
    W = torch.randn(
        *(values.shape[:1] if batch == "batched" else ()), nvox, nvox, dtype=torch.float64
    )

    def loss(v):
        # squared so that the second derivative is not identically zero
        return weighted_sum(enc(v), W) ** 2

    assert torch.autograd.gradcheck(loss, (values,))
    assert torch.autograd.gradgradcheck(loss, (values,))


@pytest.mark.parametrize("batch", BATCH)
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck_through_sparse_mm(layout, index_dtype, batch):
    enc = encoder(layout, index_dtype, small=True)
    values = random_values(enc, 2 if batch == "batched" else None).requires_grad_(True)
    X = torch.randn(*values.shape[: -len(enc.values_shape)], enc.volume_numel, 3).double()

    def loss(v):
        return tc.sparse_mm(enc(v), X).square().sum()

    # fast mode (random projections): each call of sparse_mm costs far more than the
    # encoder, and the full check of the encoder itself is the test above
    assert torch.autograd.gradcheck(loss, (values,), fast_mode=True)
    assert torch.autograd.gradgradcheck(loss, (values,), fast_mode=True)


def test_gradient_is_the_dense_gradient_at_the_pattern():
    """d/dvalues of sum(A * W) is W[p, p - o] at each used value, zero at unused ones."""
    enc = encoder()
    values = random_values(enc).requires_grad_(True)
    W = torch.randn(enc.volume_numel, enc.volume_numel, dtype=torch.float64)
    weighted_sum(enc(values), W).backward()
    # Recover each value's matrix position by placing unique markers.
    markers = torch.arange(1, values.numel() + 1, dtype=torch.float64).reshape(values.shape)
    placed = enc(markers).to_dense()
    expected = torch.zeros(values.numel(), dtype=torch.float64)
    hit = placed != 0
    expected[placed[hit].long() - 1] = W[hit]
    assert torch.equal(values.grad.reshape(-1), expected)
    assert (values.grad.reshape(-1) == 0).sum() >= values.numel() - enc.nnz  # unused: zero


class _LargestStrided(TorchDispatchMode):
    """Records the largest dense tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("batch", BATCH)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_backward_never_densifies(layout, batch):
    """No op of the backward makes a dense tensor anywhere near V x V (torch's CSR
    constructor would: its backward calls to_dense on the V x V gradient)."""
    enc = PairwiseEncoder(1, (1, 24, 24), upper=False, layout=layout)  # V = 576
    values = random_values(enc, 2 if batch == "batched" else None, dtype=torch.float32)
    values.requires_grad_(True)
    X = torch.randn(*values.shape[: values.dim() - 4], enc.volume_numel, 4)
    out = tc.sparse_mm(enc(values), X).square().sum()
    with _LargestStrided() as spy:
        out.backward()
    nvox = enc.volume_numel
    assert values.grad is not None
    assert spy.largest < nvox * nvox // 16, (spy.largest, nvox * nvox)


# ------------------------------------------------------------------ batches, layouts
@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_batched_equals_per_item(layout, index_dtype):
    enc = encoder(layout, index_dtype)
    values = random_values(enc, 3)
    A = enc(values)
    assert A.shape == (3, enc.volume_numel, enc.volume_numel)
    assert A.layout == layout
    dense = A.to_dense()
    for i in range(3):
        assert torch.equal(dense[i], enc(values[i]).to_dense())
    if layout == torch.sparse_csr:
        assert A.crow_indices().dtype == index_dtype
        assert A.crow_indices().shape == (3, enc.volume_numel + 1)
    else:
        assert A.is_coalesced()
        assert torch.equal(A._indices(), A.coalesce().indices())


@pytest.mark.parametrize("batch", BATCH)
def test_coo_and_csr_give_the_same_matrix(batch):
    values = random_values(encoder(), 2 if batch == "batched" else None)
    dense = {
        (layout, dt): encoder(layout, dt)(values).to_dense()
        for layout in LAYOUTS
        for dt in INDEX_DTYPES
    }
    first = next(iter(dense.values()))
    assert first.abs().sum() > 0
    for got in dense.values():
        assert torch.equal(got, first)


def test_batched_gradient_equals_per_item_gradients():
    enc = encoder(torch.sparse_csr, torch.int32)
    values = random_values(enc, 3).requires_grad_(True)
    W = torch.randn(3, enc.volume_numel, enc.volume_numel, dtype=torch.float64)
    weighted_sum(enc(values), W).backward()
    for i in range(3):
        item = values[i].detach().clone().requires_grad_(True)
        weighted_sum(enc(item), W[i]).backward()
        torch.testing.assert_close(values.grad[i], item.grad, **tol(torch.float64))


def test_non_contiguous_values():
    enc = encoder()
    values = random_values(enc)
    strided = values.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not strided.is_contiguous()
    assert torch.equal(enc(strided).to_dense(), enc(values).to_dense())


def test_no_pair_inside_the_volume():
    """A one-voxel volume has offsets but no pair: an empty matrix, gradients of zero."""
    for layout in LAYOUTS:
        enc = PairwiseEncoder(1, (1, 1), layout=layout)
        assert enc.offsets == [(0, -1), (0, 1)]
        assert enc.nnz == 0
        values = torch.ones(2, 1, 1, dtype=torch.float64, requires_grad=True)
        A = enc(values)
        assert A.shape == (1, 1)
        assert A.to_dense().sum() == 0
        weighted_sum(A, torch.ones(1, 1, dtype=torch.float64)).backward()
        assert torch.equal(values.grad, torch.zeros_like(values))


def test_values_that_need_no_grad():
    enc = encoder(torch.sparse_csr)
    A = enc(random_values(enc))
    assert not A.requires_grad
    assert A.layout == torch.sparse_csr


# ------------------------------------------------------------------ module behaviour
def test_pattern_is_in_non_persistent_buffers():
    coo, csr = encoder(torch.sparse_coo), encoder(torch.sparse_csr, torch.int32)
    assert {n for n, _ in coo.named_buffers()} == {"indices", "value_index"}
    assert {n for n, _ in csr.named_buffers()} == {"crow_indices", "col_indices", "value_index"}
    assert coo.state_dict() == {} and csr.state_dict() == {}  # as in 0.2: rebuilt, not saved
    csr.load_state_dict({})  # a 0.2 checkpoint (empty) loads strictly
    assert list(csr.parameters()) == []


def test_float_casts_leave_the_indices_alone():
    enc = encoder(torch.sparse_csr, torch.int32).double().float().half()
    assert enc.crow_indices.dtype == torch.int32
    assert enc.value_index.dtype == torch.int32  # positions in a block's scratch
    values = random_values(enc)
    assert torch.equal(enc(values).to_dense(), encoder()(values).to_dense())


def test_forward_hooks_run():
    enc = encoder()
    seen = []
    enc.register_forward_pre_hook(lambda mod, args: seen.append("pre"))
    enc.register_forward_hook(lambda mod, args, out: seen.append(out.layout))
    enc(random_values(enc))
    assert seen == ["pre", torch.sparse_coo]


def test_attributes_and_repr():
    enc = encoder(torch.sparse_csr, torch.int32)
    assert enc.radius == RADIUS and enc.volume_shape == SHAPE
    assert enc.diag is True and enc.upper is False and enc.channel_voxel_relation == "inter"
    assert enc.layout == torch.sparse_csr and enc.indices_dtype == torch.int32
    assert enc.spatial_dims == 3 and enc.volume_numel == math.prod(SHAPE)
    assert enc.values_shape == (len(enc.offsets), *SHAPE)
    assert enc.device == torch.device("cpu")
    text = repr(enc)
    assert "radius=1.5" in text and "sparse_csr" in text and f"nnz={enc.nnz}" in text


def test_volume_shape_may_be_a_list_or_size():
    a = PairwiseEncoder(1, [2, 3, 3], channel_voxel_relation="intra")
    b = PairwiseEncoder(1, torch.Size([2, 3, 3]), channel_voxel_relation="intra")
    assert a.volume_shape == b.volume_shape == (2, 3, 3)
    assert a.offsets == b.offsets


def test_module_in_a_model():
    """The encoder inside a model: a conv predicts the values, the loss trains the conv."""
    enc = PairwiseEncoder(1, (1, 6, 6), diag=True, upper=False, layout=torch.sparse_csr)
    conv = torch.nn.Conv2d(1, len(enc.offsets), 3, padding=1)
    image = torch.randn(2, 1, 6, 6)
    values = conv(image).unsqueeze(2)  # (B, K, C=1, 6, 6)
    L = enc(values)
    loss = tc.sparse_mm(L, torch.randn(2, 36, 2)).square().sum()
    loss.backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------ devices
@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("layout", LAYOUTS)
def test_devices(device, layout):
    built_there = PairwiseEncoder(2, (2, 4, 5), diag=True, layout=layout, device=device)
    moved = PairwiseEncoder(2, (2, 4, 5), diag=True, layout=layout).to(device)
    assert built_there.device.type == moved.device.type == torch.device(device).type
    for name, buf in moved.named_buffers():
        assert buf.device.type == torch.device(device).type
        assert torch.equal(buf, getattr(built_there, name))
    values = random_values(moved, 2, device=device).requires_grad_(True)
    A = moved(values)
    assert A.device.type == torch.device(device).type
    cpu = PairwiseEncoder(2, (2, 4, 5), diag=True, layout=layout)
    assert torch.equal(A.to_dense().cpu(), cpu(values.detach().cpu()).to_dense())
    X = torch.randn(2, moved.volume_numel, 3, dtype=torch.float64, device=device)
    tc.sparse_mm(A, X).sum().backward()
    assert values.grad is not None and values.grad.device == values.device
    back = moved.to("cpu")
    assert back.device == torch.device("cpu")
