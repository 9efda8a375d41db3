"""tsgu.cupy's direct solve: forward, backward and peak memory beside what users use instead.

The backward of ``sparse_solve_c4t``'s direct solve reuses the forward's SuperLU factors
(``trans='T'``); the reference is torchsparsegradutils 0.2's recipe, SciPy's ``spsolve``
for the forward and ``spsolve(Aᵀ)`` again in the backward, which factors twice. Target:
our backward at most 0.3x our forward (the "bwd/fwd" column).

Methods, on the same matrices in one run:
- ``tsgu``: ``sparse_solve_c4t(A, B)``, a fresh A each call (no cache hit).
- ``tsgu, same A again``: the same A solved again: the cached factorization serves the forward.
- ``spsolve + spsolve(Aᵀ)`` (reference): 0.2's recipe, SciPy's default ordering (COLAMD);
  the gradient of A by ``tsgu.core.sparse_sampled_mm``, so only the solves differ.
- ``spsolve + spsolve(Aᵀ), MMD``: the same with the ordering tsgu picks for a symmetric
  pattern (``permc_spec="MMD_AT_PLUS_A"``): what the ordering alone is worth.
- ``torchsparsegradutils 0.2``: its ``sparse_solve_c4t`` (SciPy on the CPU), where installed
  (``pip install --no-deps torchsparsegradutils==0.2.2``).
- ``torch-sla scipy lu``: torch-sla's ``spsolve(..., backend="scipy", method="lu")``, where
  installed (``pip install torch-sla``).

Matrices (float64, CSR): 2D 5-point Poisson 256² (65,536 rows) and 512² (262,144 rows), the
3D 27-point Poisson 30³ (27,000 rows, 0.7M nnz); a vector B and 16 columns.

    python benchmarks/cupy_solve.py                        # everything (long: SuperLU at 512²)
    python benchmarks/cupy_solve.py --only "256^2, vector"    # the smallest case
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any

from _runner import Case, Column, nbytes, peak_memory, run

REFERENCE = "spsolve + spsolve(Aᵀ)"
PAIRS = 3  # timed forward + backward pairs per case, after one warm-up pair
SLOW_S = 20.0  # a warm-up pair slower than this: one timed pair only


def _matrix(spec: dict[str, Any]) -> Any:
    import tsgu.core as tc

    if spec["matrix"] == "poisson2d":
        return tc.poisson_2d(spec["grid"])
    return tc.poisson_3d(spec["grid"], stencil=27)


def _spsolve_twice(permc_spec: str | None) -> Any:
    """0.2's recipe as an autograd op: spsolve forward, spsolve(Aᵀ) backward."""
    import scipy.sparse.linalg as spla
    import torch

    from tsgu.core import sparse_sampled_mm
    from tsgu.cupy import t2c_csr

    kwargs = {} if permc_spec is None else {"permc_spec": permc_spec}

    class SpsolveTwice(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, A: Any, B: Any) -> Any:
            ctx.save_for_backward(A)
            X = spla.spsolve(t2c_csr(A), B.detach().numpy(), use_umfpack=False, **kwargs)
            X = torch.from_numpy(X).reshape(B.shape)
            ctx.X = X
            return X

        @staticmethod
        def backward(ctx: Any, G: Any) -> Any:
            (A,) = ctx.saved_tensors
            At = t2c_csr(A.detach()).T  # CSC view of Aᵀ
            grad_B = torch.from_numpy(
                spla.spsolve(At, G.contiguous().numpy(), use_umfpack=False, **kwargs)
            ).reshape(G.shape)
            Gc = grad_B if grad_B.dim() == 2 else grad_B[:, None]
            Xc = ctx.X if ctx.X.dim() == 2 else ctx.X[:, None]
            return sparse_sampled_mm(A.detach(), -Gc, Xc.mT), grad_B

    return SpsolveTwice.apply


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    import torch

    warnings.simplefilter("ignore")  # 0.2's "cupy not installed" notice and the like
    A0 = _matrix(spec)
    n = A0.shape[0]
    gen = torch.Generator().manual_seed(1)
    shape = (n,) if spec["k"] == 1 else (n, spec["k"])
    B = torch.randn(shape, generator=gen, dtype=torch.float64)
    G = torch.randn(shape, generator=gen, dtype=torch.float64)
    method = spec["method"]

    fresh = True  # a new A object for every call
    if method.startswith("tsgu"):
        from tsgu.cupy import sparse_solve_c4t as op

        fresh = method == "tsgu"
    elif method.startswith(REFERENCE):
        op = _spsolve_twice("MMD_AT_PLUS_A" if method.endswith("MMD") else None)
    elif method == "torchsparsegradutils 0.2":
        from torchsparsegradutils.cupy import sparse_solve_c4t as op
    elif method == "torch-sla scipy lu":
        import torch_sla

        coo = A0.to_sparse_coo().coalesce()
        row, col = coo.indices()

        def op(A: Any, B: Any) -> Any:  # A: the values, which require grad
            return torch_sla.spsolve(A, row, col, (n, n), B, backend="scipy", method="lu")

        A0 = coo.values()
    else:
        raise ValueError(method)

    same = A0.detach().requires_grad_(True)

    def inputs() -> tuple[Any, Any]:
        A = A0.detach().requires_grad_(True) if fresh else same
        A.grad = None
        return A, B.detach().requires_grad_(True)

    def pair() -> tuple[float, float]:
        A, b = inputs()
        start = time.perf_counter()
        X = op(A, b)
        mid = time.perf_counter()
        X.backward(G)
        end = time.perf_counter()
        return mid - start, end - mid

    def both() -> None:
        A, b = inputs()
        op(A, b).backward(G)

    out: dict[str, Any] = {"n": n, "k": spec["k"]}
    peak = peak_memory(both)
    if peak == peak:  # not NaN: the memory child, no timings
        out["peak_B"] = peak
        A, b = inputs()
        X = op(A, b)
        X.backward(G)
        out["operands_B"] = nbytes(A, b, X, G, A.grad, b.grad)
        return out
    # Warm-up (for "same A again": the factorization that the timed calls reuse). Slow
    # cases (SuperLU with COLAMD on the 3D matrix takes tens of seconds) get one timed pair.
    warm = sum(pair())
    times = [pair() for _ in range(PAIRS if warm < SLOW_S else 1)]
    fwd = statistics.median(t[0] for t in times)
    bwd = statistics.median(t[1] for t in times)
    out.update({"fwd_s": fwd, "bwd_s": bwd, "bwd_over_fwd": bwd / fwd})
    return out


PROBLEMS = [
    ("poisson2d 256^2", {"matrix": "poisson2d", "grid": 256}),
    ("poisson2d 512^2", {"matrix": "poisson2d", "grid": 512}),
    ("poisson3d-27 30^3", {"matrix": "poisson3d", "grid": 30}),
]


# Peers that install separately: (method, module, how to install).
PEERS = [
    (
        "torchsparsegradutils 0.2",
        "torchsparsegradutils",
        "pip install --no-deps torchsparsegradutils==0.2.2",
    ),
    ("torch-sla scipy lu", "torch_sla", "pip install torch-sla"),
]


def cases() -> tuple[list[Case], dict[str, str]]:
    methods = ["tsgu", "tsgu, same A again", REFERENCE, f"{REFERENCE}, MMD"]
    for method, module, install in PEERS:
        if _installed(module):
            methods.append(method)
        else:
            print(f"{method}: not installed ({install}); skipped")
    out: list[Case] = []
    reference: dict[str, str] = {}
    for label, spec in PROBLEMS:
        for k in (1, 16):
            group = f"{label}, " + ("vector" if k == 1 else f"{k} columns")
            reference[group] = REFERENCE
            out += [Case(group, m, {**spec, "k": k, "method": m}) for m in methods]
    return out, reference


if __name__ == "__main__":
    selected, reference = cases()
    time_cols = [Column("fwd_s", "forward", "s"), Column("bwd_s", "backward", "s")]
    run(
        "cupy_solve",
        selected,
        measure,
        columns=[
            *time_cols,
            Column("bwd_over_fwd", "bwd/fwd"),
            Column("peak_B", "peak mem", "B"),
        ],
        reference=reference,
        ratio_of=[*time_cols, Column("peak_B", "peak mem", "B")],
        title="tsgu.cupy direct solve (SciPy/SuperLU on the CPU), float64 CSR; "
        "target: tsgu bwd/fwd <= 0.3",
    )
