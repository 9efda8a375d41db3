"""The matrices of the factorization benchmarks (SciPy CSR, float64, fixed seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _second_difference(m: int) -> Any:
    import scipy.sparse as sp

    return sp.diags([-np.ones(m - 1), 2 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1], format="csr")


def laplacian_2d(m: int, seed: int = 0) -> Any:
    """5-point Laplacian on an m x m grid plus a random positive diagonal: SPD, m² rows."""
    import scipy.sparse as sp

    T = _second_difference(m)
    shift = 0.1 + np.random.default_rng(seed).random(m * m)
    return (sp.kronsum(T, T) + sp.diags(shift)).tocsr()


def laplacian_3d(m: int, seed: int = 0) -> Any:
    """7-point Laplacian on an m³ grid plus a random positive diagonal: SPD, m³ rows."""
    import scipy.sparse as sp

    T = _second_difference(m)
    shift = 0.1 + np.random.default_rng(seed).random(m**3)
    return (sp.kronsum(sp.kronsum(T, T), T) + sp.diags(shift)).tocsr()


def convection_diffusion_2d(m: int, seed: int = 0, peclet: float = 50.0) -> Any:
    """-Δu + w·∇u on an m x m grid, upwind first differences: nonsymmetric values on the
    symmetric 5-point pattern, m² rows."""
    import scipy.sparse as sp

    T = _second_difference(m)
    upwind = sp.diags([-np.ones(m - 1), np.ones(m)], [-1, 0], format="csr")
    eye = sp.identity(m, format="csr")
    h = 1.0 / (m + 1)
    rng = np.random.default_rng(seed)
    wind = peclet * h * (1 + 0.1 * rng.random(m * m))
    A = sp.kronsum(T, T) + sp.diags(wind) @ (sp.kron(eye, upwind) + sp.kron(upwind, eye))
    return A.tocsr()


def circuit_like(n: int, seed: int = 0) -> Any:
    """Very sparse, irregular, nonsymmetric, as circuit matrices are: each node couples to
    two near neighbours and one within a wider window (irregular, mostly local: a circuit is
    nearly planar), 16 hub nodes (supply rails) couple to 2% of the nodes; diagonally
    dominant so every ordering is stable."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    node = np.arange(n)
    hubs = rng.integers(0, n, 16)
    touched = rng.integers(0, n, n // 50)
    hub_of = hubs[rng.integers(0, 16, touched.size)]
    r = np.concatenate([node, node, node, touched, hub_of])
    c = np.concatenate(
        [
            (node + rng.integers(1, 8, n)) % n,
            (node - rng.integers(1, 8, n)) % n,
            (node + rng.integers(-100, 101, n)) % n,
            hub_of,
            touched,
        ]
    )
    keep = r != c
    off = sp.csr_matrix((rng.standard_normal(int(keep.sum())), (r[keep], c[keep])), (n, n))
    dominance = np.asarray(abs(off).sum(axis=1)).ravel() + 1.0
    return (off + sp.diags(dominance * rng.choice([-1.0, 1.0], n))).tocsr()


def new_values(A: Any, step: int) -> Any:
    """A with new values on the same pattern, as a Newton step makes (SPD stays SPD)."""
    B = A.copy()
    rng = np.random.default_rng(1000 + step)
    B.data = B.data * (1.0 + 0.05 * rng.random(B.data.size))
    B = (B + B.T) / 2 if _symmetric(A) else B
    return B.tocsr()


def _symmetric(A: Any) -> bool:
    return abs(A - A.T).max() == 0 if A.shape[0] < 5_000_000 else False


def build(spec: dict[str, Any]) -> Any:
    makers = {
        "laplacian_2d": laplacian_2d,
        "laplacian_3d": laplacian_3d,
        "convection_diffusion_2d": convection_diffusion_2d,
        "circuit_like": circuit_like,
    }
    A = makers[spec["matrix"]](spec["size"])
    A.sort_indices()
    return A
