"""A sparse approximate inverse by gradient descent through sparse-sparse products.

The sparse approximate inverse (SPAI) of Nytko et al., "Optimized Sparse Matrix Operations
for Reverse Mode Automatic Differentiation" (section 4.6): minimise

    loss(M) = || I - M A ||²_F   over the values of M, with mask(M) = mask(A),

by Adam. Each step is a sparse @ sparse product (``tsgu.core.sparse_mm`` with a sparse B),
a sparse sum (``tsgu.core.sparse_add``, for I - M A) and the squared Frobenius norm of the
result's values; the gradient reaches M's values in O(nnz) through
``tsgu.core.sparse_csr_tensor``. Nothing n x n is formed, so the same script runs where a
dense M A cannot be held.

The loss is separable by rows of M and quadratic, so its exact minimiser is the classical
SPAI solution, one small least-squares problem per row (here by its normal equations: the
Gram matrix ``(A Aᵀ)[J, J]`` of row i's pattern J, itself read from the sparse product
A Aᵀ). The script compares the loss reached by Adam with that optimum, and uses M
(symmetrised, ``sparse_add(M, sparse_transpose(M), 0.5, 0.5)``, as CG needs a symmetric
preconditioner) in preconditioned CG against no preconditioner and Jacobi.

Matrices: 2D 5-point Poisson on 64 x 64 (4,096 unknowns) and on 256 x 256 (65,536 unknowns,
the size at which the paper's dense version cannot run). The paper's N = 10⁶ (1000 x 1000)
runs with ``--large``, apart from the gallery build (it takes minutes, not the gallery's two),
and writes its own text and figure (``sparse_approximate_inverse_large.*``).

    python docs/gallery/sparse_approximate_inverse.py           # writes its figure and text
    python docs/gallery/sparse_approximate_inverse.py --large   # N = 10⁶ alone
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import tsgu.core as tc
from tsgu.core.extend import values_of

GRIDS = (64, 256)
LARGE_GRID = 1000  # the paper's N = 10⁶
STEPS = 150
LR = 0.02
RTOL = 1e-8
OUT = Path(__file__).resolve().parent / "figures"
warnings.filterwarnings("ignore", "Sparse (CSR|invariant)", UserWarning)  # torch's notices
torch.manual_seed(0)


def spai_loss(A: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """|| I - M A ||²_F, through sparse products only."""
    eye = tc.sparse_eye(A.shape[0], layout=torch.sparse_csr)
    R = tc.sparse_add(eye, tc.sparse_mm(M, A), 1.0, -1.0)
    return (values_of(R) ** 2).sum()


def classical_spai(A: torch.Tensor) -> torch.Tensor:
    """The exact minimiser's values, row by row (all rows at once, padded to 5 x 5).

    Row i of M on pattern J minimises || A[J, :]ᵀ m - e_i ||: the normal equations are
    (A Aᵀ)[J, J] m = A[J, i] = A[i, J] for a symmetric A.
    """
    n = A.shape[0]
    crow, col, vals = A.crow_indices(), A.col_indices(), A.values()
    counts = crow.diff()
    width = int(counts.max())
    rows = torch.repeat_interleave(torch.arange(n), counts)
    slot = torch.arange(col.numel()) - crow[:-1][rows]
    J = torch.full((n, width), -1, dtype=torch.int64)
    J[rows, slot] = col
    rhs = torch.zeros(n, width, dtype=A.dtype)
    rhs[rows, slot] = vals
    gram = tc.sparse_mm(A, tc.sparse_transpose(A)).to_sparse_coo().coalesce()
    keys = gram.indices()[0] * n + gram.indices()[1]
    valid = J >= 0
    Jc = J.clamp(min=0)
    want = Jc[:, :, None] * n + Jc[:, None, :]  # (n, width, width) entries of the Gram matrix
    where = torch.searchsorted(keys, want.reshape(-1)).clamp(max=keys.numel() - 1)
    hit = keys[where] == want.reshape(-1)
    G = torch.where(hit, gram.values()[where], 0.0).reshape(n, width, width)
    pair = valid[:, :, None] & valid[:, None, :]
    G = torch.where(pair, G, 0.0) + torch.diag_embed((~valid).to(A.dtype))  # pad: identity
    m = torch.linalg.solve(G, rhs)
    return m[valid]


def cg_iterations(A: torch.Tensor, b: torch.Tensor, M: object = None) -> tuple[int, list[float]]:
    history: list[float] = []
    norm_b = float(b.norm())

    def record(x: torch.Tensor) -> None:
        history.append(float((b - tc.sparse_mm(A, x)).norm()) / norm_b)

    _, info = tc.cg(A, b, rtol=RTOL, M=M, maxiter=5000, callback=record, return_info=True)
    return info.iterations, history


def run(grid: int) -> dict[str, object]:
    A = tc.poisson_2d(grid, dtype=torch.float64)
    n = A.shape[0]
    crow, col = A.crow_indices(), A.col_indices()
    diag = torch.repeat_interleave(torch.arange(n), crow.diff()) == col
    values = torch.where(diag, 1.0 / 4.0, 0.0).to(torch.float64).requires_grad_()  # Jacobi
    optimizer = torch.optim.Adam([values], lr=LR)
    losses = []
    start = time.perf_counter()
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = spai_loss(A, tc.sparse_csr_tensor(crow, col, values, (n, n)))
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    exact = classical_spai(A)
    with torch.no_grad():
        M = tc.sparse_csr_tensor(crow, col, values.detach(), (n, n))
        final = float(spai_loss(A, M))
        optimum = float(spai_loss(A, tc.sparse_csr_tensor(crow, col, exact, (n, n))))
        jacobi = float(
            spai_loss(
                A, tc.sparse_csr_tensor(crow, col, torch.where(diag, 0.25, 0.0).double(), (n, n))
            )
        )
        Ms = tc.sparse_add(M, tc.sparse_transpose(M), 0.5, 0.5)
        b = torch.randn(n, dtype=torch.float64)
        its = {
            "none": cg_iterations(A, b),
            "Jacobi": cg_iterations(A, b, lambda r: r / 4.0),
            "learned SPAI": cg_iterations(A, b, lambda r: tc.sparse_mm(Ms, r)),
        }
    return {
        "n": n,
        "losses": losses,
        "seconds": seconds,
        "final": final,
        "optimum": optimum,
        "jacobi": jacobi,
        "its": its,
    }


def main(large: bool = False) -> None:
    results = [run(g) for g in ((LARGE_GRID,) if large else GRIDS)]
    stem = "sparse_approximate_inverse" + ("_large" if large else "")
    lines = []
    for r in results:
        lines.append(
            f"n = {r['n']:,}: {STEPS} Adam steps in {r['seconds']:.1f} s; ||I - MA||_F^2 from "
            f"{r['jacobi']:.2f} (Jacobi) to {r['final']:.4f}; classical SPAI optimum "
            f"{r['optimum']:.4f} (gap {100 * (r['final'] - r['optimum']) / r['optimum']:.2f}%)"
        )
        its = r["its"]
        lines.append(
            "  CG iterations to 1e-8: "
            + ", ".join(f"{name} {count}" for name, (count, _) in its.items())
        )
    if large:  # the point of N = 10⁶: it fits (Linux reports ru_maxrss in KiB)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        lines.append(f"  peak resident memory of the whole script: {peak:.1f} GiB")
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{stem}.txt").write_text(text + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for r in results:
        axes[0].semilogy(r["losses"], label=f"Adam, n = {r['n']:,}")
        axes[0].axhline(r["optimum"], ls="--", color="gray", lw=0.8)
    axes[0].set(xlabel="Adam step", ylabel="||I - M A||²_F", title="loss (dashed: classical SPAI)")
    axes[0].legend()
    names = list(results[0]["its"])
    for k, r in enumerate(results):
        counts = [r["its"][name][0] for name in names]
        axes[1].bar(
            [i + 0.4 * k for i in range(len(names))], counts, width=0.4, label=f"n = {r['n']:,}"
        )
    axes[1].set_xticks([i + 0.2 for i in range(len(names))], names)
    axes[1].set(ylabel="CG iterations to 1e-8", title="preconditioned CG")
    axes[1].legend()
    for name, (_, history) in results[-1]["its"].items():
        axes[2].semilogy(history, label=name)
    axes[2].set(
        xlabel="CG iteration", ylabel="relative residual", title=f"n = {results[-1]['n']:,}"
    )
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(OUT / f"{stem}.png", dpi=110)


if __name__ == "__main__":
    main(large="--large" in sys.argv[1:])
