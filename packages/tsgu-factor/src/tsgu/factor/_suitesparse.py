"""SuiteSparse on the CPU through kvxopt: CHOLMOD (LLᵀ, LDLᵀ), UMFPACK and KLU (LU).

kvxopt installs from wheels on Linux, macOS and Windows with SuiteSparse inside, and it is
the one binding on PyPI that keeps the symbolic analysis apart from the numeric
factorization for all three solvers and hands out the factors (CHOLMOD's L, UMFPACK's L and
U), which selected inversion needs. Its matrices hold float64 values and 64-bit indices;
each backend here holds one kvxopt matrix whose values are overwritten at each refactor.

Every backend is made from a canonical CSR pattern ``(crow, col)`` of A. CHOLMOD reads it as
the CSC pattern of the same (symmetric) matrix; UMFPACK and KLU read it as Aᵀ's CSC, and
solve ``A x = b`` as the transposed system of Aᵀ, so no reordering is ever needed.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import numpy as np

# kvxopt's stubs take no numpy arrays (its matrix() does, through the buffer protocol)
try:
    _kvxopt: Any = importlib.import_module("kvxopt")
    cholmod: Any = importlib.import_module("kvxopt.cholmod")
    klu: Any = importlib.import_module("kvxopt.klu")
    umfpack: Any = importlib.import_module("kvxopt.umfpack")
except ImportError as error:  # pragma: no cover - kvxopt is a declared dependency
    raise ImportError(
        "tsgu.factor needs kvxopt (SuiteSparse for the CPU): pip install kvxopt"
    ) from error
matrix, spmatrix = _kvxopt.matrix, _kvxopt.spmatrix

__all__ = ["LU", "Cholmod", "NotPositiveDefinite", "Singular"]


class NotPositiveDefinite(ArithmeticError):
    """The Cholesky factorization met a nonpositive pivot."""

    def __init__(self, row: int | None, order: int | None, pivot: float | None) -> None:
        super().__init__(row, order, pivot)
        self.row, self.order, self.pivot = row, order, pivot


class Singular(ArithmeticError):
    """The factorization met an exactly zero pivot."""


def _pattern_matrix(crow: np.ndarray, col: np.ndarray, n: int) -> Any:
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(crow))
    # kvxopt's CCS: column j holds the entries of CSR row j, at rows col
    return spmatrix(matrix(np.zeros(col.size)), matrix(col.astype(np.int64)), matrix(rows), (n, n))


def _dense(B: np.ndarray) -> Any:
    return matrix(np.asfortranarray(B, dtype=np.float64))


def _probe(F: Any, n: int) -> None:
    """Raise ArithmeticError when CHOLMOD's factor stopped short (its ``minor`` < n):
    kvxopt's numeric() does not report it, but every solve checks it first."""
    cholmod.solve(F, matrix(0.0, (n, 0)))


class Cholmod:
    """CHOLMOD's supernodal LLᵀ (``ldl=False``) or simplicial LDLᵀ (``ldl=True``) of a
    symmetric matrix, ordered by AMD; the symbolic analysis is made once, in ``__init__``."""

    def __init__(self, crow: np.ndarray, col: np.ndarray, n: int, ldl: bool) -> None:
        self.n, self.ldl = n, ldl
        self._matrix = _pattern_matrix(crow, col, n)
        self._options = {"supernodal": 0 if ldl else 2}
        self.analyses = 1
        self._set_options()
        self._factor = cholmod.symbolic(self._matrix, uplo="L")
        self._numeric = False
        self.perm: np.ndarray | None = None

    def _set_options(self) -> None:
        cholmod.options.clear()
        cholmod.options.update(self._options)

    def factorize(self, values: np.ndarray) -> None:
        """Numeric factorization of the matrix with ``values`` (canonical CSR order)."""
        self._matrix.V = matrix(values)
        self._set_options()
        cholmod.numeric(self._matrix, self._factor)
        try:
            _probe(self._factor, self.n)
        except ArithmeticError:
            self._numeric = False
            if self.ldl:
                raise Singular() from None
            raise self._locate_failure(values) from None
        self._numeric = True
        if self.perm is None:
            self.perm = self._permutation()

    def _permutation(self) -> np.ndarray:
        """perm with (P A Pᵀ)[i, j] = A[perm[i], perm[j]] (one solve with P)."""
        probe = matrix(np.arange(self.n, dtype=np.float64))
        cholmod.solve(self._factor, probe, sys=7)
        return np.rint(np.array(probe).ravel()).astype(np.int64)

    def _locate_failure(self, values: np.ndarray) -> NotPositiveDefinite:
        """Name the first nonpositive pivot, from an LDLᵀ of the same matrix (error path only)."""
        probe = Cholmod.__new__(Cholmod)
        probe.n, probe.ldl = self.n, True
        probe._matrix, probe._options, probe.perm = self._matrix, {"supernodal": 0}, None
        probe._set_options()
        probe._factor = cholmod.symbolic(self._matrix, uplo="L")
        try:
            probe.factorize(values)
        except Singular:
            return NotPositiveDefinite(None, None, 0.0)
        finally:
            self._set_options()
        d = probe.diagonal()
        bad = np.flatnonzero(~(d > 0))
        k = int(bad[0]) if bad.size else 0
        assert probe.perm is not None
        return NotPositiveDefinite(int(probe.perm[k]), k, float(d[k]))

    def ensure_numeric(self, values: np.ndarray) -> None:
        if not self._numeric:
            self.factorize(values)

    def solve(self, B: np.ndarray, system: int = 0) -> np.ndarray:
        """CHOLMOD's solve of ``B`` (n, k): system 0 is A, 4 is L, 5 is Lᵀ, 7 is P, 8 is Pᵀ."""
        self._set_options()
        M = _dense(B)
        cholmod.solve(self._factor, M, sys=system)
        return np.array(M).reshape(B.shape)

    def diagonal(self) -> np.ndarray:
        """L's diagonal (LLᵀ) or D (LDLᵀ), in the factor's order."""
        if self.ldl:
            ones = np.ones((self.n, 1))
            return 1.0 / self.solve(ones, system=6)[:, 0]
        return np.array(cholmod.diag(self._factor)).ravel()

    def logdet(self) -> tuple[float, float]:
        """(sign, log|det A|)."""
        d = self.diagonal()
        if self.ldl:
            sign = -1.0 if int(np.count_nonzero(d < 0)) % 2 else 1.0
            return sign, float(np.log(np.abs(d)).sum())
        return 1.0, 2.0 * float(np.log(d).sum())

    def factor(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """L as CSC ``(colptr, rowidx, values)`` (for LDLᵀ, D on the diagonal) and its
        permutation, for the matrix with ``values``.

        kvxopt hands L over only by converting CHOLMOD's factor, which leaves it symbolic
        (and a supernodal one simplicial). The next solve then factorizes again with the same
        analysis; a supernodal factor first gets its symbolic factorization back, made with
        the kept ordering (no new AMD ordering), counted in :attr:`analyses`.
        """
        self.ensure_numeric(values)
        perm = self.perm
        assert perm is not None
        try:
            L = cholmod.getfactor(self._factor)
        finally:
            self._numeric = False
        if not self.ldl:
            cholmod.options.update({"nmethods": 1})  # the given ordering, no AMD
            self._factor = cholmod.symbolic(self._matrix, p=matrix(perm), uplo="L")
            self._set_options()
            self.analyses += 1
            self.perm = None  # read again at the next factorization
        colptr, rowidx, lvalues = L.CCS
        return (
            np.array(colptr, dtype=np.int64).ravel(),
            np.array(rowidx, dtype=np.int64).ravel(),
            np.array(lvalues, dtype=np.float64).ravel(),
            perm,
        )


def _permutation_sign(p: np.ndarray) -> float:
    """Sign of a permutation, (-1)^(n - cycles), with cycles counted by pointer jumping."""
    n = p.size
    label = np.arange(n)
    step = p.copy()
    for _ in range(max(1, math.ceil(math.log2(max(n, 2)))) + 1):
        label = np.minimum(label, label[step])
        step = step[step]
    cycles = int(np.count_nonzero(label == np.arange(n)))
    return -1.0 if (n - cycles) % 2 else 1.0


class LU:
    """UMFPACK's or KLU's LU of Aᵀ (whose CSC is A's CSR); symbolic analysis in ``__init__``."""

    def __init__(self, crow: np.ndarray, col: np.ndarray, n: int, method: str) -> None:
        self.n, self.method = n, method
        self._module = umfpack if method == "umfpack" else klu
        self._matrix = _pattern_matrix(crow, col, n)
        self._symbolic = self._module.symbolic(self._matrix)
        self._numeric: Any = None

    def factorize(self, values: np.ndarray) -> None:
        self._matrix.V = matrix(values)
        try:
            numeric = self._module.numeric(self._matrix, self._symbolic)
        except ArithmeticError:
            raise Singular() from None
        self._numeric = numeric  # only a successful factorization replaces the last one

    def ensure_numeric(self, values: np.ndarray) -> None:
        if self._numeric is None:
            self.factorize(values)

    def solve(self, B: np.ndarray, transpose: bool) -> np.ndarray:
        """X with A X = B (Aᵀ X = B when ``transpose``); the factors are of Aᵀ."""
        M = _dense(B)
        trans = "N" if transpose else "T"
        if self.method == "umfpack":
            umfpack.solve(self._matrix, self._numeric, M, trans=trans)
        else:
            klu.solve(self._matrix, self._symbolic, self._numeric, M, trans=trans)
        return np.array(M).reshape(B.shape)

    def logdet(self) -> tuple[float, float]:
        """(sign, log|det A|) from UMFPACK's factors P R⁻¹ Aᵀ Q = L U."""
        if self.method == "umfpack":
            _, U, P, Q, R = umfpack.get_numeric(self._matrix, self._numeric)
        else:
            _, U, P, Q, R, _, _ = klu.get_numeric(self._matrix, self._symbolic, self._numeric)
        u = _diagonal_of(U, self.n)
        r = _diagonal_of(R, self.n)
        sign = float(np.prod(np.sign(u))) * float(np.prod(np.sign(r)))
        sign *= _permutation_sign(_perm_of(P, self.n)) * _permutation_sign(_perm_of(Q, self.n))
        logabs = float(np.log(np.abs(u)).sum() - np.log(np.abs(r)).sum())
        return sign, logabs


def _diagonal_of(M: Any, n: int) -> np.ndarray:
    colptr, rowidx, values = (np.array(x).ravel() for x in M.CCS)
    cols = np.repeat(np.arange(n), np.diff(colptr))
    d = np.zeros(n)
    on = rowidx == cols
    d[cols[on]] = values[on]
    return d


def _perm_of(M: Any, n: int) -> np.ndarray:
    colptr, rowidx, _ = (np.array(x).ravel() for x in M.CCS)
    cols = np.repeat(np.arange(n), np.diff(colptr))
    p = np.empty(n, dtype=np.int64)
    p[rowidx.astype(np.int64)] = cols
    return p
