"""SparseMultivariateNormal: rsample and log_prob, forward + backward, at up to 10⁶ dimensions.

The factor has a 3D 7-point-neighbourhood lower triangular pattern (the lower triangle of
tsgu.core.poisson_3d's 7-point stencil: the diagonal and the three "earlier" neighbours,
about 4 nnz per row) on grids of 16³ = 4,096, 64³ = 262,144 and 64 x 128 x 128 = 1,048,576
points, in each of the four parameterisations (covariance / precision x LLᵀ / LDLᵀ).
Each step builds the distribution from trainable values (loc, the factor's values,
diagonal), then

* rsample: draws 16 samples and backpropagates a fixed weighting of them;
* log_prob: scores 16 fixed samples and backpropagates their sum,

peers side by side: tsgu (CSR factor built with tsgu.core.sparse_csr_tensor),
torchsparsegradutils 0.2's SparseMultivariateNormal (rsample only: it has no log_prob;
installed with ``uv pip install --no-deps torchsparsegradutils==0.2.2``, skipped when
absent) with a CSR leaf factor, and torch.distributions.MultivariateNormal on the dense
equivalent where it fits in memory. float32, validate_args=False everywhere (argument
checks are not the operation being timed).

    python benchmarks/distributions.py                   # everything (the lead's run)
    python benchmarks/distributions.py --only n=4,096    # the smallest size only
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from _runner import Case, Column, nbytes, peak_memory, run, timed

SAMPLES = 16
GRIDS = {4096: (16, 16, 16), 262144: (64, 64, 64), 1048576: (64, 128, 128)}
FORMS = {
    "cov LLt": ("scale_tril", False),
    "cov LDLt": ("scale_tril", True),
    "prec LLt": ("precision_tril", False),
    "prec LDLt": ("precision_tril", True),
}
PEER = "torchsparsegradutils 0.2"


def _peer_version() -> str | None:
    """The installed torchsparsegradutils version if it is a 0.2 release, else None."""
    if importlib.util.find_spec("torchsparsegradutils") is None:
        return None
    from importlib.metadata import version

    v = version("torchsparsegradutils")
    return v if v.startswith("0.2") else None


def _problem(spec: dict[str, Any]) -> dict[str, Any]:
    """Pattern and values of the factor, loc, diagonal and the fixed tensors of a case."""
    import torch

    import tsgu.core as tc

    grid = GRIDS[spec["n"]]
    n = spec["n"]
    ldlt = FORMS[spec["form"]][1]
    P = tc.poisson_3d(*grid, stencil=7, dtype=torch.float32, index_dtype=torch.int64)
    crow, col = P.crow_indices(), P.col_indices()
    rows = torch.repeat_interleave(torch.arange(n), crow.diff())
    keep = col < rows if ldlt else col <= rows
    rows, col = rows[keep], col[keep]
    crow = torch.searchsorted(rows, torch.arange(n + 1))
    gen = torch.Generator().manual_seed(0)
    # off-diagonal couplings of either sign, a diagonal around 1: well-conditioned factors
    values = 0.3 * (2 * torch.rand(rows.numel(), generator=gen) - 1)
    values = torch.where(rows == col, 1.0 + 0.5 * torch.rand(rows.numel(), generator=gen), values)
    loc = torch.randn(n, generator=gen)
    diagonal = 0.5 + torch.rand(n, generator=gen) if ldlt else None
    weights = torch.randn(SAMPLES, n, generator=gen)
    return {
        "n": n,
        "crow": crow,
        "col": col,
        "rows": rows,
        "values": values,
        "loc": loc,
        "diagonal": diagonal,
        "weights": weights,
    }


def _leaves(prob: dict[str, Any]) -> list[Any]:
    leaves = [prob["loc"].clone().requires_grad_(True), prob["values"].clone().requires_grad_(True)]
    if prob["diagonal"] is not None:
        leaves.append(prob["diagonal"].clone().requires_grad_(True))
    return leaves


def _builder(spec: dict[str, Any], prob: dict[str, Any]) -> Any:
    """``build(loc, values, diagonal) -> distribution`` for the case's method."""
    import torch

    name, ldlt = FORMS[spec["form"]]
    n = prob["n"]
    method = spec["method"]
    if method == "tsgu":
        import tsgu.core as tc
        from tsgu.distributions import SparseMultivariateNormal

        def build(loc: Any, values: Any, diagonal: Any = None) -> Any:
            L = tc.sparse_csr_tensor(prob["crow"], prob["col"], values, (n, n))
            return SparseMultivariateNormal(loc, diagonal, **{name: L}, validate_args=False)

        return build
    if method == PEER:
        from torchsparsegradutils.distributions import SparseMultivariateNormal as Peer

        def build_peer(loc: Any, values: Any, diagonal: Any = None) -> Any:
            # 0.2's own way to train a factor: a CSR leaf (its sparse_mm / triangular solve
            # return a CSR gradient); the leaf is the values tensor's CSR wrapper
            L = torch.sparse_csr_tensor(prob["crow"], prob["col"], values.detach(), (n, n))
            L.requires_grad_(True)
            build_peer.leaf = L  # type: ignore[attr-defined]
            return Peer(loc, diagonal, **{name: L}, validate_args=False)

        return build_peer

    rows, col = prob["rows"], prob["col"]
    eye = torch.eye(n)

    def build_dense(loc: Any, values: Any, diagonal: Any = None) -> Any:
        L = torch.zeros(n, n).index_put((rows, col), values)
        if ldlt:
            U = L + eye
            M = U @ (diagonal[:, None] * U.T)
        else:
            M = L @ L.T
        MVN = torch.distributions.MultivariateNormal
        if name == "scale_tril" and not ldlt:
            return MVN(loc, scale_tril=L, validate_args=False)
        if name == "scale_tril":
            return MVN(loc, covariance_matrix=M, validate_args=False)
        return MVN(loc, precision_matrix=M, validate_args=False)

    return build_dense


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    prob = _problem(spec)
    build = _builder(spec, prob)
    leaves = _leaves(prob)
    op = spec["op"]
    if op == "log_prob":
        with torch.no_grad():
            data = _builder({**spec, "method": "tsgu"}, prob)(*_leaves(prob)).sample((SAMPLES,))

    def forward() -> Any:
        dist = build(*leaves)
        if op == "rsample":
            return (dist.rsample((SAMPLES,)) * prob["weights"]).sum()
        return dist.log_prob(data).sum()

    def clear() -> None:
        for leaf in leaves:
            leaf.grad = None

    def step() -> None:
        forward().backward()
        clear()

    fwd = timed(forward, repeat=3, min_seconds=0.5)
    both = timed(step, repeat=3, min_seconds=0.5)
    peak = peak_memory(step)
    factor_bytes = nbytes(prob["crow"], prob["col"], prob["values"])
    result = {
        "fwd_s": fwd,
        "fwdbwd_s": both,
        "peak_B": peak,
        "peak_per_nnz": peak / prob["values"].numel(),
        "factor_B": float(factor_bytes),
    }
    # the factor's values must have received a gradient
    forward().backward()
    grad = leaves[1].grad
    if grad is None and spec["method"] == PEER:
        grad = getattr(build, "leaf").grad  # noqa: B009
    result["grad_ok"] = bool(grad is not None and torch.isfinite(grad.to_dense()).all())
    return result


def cases() -> tuple[list[Case], dict[str, str]]:
    peer = _peer_version()
    if peer is None:
        print(f"{PEER} is not installed (or is not a 0.2 release): its rows are skipped")
    out: list[Case] = []
    reference: dict[str, str] = {}
    for n in GRIDS:
        for form in FORMS:
            for op in ("rsample", "log_prob"):
                group = f"{form} n={n:,} {op}"
                base = {"n": n, "form": form, "op": op}
                out.append(Case(group, "tsgu", {**base, "method": "tsgu"}))
                if op == "rsample" and peer is not None:
                    out.append(Case(group, PEER, {**base, "method": PEER}, note=f"v{peer}"))
                    reference[group] = PEER
                else:
                    reference[group] = "tsgu"
                # dense: a few n x n float32 matrices (factor, Σ or Q, its Cholesky, grads)
                out.append(
                    Case(group, "dense torch MVN", {**base, "method": "dense"}, 10.0 * n * n * 4)
                )
    return out, reference


if __name__ == "__main__":
    selected, reference = cases()
    run(
        "distributions",
        selected,
        measure,
        columns=[
            Column("fwd_s", "forward", "s"),
            Column("fwdbwd_s", "fwd+bwd", "s"),
            Column("peak_B", "peak mem", "B"),
            Column("peak_per_nnz", "peak B/nnz", ""),
        ],
        reference=reference,
        ratio_of=[Column("fwdbwd_s", "fwd+bwd", "s"), Column("peak_B", "peak mem", "B")],
        title=f"SparseMultivariateNormal, float32, {SAMPLES} samples; a step builds the "
        "distribution, then rsample (weighted sum) or log_prob (sum) and backward to loc, "
        "the factor's values and diagonal",
        argv=sys.argv[1:],
    )
