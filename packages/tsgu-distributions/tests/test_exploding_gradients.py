"""The LLᵀ precision form's exploding gradients, and the LDLᵀ form of the same problem.

One precision, written two ways: Q = L Lᵀ with L = U diag(s), and Q = U D Uᵀ with D = s².
U is unit lower triangular on a 3D 7-point pattern with O(1) couplings; the diagonal s
shrinks from 1 to 1e-3, making Q badly conditioned (cond ~ 1/s²). With the same noise both
forms draw the same samples x (of size ~1/s), and the loss f = <w, x> has a bounded gradient
w. The LLᵀ factor gradients grow like 1/s², past 1e6 as torchsparsegradutils 0.2 reported;
the LDLᵀ factor gradients (and that of log d) grow only like the samples themselves, so
relative to the sample scale they stay bounded.
"""

from __future__ import annotations

import torch

import tsgu.core as tc
from tsgu.core.testing import generator, with_values
from tsgu.distributions import SparseMultivariateNormal

GRID = 4
SCALES = (1.0, 1e-1, 1e-2, 1e-3)


def _problem():
    P = tc.poisson_3d(GRID, layout=torch.sparse_coo).coalesce()
    idx = P.indices()
    strict = idx[:, idx[1] < idx[0]]
    n = GRID**3
    u = -0.3 * (0.5 + torch.rand(strict.shape[1], generator=generator(0), dtype=torch.float64))
    w = 2 * torch.rand(n, generator=generator(1), dtype=torch.float64) - 1
    return strict, u, w, n


def _gradients(s: float):
    strict, u, w, n = _problem()
    sd = torch.full((n,), s, dtype=torch.float64)
    loc = torch.zeros(n, dtype=torch.float64)
    # L L^T form: L = U diag(s), its diagonal stored
    diag_idx = torch.arange(n).repeat(2, 1)
    L = torch.sparse_coo_tensor(
        torch.cat([strict, diag_idx], 1), torch.cat([u * sd[strict[1]], sd]), (n, n)
    ).coalesce()
    l_vals, l_rebuild = with_values(L)
    torch.manual_seed(2)
    x_llt = SparseMultivariateNormal(loc, precision_tril=l_rebuild(l_vals)).rsample()
    (x_llt * w).sum().backward()
    # L D L^T form of the same precision: U (strict part only) and d = s^2, trained as log d
    U = torch.sparse_coo_tensor(strict, u, (n, n)).coalesce()
    u_vals, u_rebuild = with_values(U)
    log_d = (2 * sd.log()).requires_grad_(True)
    torch.manual_seed(2)
    x_ldlt = SparseMultivariateNormal(
        loc, diagonal=log_d.exp(), precision_tril=u_rebuild(u_vals)
    ).rsample()
    (x_ldlt * w).sum().backward()
    torch.testing.assert_close(x_llt, x_ldlt)  # one distribution, one noise
    off = L.indices()[0] != L.indices()[1]
    return {
        "x": x_llt.abs().max().item(),
        "llt": l_vals.grad.abs().max().item(),
        "llt_off": l_vals.grad[off],
        "ldlt": max(u_vals.grad.abs().max().item(), log_d.grad.abs().max().item()),
        "ldlt_u": u_vals.grad,
        "L_cols": L.indices()[1][off],
        "s": sd,
    }


def test_llt_factor_gradient_is_the_ldlt_one_over_the_column_diagonal():
    # dF/dL_ij = dF/dU_ij / s_j exactly (the Notes of SparseMultivariateNormal)
    g = _gradients(1e-2)
    torch.testing.assert_close(g["llt_off"], g["ldlt_u"] / g["s"][g["L_cols"]])


def test_llt_precision_gradients_explode_and_ldlt_ones_stay_bounded():
    results = {s: _gradients(s) for s in SCALES}
    base = results[1.0]
    assert results[1e-3]["llt"] > 1e6  # torchsparsegradutils 0.2's "above 1e6"
    for s in SCALES:
        r = results[s]
        # relative to the sample scale, LDLᵀ gradients stay at their well-conditioned level
        assert r["ldlt"] / r["x"] < 2 * base["ldlt"] / base["x"]
        # LLᵀ ones grow like 1/s on top of it
        assert r["llt"] / r["x"] > 0.5 * (base["llt"] / base["x"]) / s
    # in absolute terms: 1/s^2 against 1/s
    assert results[1e-3]["llt"] > 300 * results[1e-3]["ldlt"]
