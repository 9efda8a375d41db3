"""tsgu.factor: a Newton loop that refactors, and logdet with its gradient at n = 10⁶.

1. **Newton loop**: solves with one pattern and new values at every step (20 steps for
   ``tsgu.factor``; the peers, which redo everything at every step, run up to 20 steps or
   ``PEER_BUDGET_S`` seconds, at least 2), per-step time reported:
   - ``tsgu.factor refactor``: ``factorize`` once, then ``F.refactor(values=...)`` and
     ``F.solve(b)`` per step. Its first step (ordering + symbolic + numeric) is reported
     apart (``first_s``), and the share of the analysis is ``1 - step / first``.
   - ``scipy splu every step`` (reference): SuperLU with its best ordering
     (``MMD_AT_PLUS_A`` on these symmetric patterns, COLAMD on the circuit-like one).
   - ``tsgu.cupy sparse_solve_c4t``: tsgu-cupy's direct solve (SciPy on the CPU), which
     caches a factorization only while the values are unchanged.
   - ``jax spsolve (CPU)``: ``jax.experimental.sparse.linalg.spsolve``.
   Matrices: (a) 2-D 5-point Laplacian 1000² + random positive diagonal (Cholesky),
   (b) 3-D 7-point 30³ + diagonal (Cholesky), (c) 2-D convection-diffusion 512² (LU,
   UMFPACK), (d) a circuit-like nonsymmetric 200,000-row matrix (LU, KLU).
2. **logdet and its gradient**: ``factorize(A, "cholesky").logdet().backward()`` (selected
   inversion) on the 2-D 1000² matrix (n = 10⁶) and on 44² (n = 1,936), against the dense
   gradient (``torch.logdet``, n = 1,936 only) and a Hutchinson estimate of the gradient
   (``HUTCHINSON_PROBES`` Rademacher probes, each one solve with the same factorization:
   the cheapest Hutchinson there is), with its error against the exact gradient.

    python benchmarks/factor.py
    python benchmarks/factor.py --only "(b)"
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any

import numpy as np
from _factor_matrices import build, new_values
from _runner import Case, Column, measuring_memory, peak_memory, run

TSGU = "tsgu.factor refactor"
REFERENCE = "scipy splu every step"
STEPS = 20
PEER_BUDGET_S = 120.0
HUTCHINSON_PROBES = 64

NEWTON = [
    ("(a) 2-D 5-point 1000² + diag, Cholesky", "laplacian_2d", 1000, "cholesky", None, True),
    ("(b) 3-D 7-point 30³ + diag, Cholesky", "laplacian_3d", 30, "cholesky", None, True),
    (
        "(c) 2-D convection-diffusion 512², LU",
        "convection_diffusion_2d",
        512,
        "lu",
        "umfpack",
        True,
    ),
    ("(d) circuit-like 200,000, LU (KLU)", "circuit_like", 200_000, "lu", "klu", False),
]


def _torch_csr(A: Any) -> Any:
    import torch

    return torch.sparse_csr_tensor(
        torch.from_numpy(A.indptr.astype(np.int64)),
        torch.from_numpy(A.indices.astype(np.int64)),
        torch.from_numpy(A.data),
        A.shape,
    )


def _newton(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    A0 = build(spec)
    b = np.ones(A0.shape[0])
    method = spec["method"]
    out: dict[str, Any] = {"n": A0.shape[0], "nnz": A0.nnz}
    if measuring_memory():  # the loop's times are the measurement; its memory is not
        return out
    steps: list[float] = []
    if method == TSGU:
        from tsgu.factor import factorize

        bt = torch.from_numpy(b)
        start = time.perf_counter()
        F = factorize(_torch_csr(A0), spec["kind"], method=spec["lu_method"])
        F.solve(bt)
        out["first_s"] = time.perf_counter() - start
        for step in range(STEPS):
            values = torch.from_numpy(new_values(A0, step).data)
            start = time.perf_counter()
            F.refactor(values=values)
            x = F.solve(bt)
            steps.append(time.perf_counter() - start)
        out["analysis_share"] = 1 - statistics.median(steps) / out["first_s"]
        out["symbolic_analyses"] = F.symbolic_analyses
        A = new_values(A0, STEPS - 1)
        out["residual"] = float(np.abs(A @ x.numpy() - b).max())
    else:
        solve = _peer(method, spec)
        budget_end = time.perf_counter() + PEER_BUDGET_S
        for step in range(STEPS):
            A = new_values(A0, step)
            start = time.perf_counter()
            x = solve(A, b)
            steps.append(time.perf_counter() - start)
            if len(steps) >= 2 and time.perf_counter() > budget_end:
                break
        out["residual"] = float(np.abs(A @ np.asarray(x) - b).max())
    out["step_s"] = statistics.median(steps)
    out["steps"] = len(steps)
    return out


def _peer(method: str, spec: dict[str, Any]) -> Any:
    if method == REFERENCE:
        import scipy.sparse.linalg as spla

        permc = "MMD_AT_PLUS_A" if spec["symmetric_pattern"] else "COLAMD"
        return lambda A, b: spla.splu(A.tocsc(), permc_spec=permc).solve(b)
    if method == "tsgu.cupy sparse_solve_c4t":
        import torch

        from tsgu.cupy import sparse_solve_c4t

        return lambda A, b: sparse_solve_c4t(_torch_csr(A), torch.from_numpy(b)).numpy()
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax.experimental.sparse.linalg import spsolve

    return lambda A, b: np.asarray(spsolve(A.data, A.indices, A.indptr, b))


def _logdet(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    from tsgu.core import sparse_csr_tensor
    from tsgu.factor import factorize

    A = build(spec)
    T = _torch_csr(A)
    method = spec["method"]
    out: dict[str, Any] = {"n": A.shape[0], "nnz": A.nnz}

    def exact() -> Any:
        values = T.values().clone().requires_grad_()
        M = sparse_csr_tensor(T.crow_indices(), T.col_indices(), values, T.shape)
        F = factorize(M, "cholesky")
        F.logdet().backward()
        return values.grad

    if method == "tsgu.factor selected inversion":
        if measuring_memory():
            out["peak_B"] = peak_memory(exact)
            return out
        start = time.perf_counter()
        exact()
        out["time_s"] = time.perf_counter() - start
        out["rel_error"] = 0.0
        return out
    if method == "dense torch.logdet":
        dense = torch.from_numpy(A.toarray()).requires_grad_()
        if measuring_memory():
            out["peak_B"] = peak_memory(lambda: torch.logdet(dense).backward())
            return out
        start = time.perf_counter()
        torch.logdet(dense).backward()
        out["time_s"] = time.perf_counter() - start
        assert dense.grad is not None
        reference = dense.grad[torch.from_numpy(A.toarray() != 0)]  # CSR order
        grad = exact()
        out["rel_error"] = float((grad - reference).abs().max() / reference.abs().max())
        return out
    # Hutchinson: grad ≈ mean over probes z of (A⁻¹ z) zᵀ at A's pattern
    F = factorize(T, "cholesky")
    rows = torch.repeat_interleave(torch.arange(A.shape[0]), T.crow_indices().diff())
    cols = T.col_indices()

    def hutchinson() -> Any:
        gen = torch.Generator().manual_seed(0)
        Z = torch.randint(0, 2, (A.shape[0], HUTCHINSON_PROBES), generator=gen).double() * 2 - 1
        Y = F.solve(Z)
        return (Y[rows] * Z[cols]).mean(dim=1)

    if measuring_memory():
        out["peak_B"] = peak_memory(hutchinson)
        return out
    start = time.perf_counter()
    estimate = hutchinson()
    out["time_s"] = time.perf_counter() - start
    grad = exact()
    out["rel_error"] = float((estimate - grad).abs().max() / grad.abs().max())
    return out


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    return _newton(spec) if spec["part"] == "newton" else _logdet(spec)


def cases() -> tuple[list[Case], dict[str, str]]:
    out: list[Case] = []
    reference: dict[str, str] = {}
    peers = [TSGU, REFERENCE, "tsgu.cupy sparse_solve_c4t"]
    if importlib.util.find_spec("jax") is not None:
        peers.append("jax spsolve (CPU)")
    for group, matrix, size, kind, lu_method, symmetric_pattern in NEWTON:
        reference[group] = REFERENCE
        for method in peers:
            spec = {"part": "newton", "matrix": matrix, "size": size, "kind": kind,
                    "lu_method": lu_method, "symmetric_pattern": symmetric_pattern,
                    "method": method}  # fmt: skip
            out.append(Case(group, method, spec))
    for size, methods in (
        (44, ["tsgu.factor selected inversion", "dense torch.logdet", "Hutchinson"]),
        (1000, ["tsgu.factor selected inversion", "Hutchinson"]),
    ):
        group = f"logdet + gradient, 2-D {size}² (n = {size * size:,})"
        reference[group] = "tsgu.factor selected inversion"
        for method in methods:
            name = f"Hutchinson, {HUTCHINSON_PROBES} probes" if method == "Hutchinson" else method
            spec = {"part": "logdet", "matrix": "laplacian_2d", "size": size, "method": method}
            out.append(Case(group, name, spec))
    return out, reference


if __name__ == "__main__":
    selected, reference = cases()
    run(
        "factor",
        selected,
        measure,
        columns=[
            Column("first_s", "first step", "s"),
            Column("step_s", "per step", "s"),
            Column("steps", "steps"),
            Column("analysis_share", "analysis share"),
            Column("time_s", "logdet+grad", "s"),
            Column("peak_B", "peak memory", "B"),
            Column("rel_error", "grad error"),
        ],
        reference=reference,
        ratio_of=[Column("step_s", "per-step speed-up", "s"), Column("time_s", "speed-up", "s")],
        timeout=1800.0,
        title="tsgu.factor: Newton loop with refactor; logdet + gradient by selected inversion",
    )
