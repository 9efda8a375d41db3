"""Sparse-sparse algebra: sparse_mm(A, B) with a sparse B, sparse_add, against the numml paper
and against what a user would use instead.

1. **The numml paper's Table 2** (Nytko et al., "Optimized Sparse Matrix Operations for
   Reverse Mode AD", CPU column, one thread, N = 32,768; its figures converted to one call).
   The paper does not say which matrix; we use its A_N of eq. 29, the 1-D Laplacian
   tridiag(-1, 2, -1), float64, with ``torch.set_num_threads(1)``. Different machines: the
   paper's column is printed beside ours, not measured here.
2. **3-D 27-point Poisson on 50³** (125,000 rows, 3.2M nnz), float64, one thread: ``A @ A``
   and the Galerkin product ``Pᵀ A P`` with a 2x2x2 aggregation P (15,625 columns), forward
   and backward (gradients for the values of A and of P), peak memory; beside SciPy's
   ``A @ B`` and torch.sparse.mm on CSR (forward only: torch's CSR @ CSR has no backward, its
   COO backward densifies n x n), and JAX's BCOO @ BCOO forward when jax imports.

    python benchmarks/sparse_sparse.py                 # everything (about ten minutes)
    python benchmarks/sparse_sparse.py --only paper    # the paper's table only
"""

from __future__ import annotations

from typing import Any

from _runner import Case, Column, nbytes, peak_memory, run, timed

N_PAPER = 32_768
GRID = 50
# The paper's Table 2, CPU, converted to seconds per call (its figures, not measured here).
PAPER = {
    "SpMV": (0.14e-3, 0.60e-3),
    "SpSpMM A_N @ A_N": (3.7e-3, 48.9e-3),
    "Sp + Sp": (0.7e-3, 1.3e-3),
    "triangular solve": (0.3e-3, 134.6e-3),
}


def _tridiag(n: int, layout: Any = None) -> Any:
    import torch

    i = torch.arange(n)
    rows = torch.cat([i, i[1:], i[:-1]])
    cols = torch.cat([i, i[:-1], i[1:]])
    vals = torch.cat([2 * torch.ones(n), -torch.ones(n - 1), -torch.ones(n - 1)]).double()
    A = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n)).coalesce()
    return A.to_sparse_csr() if layout is None else A


def _leaf(S: Any) -> Any:
    """``(values, rebuild)`` with values a leaf that requires grad (tsgu's constructors)."""
    from tsgu.core.testing import with_values

    return with_values(S)


def _paper_case(op: str) -> dict[str, Any]:
    import torch

    import tsgu.core as tc
    from tsgu.core.extend import values_of

    torch.set_num_threads(1)
    A = _tridiag(N_PAPER)
    values, rebuild = _leaf(A)
    gen = torch.Generator().manual_seed(0)
    if op == "SpMV":
        x = torch.randn(N_PAPER, generator=gen, dtype=torch.float64).requires_grad_(True)

        def call() -> Any:
            return tc.sparse_mm(rebuild(values), x)

        leaves = [values, x]
    elif op == "SpSpMM A_N @ A_N":
        values2, rebuild2 = _leaf(A)

        def call() -> Any:
            return values_of(tc.sparse_mm(rebuild(values), rebuild2(values2)))

        leaves = [values, values2]
    elif op.startswith("Sp + Sp"):
        # same pattern (A_N + A_N, the fast path) or a union (A_N + a second superdiagonal)
        if op == "Sp + Sp":
            B = _tridiag(N_PAPER)
        else:
            i = torch.arange(N_PAPER - 2)
            B = torch.sparse_coo_tensor(
                torch.stack([i, i + 2]), torch.ones(N_PAPER - 2, dtype=torch.float64), A.shape
            ).to_sparse_csr()
        values2, rebuild2 = _leaf(B)

        def call() -> Any:
            return values_of(tc.sparse_add(rebuild(values), rebuild2(values2), 1.0, -0.5))

        leaves = [values, values2]
    elif op == "triangular solve":
        L = _lower(A)
        values, rebuild = _leaf(L)
        b = torch.randn(N_PAPER, 1, generator=gen, dtype=torch.float64).requires_grad_(True)

        def call() -> Any:
            return tc.sparse_triangular_solve(rebuild(values), b, upper=False)

        leaves = [values, b]
    else:
        raise ValueError(op)
    return _fwd_bwd(call, leaves, gen)


def _lower(A: Any) -> Any:
    coo = A.to_sparse_coo().coalesce()
    keep = coo.indices()[0] >= coo.indices()[1]
    lower = coo.indices()[:, keep], coo.values()[keep]
    import torch

    return torch.sparse_coo_tensor(*lower, A.shape).coalesce().to_sparse_csr()


def _fwd_bwd(call: Any, leaves: list[Any], gen: Any, quick: bool = False) -> dict[str, Any]:
    import torch

    def clear() -> None:
        for leaf in leaves:
            leaf.grad = None

    def forward() -> Any:
        with torch.no_grad():
            return call()

    # the first call finds the patterns (kept for later calls: a training loop's steps)
    first = timed(forward, repeat=1, warmup=0, min_seconds=0.0)
    opts = {"repeat": 2, "warmup": 0, "min_seconds": 0.0} if quick else {}
    fwd = timed(forward, **opts)
    out = call()
    G = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    bwd_times = []
    for _ in range(3 if quick else 5):  # backward alone, after a fresh forward
        out = call()
        bwd_times.append(timed(lambda o=out: o.backward(G), repeat=1, warmup=0, min_seconds=0))
        clear()
    bwd = sorted(bwd_times)[len(bwd_times) // 2]

    def both() -> None:
        call().backward(G)

    peak = peak_memory(both)
    clear()
    out = call()
    out.backward(G)
    operands = nbytes(out, G, *leaves, *[leaf.grad for leaf in leaves])
    return {
        "first_s": first,
        "fwd_s": fwd,
        "bwd_s": bwd,
        "peak_B": peak,
        "peak_over_operands": peak / operands if operands else float("nan"),
    }


def _poisson_and_P() -> tuple[Any, Any]:
    import torch

    import tsgu.core as tc

    A = tc.poisson_3d(GRID, stencil=27, index_dtype=torch.int32)
    n = GRID**3
    i = torch.arange(n)
    a, b, c = i % GRID, (i // GRID) % GRID, i // GRID**2
    half = GRID // 2
    agg = a // 2 + half * (b // 2) + half * half * (c // 2)
    crow = torch.arange(n + 1, dtype=torch.int32)
    P = torch.sparse_csr_tensor(
        crow, agg.to(torch.int32), torch.ones(n, dtype=torch.float64), (n, half**3)
    )
    return A, P


def _poisson_case(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(spec.get("threads", 1))
    A, P = _poisson_and_P()
    product, method = spec["product"], spec["method"]
    if method.startswith("tsgu"):
        import tsgu.core as tc
        from tsgu.core.extend import values_of

        values_A, rebuild_A = _leaf(A)
        if product == "A @ A":
            values_B, rebuild_B = _leaf(A)

            def call() -> Any:
                return values_of(tc.sparse_mm(rebuild_A(values_A), rebuild_B(values_B)))

            leaves = [values_A, values_B]
        else:
            values_P, rebuild_P = _leaf(P)

            def call() -> Any:
                Pv = rebuild_P(values_P)
                AP = tc.sparse_mm(rebuild_A(values_A), Pv)
                return values_of(tc.sparse_mm(tc.sparse_transpose(Pv), AP))

            leaves = [values_A, values_P]
        return _fwd_bwd(call, leaves, torch.Generator().manual_seed(0), quick=True)
    if method == "scipy A @ B":
        import scipy.sparse as sp

        def scipy_csr(S: Any) -> Any:
            return sp.csr_matrix(
                (S.values().numpy(), S.col_indices().numpy(), S.crow_indices().numpy()),
                shape=tuple(S.shape),
            )

        sA, sP = scipy_csr(A), scipy_csr(P)
        sPt = sP.T.tocsr()
        fn = (lambda: sA @ sA) if product == "A @ A" else (lambda: sPt @ (sA @ sP))
    elif method == "torch.sparse.mm CSR":
        Pt = P.to_sparse_coo().t().coalesce().to_sparse_csr()
        if product == "A @ A":

            def fn() -> Any:
                return torch.sparse.mm(A, A)
        else:

            def fn() -> Any:
                return torch.sparse.mm(Pt, torch.sparse.mm(A, P))
    elif method == "jax BCOO":
        import jax
        from jax.experimental import sparse as jsparse

        def bcoo(S: Any) -> Any:
            coo = S.to_sparse_coo().coalesce()
            return jsparse.BCOO(
                (coo.values().numpy(), coo.indices().T.numpy()), shape=tuple(S.shape)
            )

        jA, jP = bcoo(A), bcoo(P)
        jPt = jP.T
        if product == "A @ A":
            f = jax.jit(lambda x: x @ x)

            def run_jax() -> Any:
                return jax.block_until_ready(f(jA))
        else:
            f2 = jax.jit(lambda pt, x, p: pt @ (x @ p))

            def run_jax() -> Any:
                return jax.block_until_ready(f2(jPt, jA, jP))

        def fn() -> Any:
            # JAX sizes a sparse @ sparse output at its worst case (n x n entries for the 27-point
            # 10³ A @ A; 3.8e10 at 20³, past its int32 indices): say that, not JAX's note on
            # filtered tracebacks, which is the last line the runner would report
            try:
                return run_jax()
            except Exception as error:
                raise RuntimeError(
                    f"JAX BCOO @ BCOO could not run: {type(error).__name__}: {error}"
                ) from None
    else:
        raise ValueError(method)
    fwd = timed(fn, repeat=1, warmup=1, min_seconds=0.0)
    peak = peak_memory(fn)
    return {"fwd_s": fwd, "bwd_s": float("nan"), "peak_B": peak}


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "paper":
        result = _paper_case(spec["op"])
        paper_fwd, paper_bwd = PAPER[spec["op"] if spec["op"] in PAPER else "Sp + Sp"]
        result.update(paper_fwd_s=paper_fwd, paper_bwd_s=paper_bwd)
        return result
    return _poisson_case(spec)


def _jax_installed() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def cases() -> tuple[list[Case], dict[str, str]]:
    out: list[Case] = []
    reference: dict[str, str] = {}
    for op in ("SpMV", "SpSpMM A_N @ A_N", "Sp + Sp", "Sp + Sp (union)", "triangular solve"):
        group = f"paper N=32768 {op}"
        reference[group] = "tsgu"
        out.append(Case(group, "tsgu", {"kind": "paper", "op": op}))
    for product in ("A @ A", "P^T A P"):
        group = f"poisson3d-27 50^3 {product}"
        reference[group] = "scipy A @ B"
        methods = ["tsgu", "tsgu 2 threads", "scipy A @ B", "torch.sparse.mm CSR"]
        if _jax_installed():
            methods.append("jax BCOO")
        for method in methods:
            spec = {"kind": "poisson", "product": product, "method": method}
            if method == "tsgu 2 threads":  # torch's default on this 2-core machine
                spec["threads"] = 2
            out.append(Case(group, method, spec))
    return out, reference


if __name__ == "__main__":
    selected, reference = cases()
    run(
        "sparse_sparse",
        selected,
        measure,
        columns=[
            Column("first_s", "first call", "s"),
            Column("fwd_s", "forward", "s"),
            Column("bwd_s", "backward", "s"),
            Column("paper_fwd_s", "paper fwd", "s"),
            Column("paper_bwd_s", "paper bwd", "s"),
            Column("peak_B", "peak mem", "B"),
            Column("peak_over_operands", "peak/operands", ""),
        ],
        reference=reference,
        ratio_of=[Column("fwd_s", "forward", "s")],
        title="sparse-sparse algebra, float64, one thread unless named (first call: finds the "
        "patterns; forward/backward: later calls, as a training loop's; paper columns: the "
        "numml paper's Table 2, another machine; peak mem: rise during forward+backward; "
        "operands: inputs, output, its gradient and the gradients)",
        timeout=1500.0,
    )
