"""cuDSS through nvmath-python, for CUDA tensors: skipped without a GPU and nvmath-python."""

from __future__ import annotations

import pytest
import torch

from tsgu.core.testing import with_values
from tsgu.factor import factorize

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
pytest.importorskip("nvmath.sparse.advanced", reason="needs nvmath-python (tsgu-factor[cuda12])")


def _matrix(kind: str) -> torch.Tensor:
    n = 12
    gen = torch.Generator().manual_seed(0)
    M = torch.where(torch.rand(n, n, generator=gen) < 0.3, torch.randn(n, n, generator=gen), 0.0)
    M = M.double()
    if kind == "lu":
        return M + 4 * torch.eye(n, dtype=torch.float64)
    S = M + M.T
    return S + (S.abs().sum(1).max() + 1) * torch.eye(n, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["lu", "cholesky", "ldl"])
def test_solve_refactor_and_gradients_on_cuda(kind):
    dense = _matrix(kind)
    values, rebuild = with_values(dense.to_sparse_csr().cuda())
    F = factorize(rebuild(values), kind)
    b = torch.ones(12, dtype=torch.float64, device="cuda", requires_grad=True)
    x = F.solve(b)
    torch.testing.assert_close(x.detach().cpu(), torch.linalg.solve(dense, b.detach().cpu()))
    xt = F.solve(b.detach(), transpose=True)
    torch.testing.assert_close(xt.cpu(), torch.linalg.solve(dense.T, b.detach().cpu()))
    assert torch.autograd.gradcheck(lambda v, c: factorize(rebuild(v), kind).solve(c), (values, b))
    F.refactor(values=2 * values.detach())
    torch.testing.assert_close(
        F.solve(b.detach()).cpu(), torch.linalg.solve(2 * dense, b.detach().cpu())
    )
    assert F.symbolic_analyses <= 2  # one plan for A (and one for Aᵀ), none per refactor
