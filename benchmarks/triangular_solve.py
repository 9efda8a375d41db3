"""sparse_triangular_solve: forward and forward+backward against SciPy and torch's kernel.

Lower triangles of: 2D 5-point Poisson on 512 x 512 (262,144 rows), 3D 27-point Poisson on
50³ (125,000 rows, 1.7M nnz in the triangle), and a random nonsymmetric diagonally
dominant n = 100,000 matrix with 20 nnz per row. 16 right-hand sides, float64.
Peers: scipy.sparse.linalg.spsolve_triangular (forward only) and torch.triangular_solve on
CSR (forward only: its backward gives a dense gradient). The reference is SciPy's forward.

    python benchmarks/triangular_solve.py [--only 50^3]
"""

from __future__ import annotations

from typing import Any

from _runner import Case, Column, nbytes, peak_memory, run, timed

K = 16


def _lower(spec: dict[str, Any]) -> Any:
    import torch

    import tsgu.core as tc

    if spec["matrix"] == "poisson2d":
        A = tc.poisson_2d(512)
    elif spec["matrix"] == "poisson3d":
        A = tc.poisson_3d(50, stencil=27)
    else:
        n = 100_000
        A = tc.rand_sparse(
            (n, n),
            20 * n,
            torch.sparse_csr,
            values_dtype=torch.float64,
            generator=torch.Generator().manual_seed(0),
        )
        A = (A + 25.0 * tc.sparse_eye(n, layout=torch.sparse_csr)).to_sparse_csr()
    coo = A.to_sparse_coo().coalesce()
    keep = coo.indices()[1] <= coo.indices()[0]
    L = torch.sparse_coo_tensor(coo.indices()[:, keep], coo.values()[keep], coo.shape).coalesce()
    return L.to_sparse_csr()


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    import tsgu.core as tc

    L = _lower(spec)
    n = L.shape[0]
    B = torch.randn(n, K, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    method = spec["method"]
    out: dict[str, Any] = {"nnz": int(L.values().numel())}
    if method == "scipy spsolve_triangular":
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla

        S = sp.csr_matrix(
            (L.values().numpy(), L.col_indices().numpy(), L.crow_indices().numpy()), shape=L.shape
        )
        Bn = B.numpy()
        out["fwd_s"] = timed(lambda: spla.spsolve_triangular(S, Bn, lower=True))
        out["peak_B"] = peak_memory(lambda: spla.spsolve_triangular(S, Bn, lower=True))
        X = spla.spsolve_triangular(S, Bn, lower=True)
        out["residual"] = float(np.linalg.norm(S @ X - Bn) / np.linalg.norm(Bn))
        return out
    if method == "torch.triangular_solve":
        out["fwd_s"] = timed(lambda: torch.triangular_solve(B, L, upper=False))
        out["peak_B"] = peak_memory(lambda: torch.triangular_solve(B, L, upper=False))
        return out
    # tsgu: forward alone, then forward + backward with gradients to L's values and B
    out["fwd_s"] = timed(lambda: tc.sparse_triangular_solve(L, B, upper=False))
    values = L.values().clone().requires_grad_(True)
    Bg = B.clone().requires_grad_(True)
    crow, col = L.crow_indices(), L.col_indices()
    G = torch.randn(n, K, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def both() -> None:
        M = tc.sparse_csr_tensor(crow, col, values, L.shape)
        tc.sparse_triangular_solve(M, Bg, upper=False).backward(G)

    out["fwd_bwd_s"] = timed(both)
    out["peak_B"] = peak_memory(both)
    # L, its values' gradient, and B, X, grad X, grad B (each n x k)
    out["operands_B"] = nbytes(L, values) + 4 * nbytes(B)
    out["peak_over_operands"] = out["peak_B"] / out["operands_B"]
    X = tc.sparse_triangular_solve(L, B, upper=False)
    out["residual"] = float(torch.linalg.norm(L @ X - B) / torch.linalg.norm(B))
    return out


def cases() -> tuple[list[Case], dict[str, str]]:
    problems = [
        ("poisson2d 512^2", "poisson2d"),
        ("poisson3d-27 50^3", "poisson3d"),
        ("random n=100k", "random"),
    ]
    out, reference = [], {}
    for label, matrix in problems:
        group = f"lower({label}) x {K}"
        reference[group] = "scipy spsolve_triangular"
        for method in ("tsgu", "scipy spsolve_triangular", "torch.triangular_solve"):
            out.append(Case(group, method, {"matrix": matrix, "method": method}))
    return out, reference


if __name__ == "__main__":
    selected, reference = cases()
    fwd, both = Column("fwd_s", "forward", "s"), Column("fwd_bwd_s", "forward+backward", "s")
    run(
        "triangular_solve",
        selected,
        measure,
        columns=[
            fwd,
            both,
            Column("peak_B", "peak mem", "B"),
            Column("peak_over_operands", "peak/operands"),
            Column("residual", "rel. residual"),
        ],
        reference=reference,
        ratio_of=[fwd, Column("fwd_bwd_s", "fwd+bwd", "s", against="fwd_s")],
        title=f"sparse triangular solve, float64, {K} right-hand sides "
        "(ratios against SciPy's forward; forward+backward of tsgu vs SciPy's forward alone)",
    )
