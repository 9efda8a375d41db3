"""Which SuiteSparse binding tsgu-factor builds on: the candidates that install from wheels,
measured side by side with SciPy's SuperLU on the same matrices in one run.

For each binding: the symbolic analysis (ordering + symbolic factorization), the numeric
factorization, a refactorization with new values on the same pattern (NaN where the
binding cannot keep the analysis: its "refactor" is a whole new factorization, reported as
``first_s``), and one solve. Candidates (each where installed; tsgu-factor needs only
kvxopt):

- ``kvxopt cholmod`` / ``kvxopt umfpack`` / ``kvxopt klu``: CHOLMOD, UMFPACK, KLU with
  separate symbolic and numeric steps, factors readable (``getfactor``, ``get_numeric``).
- ``sksparse-minimal``, ``cholespy``: CHOLMOD in one call (no refactor, no factor access).
- ``homapy cholmod``: CHOLMOD with ``refactorize`` (no factor access).
- ``pyklu``: KLU in one call (no refactor, no factor access).
- ``scipy splu``: SuperLU (the baseline), ``MMD_AT_PLUS_A`` on symmetric patterns, COLAMD else.

scikit-sparse and scikit-umfpack publish no wheels (they build against a system SuiteSparse).

    python benchmarks/factor_backends.py
    python benchmarks/factor_backends.py --only "3-D"
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import numpy as np
from _factor_matrices import build, new_values
from _runner import Case, Column, run

REFERENCE = "scipy splu"


def _seconds(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _kvx(A: Any) -> Any:
    from kvxopt import matrix, spmatrix

    coo = A.tocoo()
    return spmatrix(
        matrix(coo.data), matrix(coo.row.astype(np.int64)), matrix(coo.col.astype(np.int64)),
        A.shape,
    )  # fmt: skip


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    A = build(spec)
    A2 = new_values(A, 1).tocsc()
    A = A.tocsc()
    b = np.ones(A.shape[0])
    method = spec["method"]
    nan = float("nan")
    out: dict[str, Any] = {"n": A.shape[0], "nnz": A.nnz}
    if method == "kvxopt cholmod":
        from kvxopt import cholmod, matrix

        cholmod.options["supernodal"] = 2
        S, S2 = _kvx(A), _kvx(A2)
        t_sym, F = _seconds(lambda: cholmod.symbolic(S, uplo="L"))
        t_num, _ = _seconds(lambda: cholmod.numeric(S, F))
        t_re, _ = _seconds(lambda: cholmod.numeric(S2, F))
        t_sol, _ = _seconds(lambda: cholmod.solve(F, matrix(b)))
        out.update(analysis_s=t_sym, numeric_s=t_num, refactor_s=t_re, solve_s=t_sol)
    elif method in ("kvxopt umfpack", "kvxopt klu"):
        from kvxopt import klu, matrix, umfpack

        mod = umfpack if method.endswith("umfpack") else klu
        S, S2 = _kvx(A), _kvx(A2)
        t_sym, Fs = _seconds(lambda: mod.symbolic(S))
        t_num, _ = _seconds(lambda: mod.numeric(S, Fs))
        t_re, Fn2 = _seconds(lambda: mod.numeric(S2, Fs))
        if mod is umfpack:
            t_sol, _ = _seconds(lambda: umfpack.solve(S2, Fn2, matrix(b)))
        else:
            t_sol, _ = _seconds(lambda: klu.solve(S2, Fs, Fn2, matrix(b)))
        out.update(analysis_s=t_sym, numeric_s=t_num, refactor_s=t_re, solve_s=t_sol)
    elif method == "homapy cholmod":
        import homapy

        solver = homapy.Solver(backend="cholmod", dtype="float64")
        Acsr, A2csr = A.tocsr(), A2.tocsr()
        t_sym, _ = _seconds(lambda: (solver.set_matrix(Acsr), solver.analyze_pattern()))
        t_num, _ = _seconds(solver.factorize)
        t_re, _ = _seconds(lambda: solver.refactorize(A2csr))
        t_sol, _ = _seconds(lambda: solver.solve(b))
        out.update(analysis_s=t_sym, numeric_s=t_num, refactor_s=t_re, solve_s=t_sol)
    else:
        if method == "sksparse-minimal":
            from sksparse_minimal import SparseCholesky

            def factor(M: Any) -> Any:
                return SparseCholesky(M)

            def solve(F: Any) -> Any:
                return F.solve_A(b)

        elif method == "cholespy":
            from cholespy import CholeskySolverD, MatrixType

            def factor(M: Any) -> Any:
                C = M.tocoo()
                return CholeskySolverD(M.shape[0], C.row, C.col, C.data, MatrixType.COO)

            def solve(F: Any) -> Any:
                x = np.zeros_like(b)
                F.solve(b, x)
                return x

        elif method == "pyklu":
            from PyKLU import Klu

            def factor(M: Any) -> Any:
                return Klu(M)

            def solve(F: Any) -> Any:
                return F.solve(b)

        else:  # scipy splu
            import scipy.sparse.linalg as spla

            permc = "MMD_AT_PLUS_A" if spec["symmetric_pattern"] else "COLAMD"

            def factor(M: Any) -> Any:
                return spla.splu(M, permc_spec=permc)

            def solve(F: Any) -> Any:
                return F.solve(b)

        t_first, F = _seconds(lambda: factor(A))
        t_again, F2 = _seconds(lambda: factor(A2))
        t_sol, _ = _seconds(lambda: solve(F2))
        out.update(first_s=t_first, again_s=t_again, solve_s=t_sol, refactor_s=nan)
        return out
    out["first_s"] = out["analysis_s"] + out["numeric_s"]
    out["again_s"] = out["refactor_s"]
    return out


_INSTALLED = {
    "kvxopt cholmod": "kvxopt", "kvxopt umfpack": "kvxopt", "kvxopt klu": "kvxopt",
    "sksparse-minimal": "sksparse_minimal", "cholespy": "cholespy", "homapy cholmod": "homapy",
    "pyklu": "PyKLU", REFERENCE: "scipy",
}  # fmt: skip
SPD = ["kvxopt cholmod", "sksparse-minimal", "cholespy", "homapy cholmod", REFERENCE]
GENERAL = ["kvxopt umfpack", "kvxopt klu", "pyklu", REFERENCE]
PROBLEMS = [
    ("3-D 7-point 40³ + diag (SPD)", "laplacian_3d", 40, True, SPD),
    ("2-D 5-point 512² + diag (SPD)", "laplacian_2d", 512, True, SPD),
    ("2-D convection-diffusion 512²", "convection_diffusion_2d", 512, True, GENERAL),
    ("circuit-like 200,000", "circuit_like", 200_000, False, GENERAL),
]


def cases() -> list[Case]:
    out = []
    for group, matrix, size, symmetric_pattern, methods in PROBLEMS:
        for method in methods:
            if importlib.util.find_spec(_INSTALLED[method]) is None:
                continue
            spec = {"matrix": matrix, "size": size, "method": method,
                    "symmetric_pattern": symmetric_pattern}  # fmt: skip
            out.append(Case(group, method, spec))
    return out


if __name__ == "__main__":
    run(
        "factor_backends",
        cases(),
        measure,
        columns=[
            Column("analysis_s", "analysis", "s"),
            Column("numeric_s", "numeric", "s"),
            Column("first_s", "first factorization", "s"),
            Column("again_s", "new values", "s"),
            Column("solve_s", "solve", "s"),
        ],
        reference={group: REFERENCE for group, *_ in PROBLEMS},
        ratio_of=[Column("again_s", "new values: speed-up over splu", "s")],
        title="SuiteSparse bindings from wheels vs SciPy splu: analysis, factorization, "
        "refactorization with new values",
    )
