"""The CuPy backend: conversions by DLPack and solves on a CUDA device.

Skipped without a CUDA GPU and CuPy (``pip install 'tsgu-cupy[cuda12]'``). The solver and
gradient tests of the other files also run here on "cuda" through their ``device`` fixture.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.cuda, pytest.mark.cupy]

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
cupy = pytest.importorskip("cupy", reason="needs CuPy: pip install 'tsgu-cupy[cuda12]'")
cupyx_sparse = pytest.importorskip("cupyx.scipy.sparse")

from tsgu.core.testing import case, generator, tol  # noqa: E402
from tsgu.cupy import c2t_coo, c2t_csr, sparse_solve_c4t, t2c_coo, t2c_csr  # noqa: E402


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_csr_round_trip_on_the_gpu(index_dtype, dtype):
    x = case("nonsymmetric").make(index_dtype=index_dtype, dtype=dtype, device="cuda")
    X = t2c_csr(x)
    assert isinstance(X, cupyx_sparse.csr_matrix) and X.shape == (12, 12)
    assert X.data.data.ptr == x.values().data_ptr()  # values cross by DLPack, no copy
    cupy.testing.assert_allclose(X.toarray(), cupy.from_dlpack(x.to_dense()))
    y = c2t_csr(X)
    assert y.device == x.device and y.dtype == dtype and y.layout == torch.sparse_csr
    assert y.values().data_ptr() == X.data.data.ptr
    torch.testing.assert_close(y.to_dense(), x.to_dense())


def test_coo_round_trip_on_the_gpu():
    x = case("nonsymmetric").make(layout=torch.sparse_coo, device="cuda")
    X = t2c_coo(x)
    assert isinstance(X, cupyx_sparse.coo_matrix) and X.has_canonical_format
    y = c2t_coo(X)
    assert y.device == x.device and y.is_coalesced()
    torch.testing.assert_close(y.to_dense(), x.to_dense())
    with pytest.warns(UserWarning, match="t2c_coo: x is not coalesced"):
        t2c_coo(torch.sparse_coo_tensor(x.indices().repeat(1, 2), x.values().repeat(2), x.shape))


def test_the_gpu_solve_stays_on_its_device_and_stream():
    A = case("nonsymmetric").make(device="cuda").requires_grad_(True)
    B = torch.randn(12, 4, generator=generator(1), dtype=torch.float64).cuda()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        X = sparse_solve_c4t(A, B)
        X.square().sum().backward()
    stream.synchronize()
    assert X.device == A.device and A.grad.device == A.device
    ref = torch.linalg.solve(A.detach().to_dense(), B)
    torch.testing.assert_close(X.detach(), ref, **tol(torch.float64))
