"""``factorize``: a sparse LU, Cholesky or LDLᵀ factorization you keep, refactor and
differentiate through."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tsgu.core.extend import LinearSolver, Pattern, from_values, linear_solve, values_of

from . import _cudss
from . import _suitesparse as ss
from ._selinv import SupernodalPattern, selected_inverse
from ._validate import check_finite, check_kind, check_matrix, check_rhs

__all__ = ["Factorization", "factorize"]

_METHODS = {"lu": ("umfpack", "klu"), "cholesky": ("cholmod",), "ldl": ("cholmod",)}
# columns of the identity per solve when a gradient is computed column block by column
# block (LU logdet gradient, second derivatives): n * _CHUNK float64 values at a time
_CHUNK_ELEMENTS = 1 << 22


class _Structure:
    """Everything fixed by A's pattern: the canonical CSR form, the transpose map of a
    symmetric pattern, the backend's symbolic analysis, and (made on first use) the maps
    selected inversion needs."""

    def __init__(self, fn: str, A: torch.Tensor, kind: str, method: str) -> None:
        self.kind, self.method, self.n = kind, method, A.shape[0]
        self.pattern = Pattern.of(A)
        crow, col, slot, nnz = self.pattern.canonical_form
        self.slot, self.nnz = slot, nnz
        self.crow = crow.to(torch.int64)
        self.col = col.to(torch.int64)
        n = self.n
        device = self.crow.device
        self.rows = torch.repeat_interleave(torch.arange(n, device=device), self.crow.diff())
        self.symmetric = kind != "lu"
        if self.symmetric:
            key = self.rows * n + self.col
            tkey = self.col * n + self.rows
            found = torch.searchsorted(key, tkey).clamp(max=max(nnz - 1, 0))
            if nnz and not torch.equal(key[found], tkey):
                missing = int((key[found] != tkey).sum())
                raise ValueError(
                    f"{fn}: A must store a symmetric pattern for kind={kind!r} (both "
                    f"triangles), got {missing} entries without their mirror; store A + Aᵀ's "
                    "pattern (explicit zeros are fine)"
                )
            self.mirror = found
        # the canonical pattern as a tensor, so the symmetric part can be rebuilt from values
        template = torch.sparse_csr_tensor(
            self.crow, self.col, torch.zeros(nnz, device=device), (n, n)
        )
        self.canonical_pattern = Pattern.of(template)
        self.backend: ss.Cholmod | ss.LU | _cudss.CuDSS
        if device.type == "cuda":
            self.backend = _cudss.CuDSS(self.crow, self.col, n, kind)
            return
        crow_np, col_np = self.crow.numpy(), self.col.numpy()
        if kind == "lu":
            self.backend = ss.LU(crow_np, col_np, n, method)
        else:
            self.backend = ss.Cholmod(crow_np, col_np, n, ldl=kind == "ldl")
        self._selinv: tuple[SupernodalPattern, torch.Tensor] | None = None
        self._selinv_key: tuple[np.ndarray, ...] = ()

    def canonical(self, values: torch.Tensor) -> torch.Tensor:
        """A's values in canonical CSR order (duplicates summed); the symmetric part for the
        symmetric kinds. Differentiable."""
        if self.slot is not None:
            values = values.new_zeros(self.nnz).index_add(0, self.slot, values)
        if self.symmetric:
            values = (values + values[self.mirror]) / 2
        return values

    def selinv_maps(
        self, colptr: np.ndarray, rowidx: np.ndarray, perm: np.ndarray
    ) -> tuple[SupernodalPattern, torch.Tensor]:
        """L's supernodal pattern, and where each canonical entry of A sits in L (made once;
        made again only if CHOLMOD ever returned another pattern or ordering)."""
        key = (colptr, rowidx, perm)
        if self._selinv is not None and not all(
            np.array_equal(a, b) for a, b in zip(key, self._selinv_key, strict=True)
        ):
            self._selinv = None
        self._selinv_key = key
        if self._selinv is None:
            cp, ri = torch.from_numpy(colptr), torch.from_numpy(rowidx)
            supernodal = SupernodalPattern.of(cp, ri)
            inverse = torch.empty(self.n, dtype=torch.int64)
            inverse[torch.from_numpy(perm)] = torch.arange(self.n)
            i, j = inverse[self.rows], inverse[self.col]
            lo, hi = torch.minimum(i, j), torch.maximum(i, j)
            lcols = torch.repeat_interleave(torch.arange(self.n), cp.diff())
            keys = lcols * self.n + ri
            want = lo * self.n + hi
            position = torch.searchsorted(keys, want)
            if not torch.equal(keys[position.clamp(max=keys.numel() - 1)], want):
                raise RuntimeError("selected inversion: A's pattern is not inside L + Lᵀ")
            self._selinv = (supernodal, position)
        return self._selinv


class _FactorSolver(LinearSolver):
    """The forward and backward solves of one ``Factorization.solve``: the factors made for
    the values it was called with, never a new factorization."""

    def __init__(self, factorization: Factorization) -> None:
        self.factorization = factorization
        self.generation = factorization._generation

    def solve(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        F = self.factorization
        if F._generation != self.generation:
            raise RuntimeError(
                "Factorization.solve: the factorization was refactored after this solve; "
                "its backward needs the factors it solved with (backward before refactor)"
            )
        return F._solve_numpy(B, transpose)


class _LogAbsDet(torch.autograd.Function):
    @staticmethod
    def forward(values: torch.Tensor, factorization: Factorization) -> torch.Tensor:
        _, logabs = factorization._slogdet_numbers()
        return values.new_tensor(logabs)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        values, ctx.factorization = inputs
        ctx.save_for_backward(values)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (values,) = ctx.saved_tensors
        inverse_t: torch.Tensor = _InverseAtPattern.apply(values, ctx.factorization)
        return grad * inverse_t, None


class _InverseAtPattern(torch.autograd.Function):
    """(A⁻ᵀ)_ij at A's canonical pattern: selected inversion for the symmetric kinds."""

    @staticmethod
    def forward(values: torch.Tensor, factorization: Factorization) -> torch.Tensor:
        return factorization._inverse_transpose_at_pattern().to(values.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.factorization = inputs[1]

    @staticmethod
    def backward(ctx: Any, V: torch.Tensor) -> tuple[torch.Tensor, None]:
        # d(A⁻ᵀ) = -A⁻ᵀ dAᵀ A⁻ᵀ, so the vjp of V at the pattern is -(A⁻ᵀ Vᵀ A⁻ᵀ) there.
        F: Factorization = ctx.factorization
        return -F._sandwich_at_pattern(V.detach()).to(V.dtype), None


class Factorization:
    """A sparse factorization of a square matrix A, kept for solves, refactors and logdet.

    Made by :func:`factorize`; see there. Attributes: ``kind``, ``method``, ``shape``,
    ``dtype``, ``symbolic_analyses`` (how many symbolic analyses this object has made: one,
    whatever the number of refactors).
    """

    analyses_made = 0  # over every Factorization, for tests of the reuse

    def __init__(self, A: torch.Tensor, kind: str, method: str, fn: str) -> None:
        self.kind, self.method = kind, method
        self.shape = tuple(A.shape)
        self.dtype, self.device = A.dtype, A.device
        self._structure = _Structure(fn, A, kind, method)
        Factorization.analyses_made += 1
        self._generation = 0
        self._A = A
        self._values = torch.empty(0)
        self._numpy_values = np.empty(0)
        self._slogdet: tuple[float, float] | None = None
        self._set(A, fn)

    # -------------------------------------------------------------- numeric factorization
    @property
    def symbolic_analyses(self) -> int:
        """How many symbolic analyses this factorization has made: one, whatever the number
        of refactors. For ``kind="cholesky"`` each logdet gradient adds one, made with the
        kept ordering (kvxopt hands L over only by converting CHOLMOD's factor)."""
        return (
            self._structure.backend.analyses
            if isinstance(self._structure.backend, ss.Cholmod)
            else 1
        )

    def _set(self, A: torch.Tensor, fn: str) -> None:
        s = self._structure
        values = s.canonical(values_of(A, s.pattern))
        check_finite(fn, values.detach())
        if isinstance(s.backend, _cudss.CuDSS):
            s.backend.factorize(values)
            self._A, self._values, self._generation = A, values, self._generation + 1
            return
        numpy_values = values.detach().to(torch.float64).numpy().copy()
        try:
            s.backend.factorize(numpy_values)
        except ss.NotPositiveDefinite as failure:
            where = (
                f"the pivot of row {failure.row} (number {failure.order} in the fill-reducing "
                f"order) is {failure.pivot:.6g}"
                if failure.row is not None
                else "a pivot is exactly zero"
            )
            raise ValueError(
                f"{fn}: A must be positive definite for kind='cholesky', got a matrix that is "
                f"not: {where}; use kind='ldl' for a symmetric indefinite A"
            ) from None
        except ss.Singular:
            raise ValueError(
                f"{fn}: A must be nonsingular, got an exactly singular matrix (a zero pivot); "
                "check A's rank or regularise it (A + εI)"
            ) from None
        self._A, self._values, self._numpy_values = A, values, numpy_values
        self._generation += 1
        self._slogdet = None

    def refactor(
        self, A: torch.Tensor | None = None, *, values: torch.Tensor | None = None
    ) -> Factorization:
        """Factorize new values on the same pattern, reusing the ordering and the symbolic
        analysis. Give the new matrix ``A`` (same layout and indices) or its ``values``
        (in A's stored order). On failure the factorization keeps its previous values and
        stays usable. Returns ``self``.

        Examples
        --------
        >>> import torch
        >>> from tsgu.factor import factorize
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64).to_sparse_csr()
        >>> F = factorize(A, kind="cholesky")
        >>> _ = F.refactor(values=2 * A.values())
        >>> F.solve(torch.tensor([1.0, 2.0], dtype=torch.float64))
        tensor([0.0455, 0.3182], dtype=torch.float64)
        >>> F.symbolic_analyses
        1
        """
        fn = "Factorization.refactor"
        s = self._structure
        if (A is None) == (values is None):
            raise TypeError(
                f"{fn}: give exactly one of A and values, got "
                f"{'both' if A is not None else 'neither'}; pass the new matrix or its values"
            )
        if values is not None:
            if not isinstance(values, torch.Tensor) or values.shape != (s.pattern.nnz,):
                got = (
                    tuple(values.shape)
                    if isinstance(values, torch.Tensor)
                    else type(values).__name__
                )
                raise ValueError(
                    f"{fn}: values must be a tensor of shape ({s.pattern.nnz},) (A's stored "
                    f"values), got {got}; pass the new matrix as A instead"
                )
            if values.dtype != self.dtype:
                raise ValueError(
                    f"{fn}: values must have dtype {self.dtype}, got {values.dtype}; convert "
                    f"with values.to({self.dtype})"
                )
            A = from_values(s.pattern, values)
        assert A is not None
        A = check_matrix(fn, A)
        if A.dtype != self.dtype:
            raise ValueError(
                f"{fn}: A must have the factorized dtype {self.dtype}, got {A.dtype}; convert "
                f"with A.to({self.dtype})"
            )
        if not s.pattern.same_structure(A):
            raise ValueError(
                f"{fn}: A must have the factorized pattern (layout {s.pattern.layout}, shape "
                f"{s.pattern.shape}, the same indices), got a different one; call "
                "factorize(A) for a new pattern"
            )
        self._set(A, fn)
        return self

    # ------------------------------------------------------------------------- solves
    def _solve_numpy(self, B: torch.Tensor, transpose: bool) -> torch.Tensor:
        backend = self._structure.backend
        if isinstance(backend, _cudss.CuDSS):
            return backend.solve(B, transpose)
        backend.ensure_numeric(self._numpy_values)
        block = B.detach().to(torch.float64).cpu().numpy()
        # the symmetric kinds: Aᵀ = A
        X = backend.solve(block, transpose) if isinstance(backend, ss.LU) else backend.solve(block)
        return torch.from_numpy(X).to(B.dtype)

    def _matrix(self) -> torch.Tensor:
        """The matrix the factors are of, differentiable in A's values: A itself for LU,
        its symmetric part (in canonical order) for the symmetric kinds."""
        s = self._structure
        if s.kind == "lu":
            return self._A
        return from_values(s.canonical_pattern, self._values)

    def solve(self, B: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        r"""X with ``A X = B`` (``Aᵀ X = B`` with ``transpose``), differentiable in A and B.

        Parameters
        ----------
        B : torch.Tensor
            Dense ``(n,)`` or ``(n, k)``, A's dtype and device.
        transpose : bool
            Solve with Aᵀ.

        Returns
        -------
        torch.Tensor
            X, shaped like B.

        Notes
        -----
        Through tsgu's one differentiable solve (:func:`tsgu.core.extend.linear_solve`):
        :math:`\bar B = A^{-\top}\bar X` is one transposed solve with the kept factors, and
        :math:`\bar A_{ij} = -\langle \bar B_{i,:}, X_{j,:}\rangle` at A's pattern. The
        symmetric kinds factor and differentiate the symmetric part :math:`(A + A^\top)/2`.

        Examples
        --------
        >>> import torch
        >>> from tsgu.factor import factorize
        >>> A = torch.tensor([[4.0, 1.0], [2.0, 3.0]], dtype=torch.float64).to_sparse_csr()
        >>> F = factorize(A, kind="lu")
        >>> F.solve(torch.tensor([1.0, 2.0], dtype=torch.float64))
        tensor([0.1000, 0.6000], dtype=torch.float64)
        >>> F.solve(torch.tensor([1.0, 2.0], dtype=torch.float64), transpose=True)
        tensor([-0.1000,  0.7000], dtype=torch.float64)
        """
        fn = "Factorization.solve"
        B = check_rhs(fn, B, self.shape[0], self.dtype, self.device)
        return linear_solve(self._matrix(), B, _FactorSolver(self), transpose=transpose, fn=fn)

    def _require_cholesky(self, fn: str) -> ss.Cholmod:
        backend = self._structure.backend
        if isinstance(backend, _cudss.CuDSS):
            raise ValueError(
                f"{fn}: A must be on the CPU for solves with the factor, got device "
                f"{self.device}; factorize A.cpu() (cuDSS hands out no factors here)"
            )
        if self.kind != "cholesky" or not isinstance(backend, ss.Cholmod):
            raise ValueError(
                f"{fn}: needs kind='cholesky' (a factor L with Q = Pᵀ L Lᵀ P), got kind="
                f"{self.kind!r}; factorize with kind='cholesky'"
            )
        return backend

    def solve_factor(self, B: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        r"""Solve with the Cholesky factor alone: ``L⁻¹ P B``, or ``Pᵀ L⁻ᵀ B`` with ``transpose``.

        With A = Pᵀ L Lᵀ P, ``Pᵀ L⁻ᵀ z`` for z ~ N(0, I) is a sample of N(0, A⁻¹), and
        ``L⁻¹ P x`` whitens x ~ N(0, A). Differentiable in B only: the derivative of a sparse
        Cholesky factor with respect to A is not computed.

        Examples
        --------
        >>> import torch
        >>> from tsgu.factor import factorize
        >>> A = torch.tensor([[4.0, 0.0], [0.0, 9.0]], dtype=torch.float64).to_sparse_csr()
        >>> factorize(A, kind="cholesky").solve_factor(torch.ones(2, dtype=torch.float64))
        tensor([0.5000, 0.3333], dtype=torch.float64)
        """
        fn = "Factorization.solve_factor"
        backend = self._require_cholesky(fn)
        B = check_rhs(fn, B, self.shape[0], self.dtype, self.device)
        backend.ensure_numeric(self._numpy_values)
        out: torch.Tensor = _FactorSolve.apply(B, self, transpose)
        return out

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """``Pᵀ L⁻ᵀ z``: for z ~ N(0, I), a sample of N(0, A⁻¹) (A a precision matrix).

        Examples
        --------
        >>> import torch
        >>> from tsgu.factor import factorize
        >>> Q = torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64).to_sparse_csr()
        >>> x = factorize(Q, kind="cholesky").sample(torch.randn(2, 100000, dtype=torch.float64))
        >>> torch.allclose(torch.cov(x), torch.linalg.inv(Q.to_dense()), atol=0.02)
        True
        """
        return self.solve_factor(z, transpose=True)

    # ------------------------------------------------------------------------ logdet
    def _slogdet_numbers(self) -> tuple[float, float]:
        if self._slogdet is None:
            backend = self._structure.backend
            if isinstance(backend, _cudss.CuDSS):
                raise ValueError(
                    "Factorization.logdet: A must be on the CPU for logdet, got device "
                    f"{self.device}; factorize A.cpu() (cuDSS hands out no factors here)"
                )
            backend.ensure_numeric(self._numpy_values)
            self._slogdet = backend.logdet()
        return self._slogdet

    def logdet(self) -> torch.Tensor:
        r"""log|det A|, differentiable in A's values.

        Returns
        -------
        torch.Tensor
            A 0-dim tensor of A's dtype. Its sign is :meth:`slogdet`'s.

        Notes
        -----
        :math:`\partial \log|\det A| / \partial A_{ij} = (A^{-\top})_{ij}` at A's pattern.
        For the symmetric kinds it is computed by selected inversion: the Takahashi
        recurrences on L's supernodes, a batch of dense blocks per depth of the elimination
        tree, in the time and memory of the factorization; never a dense inverse, never n
        solves. For ``kind="lu"`` the gradient takes solves with identity columns (in
        memory-bounded blocks): O(n) solves. Second derivatives (``create_graph``) take
        O(n) solves for every kind.

        Examples
        --------
        >>> import torch
        >>> import tsgu.core as tc
        >>> from tsgu.factor import factorize
        >>> Q = torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64).to_sparse_csr()
        >>> values = Q.values().clone().requires_grad_()
        >>> A = tc.sparse_csr_tensor(Q.crow_indices(), Q.col_indices(), values, Q.shape)
        >>> logdet = factorize(A, kind="cholesky").logdet()
        >>> logdet
        tensor(1.0986, dtype=torch.float64, grad_fn=...)
        >>> logdet.backward()
        >>> values.grad  # inv(Q) at Q's pattern
        tensor([0.6667, 0.3333, 0.3333, 0.6667], dtype=torch.float64)
        """
        out: torch.Tensor = _LogAbsDet.apply(self._values, self)
        return out

    def slogdet(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign, log|det A|) as :func:`torch.linalg.slogdet`; the second is :meth:`logdet`.

        Examples
        --------
        >>> import torch
        >>> from tsgu.factor import factorize
        >>> A = torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64).to_sparse_csr()
        >>> factorize(A, kind="lu").slogdet()
        (tensor(-1., dtype=torch.float64), tensor(1.7918, dtype=torch.float64))
        """
        logabs = self.logdet()
        sign, _ = self._slogdet_numbers()
        return logabs.new_tensor(sign), logabs

    def _inverse_transpose_at_pattern(self) -> torch.Tensor:
        """(A⁻ᵀ) at A's canonical pattern, float64."""
        s = self._structure
        backend = s.backend
        assert not isinstance(backend, _cudss.CuDSS)  # logdet refuses CUDA first
        backend.ensure_numeric(self._numpy_values)
        if isinstance(backend, ss.Cholmod):
            colptr, rowidx, lvalues, perm = backend.factor(self._numpy_values)
            supernodal, position = s.selinv_maps(colptr, rowidx, perm)
            Z = selected_inverse(supernodal, torch.from_numpy(lvalues), unit_diagonal=backend.ldl)
            return Z[position]
        # LU: (A⁻ᵀ)_ij = (A⁻¹)_ji, column blocks of A⁻¹ (O(n) solves, see logdet's Notes)
        return self._columns_at_pattern(lambda E: self._solve_numpy(E, False), transpose=True)

    def _columns_at_pattern(self, columns: Any, transpose: bool) -> torch.Tensor:
        """Entries (i, j) of A's pattern of the matrix whose column block J is
        ``columns(E_J)`` (E_J: identity columns J); with ``transpose``, entries (j, i)."""
        s = self._structure
        n = s.n
        rows, cols = (s.col, s.rows) if transpose else (s.rows, s.col)
        out = torch.empty(s.nnz, dtype=torch.float64)
        width = max(1, _CHUNK_ELEMENTS // max(n, 1))
        for start in range(0, n, width):  # memory-bounded blocks of columns
            stop = min(n, start + width)
            E = torch.zeros(n, stop - start, dtype=torch.float64)
            E[torch.arange(start, stop), torch.arange(stop - start)] = 1.0
            block = columns(E)
            take = (cols >= start) & (cols < stop)
            out[take] = block[rows[take], cols[take] - start]
        return out

    def _sandwich_at_pattern(self, V: torch.Tensor) -> torch.Tensor:
        """(A⁻ᵀ Vᵀ A⁻ᵀ) at A's canonical pattern, V given at that pattern."""
        s = self._structure
        Vt = torch.sparse_coo_tensor(
            torch.stack([s.col, s.rows]), V.to(torch.float64), (s.n, s.n)
        ).coalesce()

        def columns(E: torch.Tensor) -> torch.Tensor:
            Y = self._solve_numpy(E, True)
            return self._solve_numpy(torch.sparse.mm(Vt, Y), True)

        return self._columns_at_pattern(columns, transpose=False)


class _FactorSolve(torch.autograd.Function):
    """``L⁻¹ P B`` or ``Pᵀ L⁻ᵀ B``; the gradient for B is the other one."""

    @staticmethod
    def forward(B: torch.Tensor, factorization: Factorization, transpose: bool) -> torch.Tensor:
        backend = factorization._require_cholesky("Factorization.solve_factor")
        block = B.detach().to(torch.float64).numpy()
        if transpose:
            out = backend.solve(backend.solve(block, system=5), system=8)
        else:
            out = backend.solve(backend.solve(block, system=7), system=4)
        return torch.from_numpy(out).to(B.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.factorization, ctx.transpose = inputs[1], inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        # (Pᵀ L⁻ᵀ)ᵀ = L⁻¹ P and back
        out: torch.Tensor = _FactorSolve.apply(grad, ctx.factorization, not ctx.transpose)
        return out, None, None


def factorize(A: torch.Tensor, kind: str = "lu", *, method: str | None = None) -> Factorization:
    r"""Factorize sparse A and keep the factorization: solves, refactors, logdet, samples.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)``, float32 or float64 (SuiteSparse computes in float64;
        results come back in A's dtype), int32 or int64 indices, on the CPU. May be built
        from trainable values with tsgu's constructors.
    kind : {"lu", "cholesky", "ldl"}
        ``"lu"`` for any nonsingular A (UMFPACK or KLU); ``"cholesky"`` for symmetric
        positive definite A (CHOLMOD's supernodal LLᵀ); ``"ldl"`` for symmetric A without
        pivoting across the diagonal (CHOLMOD's simplicial LDLᵀ). The symmetric kinds need
        both triangles stored and use the symmetric part ``(A + Aᵀ)/2``.
    method : str, optional
        For ``kind="lu"``: ``"umfpack"`` (default; multifrontal, for PDE matrices) or
        ``"klu"`` (for very sparse, circuit-like matrices).

    Returns
    -------
    Factorization
        With ``solve(B, transpose=False)``, ``refactor(A)``, ``logdet()``, ``slogdet()``
        and, for Cholesky, ``solve_factor`` and ``sample``.

    Raises
    ------
    TypeError
        A is not a sparse COO/CSR tensor, or its dtype is not float32/float64.
    ValueError
        A is not 2D and square; ``kind`` or ``method`` is unknown; A has NaN or Inf values;
        a symmetric kind gets an unsymmetric pattern; A is not positive definite
        (``"cholesky"``, naming the failing pivot) or exactly singular; A is on a device
        the CPU backend cannot take.

    Notes
    -----
    The fill-reducing ordering and the symbolic analysis are made here once;
    :meth:`Factorization.refactor` reuses them for new values on the same pattern, as a
    Newton loop needs. For a functional form that keeps them by pattern, see
    :func:`tsgu.factor.solve`.

    Examples
    --------
    >>> import torch
    >>> from tsgu.factor import factorize
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64).to_sparse_csr()
    >>> F = factorize(A, kind="cholesky")
    >>> F.solve(torch.tensor([1.0, 2.0], dtype=torch.float64))
    tensor([0.0909, 0.6364], dtype=torch.float64)
    >>> F.logdet()
    tensor(2.3979, dtype=torch.float64)
    """
    fn = "factorize"
    kind = check_kind(fn, kind)
    A = check_matrix(fn, A)
    allowed = _METHODS[kind]
    if method is None:
        method = allowed[0]
    if method not in allowed:
        raise ValueError(
            f"{fn}: method must be one of {', '.join(map(repr, allowed))} for kind={kind!r}, "
            f"got {method!r}; leave it out for the default"
        )
    if A.device.type == "cuda" and not _cudss.available():
        raise ValueError(
            f"{fn}: A must be on the CPU without nvmath-python, got device {A.device}; "
            "install tsgu-factor[cuda12] (or [cuda13]) for cuDSS, or move A with A.cpu()"
        )
    if A.device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"{fn}: A must be on the CPU (SuiteSparse) or a CUDA device (cuDSS), got device "
            f"{A.device}; move it with A.cpu()"
        )
    return Factorization(A, kind, method, fn)
