"""sparse_solve_j4t: JAX's CG and BiCGSTAB on torch tensors, forward + backward, against
tsgu.core's own Krylov solvers and against the same solve written in pure JAX.

Problem: the 2D 5-point Poisson matrix on 256² and 512² grids (65,536 and 262,144 rows),
float64, one right-hand side; the loss is <X, G> for a fixed random G, and the backward
gives the gradients of A's values and of B. Every method runs the same fixed number of
iterations in each solve (``ITERS``, with a tolerance no solve reaches), so all do the same
arithmetic and the times compare the machinery, not the stopping rules.

Peers, in one run, per solver and grid:

* ``pure JAX, BCOO`` (the reference): ``jax.scipy.sparse.linalg.cg``/``bicgstab`` on a
  ``jax.experimental.sparse.BCOO`` operator under ``jax.jit``, gradients by ``jax.grad``;
* ``pure JAX, SparseMatvec``: the same with tsgu.jax's segment-sum matvec as the operator,
  so ``tsgu.jax`` against it is the cost of the torch <-> JAX bridge alone;
* ``tsgu.jax``: ``sparse_solve_j4t`` on a CSR matrix built each step from a values leaf with
  ``tsgu.core.sparse_csr_tensor``, ``.backward()`` in torch;
* ``tsgu.core``: ``sparse_generic_solve`` with tsgu.core's own ``cg``/``bicgstab`` (torch);
* ``torchsparsegradutils 0.2``: its ``sparse_solve_j4t`` given the same JAX solver for both
  directions, when it is installed (``uv pip install --no-deps torchsparsegradutils==0.2.2``;
  "not installed" otherwise).

The target of the issue: ``tsgu.jax`` adds at most 10% over pure JAX at 512².

    python benchmarks/jax_solve.py                 # everything (several minutes)
    python benchmarks/jax_solve.py --only "256^2 CG"   # the smallest group
    python benchmarks/jax_solve.py --method tsgu.jax   # one method (and the reference)
"""

from __future__ import annotations

import sys
from typing import Any

from _runner import Case, Column, measuring_memory, peak_memory, run, timed

GRIDS = (256, 512)
SOLVERS = {"cg": "CG", "bicgstab": "BiCGSTAB"}
ITERS = 200  # iterations per solve, forward and backward alike
TOL = 1e-30  # never reached: every solve runs ITERS iterations
REFERENCE = "pure JAX, BCOO"


# ---------------------------------------------------------------------------- child side
def _problem(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    import tsgu.core as tc

    A = tc.poisson_2d(spec["grid"], dtype=torch.float64, index_dtype=torch.int32)
    n = A.shape[0]
    gen = torch.Generator().manual_seed(0)
    return {
        "A": A,
        "B": torch.randn(n, generator=gen, dtype=torch.float64),
        "G": torch.randn(n, generator=gen, dtype=torch.float64),
    }


def _torch_case(spec: dict[str, Any], p: dict[str, Any]) -> tuple[Any, Any]:
    """``forward()`` and ``both()`` (forward + backward) of a torch-side method."""
    import torch

    import tsgu.core as tc

    A, G = p["A"], p["G"]
    values = A.values().clone().requires_grad_()
    B = p["B"].clone().requires_grad_()
    crow, col, shape = A.crow_indices(), A.col_indices(), tuple(A.shape)
    method, solver = spec["method"], spec["solver"]
    if method == "tsgu.jax":
        import jax

        from tsgu.jax import sparse_solve_j4t

        jax.config.update("jax_enable_x64", True)  # float64: tsgu.jax leaves it to the user

        def solve(M: Any, b: Any) -> Any:
            return sparse_solve_j4t(M, b, solve=solver, tol=TOL, maxiter=ITERS)

    elif method == "tsgu.core":

        def solve(M: Any, b: Any) -> Any:
            return tc.sparse_generic_solve(M, b, solve=solver, rtol=TOL, maxiter=ITERS)

    elif method == "torchsparsegradutils 0.2":
        try:
            from torchsparsegradutils.jax import sparse_solve_j4t as old_j4t
        except ImportError:
            raise SystemExit(
                "not installed: torchsparsegradutils 0.2 "
                "(uv pip install --no-deps torchsparsegradutils==0.2.2)"
            ) from None
        import jax.scipy.sparse.linalg as jla

        fn = getattr(jla, solver)

        def solve(M: Any, b: Any) -> Any:
            # its backward hands transpose_solve A's transpose: right with an explicit solver
            return old_j4t(M, b, solve=fn, transpose_solve=fn, tol=TOL, maxiter=ITERS)

    else:
        raise ValueError(method)

    def build() -> Any:
        if method == "torchsparsegradutils 0.2":  # 0.2 takes torch's leaf, not a constructor
            return torch.sparse_csr_tensor(crow, col, values.detach(), shape).requires_grad_()
        return tc.sparse_csr_tensor(crow, col, values, shape)

    def forward() -> Any:
        with torch.no_grad():
            return solve(build(), B)

    def both() -> None:
        values.grad = B.grad = None
        solve(build(), B).backward(G)

    return forward, both


def _jax_case(spec: dict[str, Any], p: dict[str, Any]) -> tuple[Any, Any]:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64, as a JAX user would enable it
    import jax.numpy as jnp
    import jax.scipy.sparse.linalg as jla
    from jax.experimental import sparse as jsparse

    from tsgu.jax import SparseMatvec

    A = p["A"].to_sparse_coo().coalesce()
    n = A.shape[0]
    indices = A.indices()
    idx = jnp.asarray(indices.T.numpy().astype("int32"))
    rows, cols = jnp.asarray(indices[0].int().numpy()), jnp.asarray(indices[1].int().numpy())
    data = jnp.asarray(A.values().numpy())
    b, G = jnp.asarray(p["B"].numpy()), jnp.asarray(p["G"].numpy())
    fn = getattr(jla, spec["solver"])

    if spec["method"] == REFERENCE:

        def operator(d: Any) -> Any:
            M = jsparse.BCOO((d, idx), shape=(n, n), indices_sorted=True, unique_indices=True)
            return lambda x: M @ x

    else:

        def operator(d: Any) -> Any:
            return SparseMatvec(rows, cols, d, (n, n), True)

    def solve(d: Any, rhs: Any) -> Any:
        return fn(operator(d), rhs, tol=TOL, maxiter=ITERS)[0]

    fwd = jax.jit(solve)
    grads = jax.jit(jax.grad(lambda d, rhs: jnp.vdot(solve(d, rhs), G), argnums=(0, 1)))
    return (
        lambda: fwd(data, b).block_until_ready(),
        lambda: jax.block_until_ready(grads(data, b)),
    )


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import warnings

    warnings.simplefilter("ignore")  # the fixed-iteration solves do not converge, by design
    p = _problem(spec)
    if spec["method"].startswith("pure JAX"):
        forward, both = _jax_case(spec, p)
    else:
        forward, both = _torch_case(spec, p)
    fwd = timed(forward, repeat=3, min_seconds=0)
    total = timed(both, repeat=3, min_seconds=0)
    if measuring_memory():
        both()  # compile first: the peak is that of a step, not of XLA's compiler
    peak = peak_memory(both)
    return {
        "fwd_s": fwd,
        "total_s": total,
        "bwd_s": total - fwd if total == total and fwd == fwd else float("nan"),
        "peak_B": peak,
    }


# --------------------------------------------------------------------------- parent side
METHODS = (REFERENCE, "pure JAX, SparseMatvec", "tsgu.jax", "tsgu.core", "torchsparsegradutils 0.2")


def cases() -> tuple[list[Case], dict[str, str]]:
    out: list[Case] = []
    reference: dict[str, str] = {}
    for grid in GRIDS:
        for solver, label in SOLVERS.items():
            group = f"poisson2d {grid}^2 {label}"
            reference[group] = REFERENCE
            for method in METHODS:
                spec = {"grid": grid, "solver": solver, "method": method}
                out.append(Case(group, method, spec, extra={"n": grid * grid}))
    return out, reference


def _bridge_summary(rows: list[dict[str, Any]]) -> None:
    """tsgu.jax's forward + backward over pure JAX's, per group: the issue's target."""
    print("\ntsgu.jax fwd+bwd time over pure JAX's (target: at most 1.10 at 512^2)")
    for group in dict.fromkeys(r["group"] for r in rows):
        got = {r["method"]: r.get("total_s") for r in rows if r["group"] == group}
        ours = got.get("tsgu.jax")
        parts = []
        for peer in (REFERENCE, "pure JAX, SparseMatvec"):
            base = got.get(peer)
            if isinstance(ours, float) and isinstance(base, float) and base > 0 and ours > 0:
                parts.append(f"{ours / base:.2f} over {peer}")
        print(f"  {group}: " + ("; ".join(parts) if parts else "not measured"))


if __name__ == "__main__":
    selected, reference = cases()
    if "--method" in sys.argv:  # e.g. --method tsgu.jax (the reference always runs)
        wanted = sys.argv[sys.argv.index("--method") + 1]
        selected = [c for c in selected if wanted in c.method or c.method == REFERENCE]
    times = [
        Column("fwd_s", "forward", "s"),
        Column("total_s", "fwd+bwd", "s"),
    ]
    rows = run(
        "jax_solve",
        selected,
        measure,
        columns=[*times, Column("bwd_s", "backward", "s"), Column("peak_B", "peak mem", "B")],
        reference=reference,
        ratio_of=times,
        title=f"sparse solve, float64, 2D Poisson, {ITERS} iterations per solve "
        "(forward; forward + backward of <X, G> for A's values and B)",
    )
    if rows and "group" in rows[0]:  # the parent (a child returns its measurement)
        _bridge_summary(rows)
