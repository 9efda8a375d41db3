"""Preconditioners for the Krylov solvers: Jacobi, block Jacobi, IC(0), ILU(0).

Each returns a :class:`Preconditioner`, an approximation of ``A⁻¹`` that the solvers take
as ``M=`` and that can be applied directly, ``M(r)``.
"""

from __future__ import annotations

import torch

from ._levels import LevelSchedule, ragged_positions
from ._pattern import Pattern, stored_values
from .solve import is_symmetric
from .triangular import _solve_kernel
from .validation import COO, CSR, check_sparse, check_square

__all__ = ["Preconditioner", "block_jacobi", "ic0", "ilu0", "jacobi"]


class Preconditioner:
    """An approximation of ``A⁻¹`` for ``A`` of shape ``(n, n)`` or ``(b, n, n)``.

    Call it on ``(n,)``, ``(n, k)``, or ``(b, n)``/``(b, n, k)`` for a batched A, with A's
    dtype and device; the Krylov solvers apply it to their blocks through :meth:`matmat`.
    """

    def __init__(  # type: ignore[no-untyped-def]
        self,
        name: str,
        shape: tuple[int, ...],
        apply,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.device = torch.device(device)
        self._apply = apply

    def matmat(self, X: torch.Tensor) -> torch.Tensor:
        """Apply to a block ``(n, k)`` or ``(b, n, k)``."""
        self._check(X, block=True)
        k = X.shape[-1]
        out: torch.Tensor = self._apply(X.reshape(-1, k))
        return out.reshape(X.shape)

    def _check(self, X: object, block: bool) -> None:
        fn = f"{self.name} preconditioner"
        if not isinstance(X, torch.Tensor) or X.layout != torch.strided:
            got = type(X).__name__ if not isinstance(X, torch.Tensor) else str(X.layout)
            raise TypeError(f"{fn}: r must be a dense tensor, got {got}")
        if X.dtype != self.dtype:
            raise ValueError(
                f"{fn}: r must have the dtype it was built for ({self.dtype}), got {X.dtype}; "
                f"build it from A.to({X.dtype})"
            )
        if X.device != self.device:
            raise ValueError(
                f"{fn}: r must be on the device it was built for ({self.device}), got {X.device}"
            )
        n = self.shape[-1]
        batch = self.shape[:-2]
        vector_dims, block_dims = len(batch) + 1, len(batch) + 2
        dims = (block_dims,) if block else (vector_dims, block_dims)
        rows = X.shape[len(batch)] if X.dim() in dims else None
        if X.dim() not in dims or rows != n or tuple(X.shape[: len(batch)]) != batch:
            expected = f"({', '.join(map(str, (*batch, n)))}[, k])"
            raise ValueError(f"{fn}: r must have shape {expected}, got {tuple(X.shape)}")

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        self._check(r, block=False)
        vector = r.dim() == len(self.shape) - 1
        X = r.unsqueeze(-1) if vector else r
        out = self.matmat(X)
        return out.squeeze(-1) if vector else out

    def __repr__(self) -> str:
        return f"Preconditioner({self.name}, shape={self.shape}, dtype={self.dtype})"


def _pattern_and_values(fn: str, A: object) -> tuple[torch.Tensor, Pattern, torch.Tensor]:
    A = check_sparse(fn, "A", A, layouts=(COO, CSR), dims=(2, 3))
    check_square(fn, "A", A)
    if A.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"{fn}: A must have dtype float32 or float64, got {A.dtype}")
    A = A.detach()
    raw = stored_values(A)
    if raw.numel() and not bool(torch.isfinite(raw).all()):
        k = int(torch.nonzero(~torch.isfinite(raw.reshape(-1)))[0, 0])
        raise ValueError(
            f"{fn}: A must have finite values, got {float(raw.reshape(-1)[k])} at stored "
            f"value {k}; a NaN or Inf makes the preconditioner NaN"
        )
    if A.layout == CSR and Pattern.of(A).canonical_form[2] is not None:
        # Unsorted columns or duplicates: the factorizations need canonical rows. (torch's
        # to_sparse_coo() flags such a result coalesced when it is not: rebuild it.)
        coo = A.to_sparse_coo()
        A = torch.sparse_coo_tensor(coo._indices(), coo._values(), coo.shape)
    if A.layout == COO:
        A = A.coalesce()
        values = A._values()
    else:
        values = A.values().reshape(-1)
    return A, Pattern.of(A), values


def _where(flat_row: int, n: int, batched: bool) -> str:
    return f"row {flat_row % n}" + (f" of batch item {flat_row // n}" if batched else "")


def jacobi(A: torch.Tensor) -> Preconditioner:
    """The Jacobi (diagonal) preconditioner ``D⁻¹``.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)`` or ``(b, n, n)``.

    Returns
    -------
    Preconditioner

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR.
    ValueError
        A non-square A, a NaN or Inf value, or a zero or missing diagonal entry.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import cg, jacobi, poisson_2d
    >>> A = poisson_2d(10)
    >>> M = jacobi(A)
    >>> M(torch.full((100,), 4.0, dtype=torch.float64))[:3]
    tensor([1., 1., 1.], dtype=torch.float64)
    >>> x = cg(A, torch.ones(100, dtype=torch.float64), M=M, rtol=1e-10)
    """
    fn = "jacobi"
    A, pattern, values = _pattern_and_values(fn, A)
    on_diag = pattern.rows == pattern.cols
    diag = values.new_zeros(pattern.nrows).index_add_(
        0, pattern.rows[on_diag].to(torch.int64), values[on_diag]
    )
    zero = torch.nonzero(diag == 0)
    if zero.numel():
        where = _where(int(zero[0, 0]), A.shape[-1], A.dim() == 3)
        raise ValueError(f"{fn}: A has a zero or missing diagonal entry at {where}")
    inverse = (1.0 / diag).unsqueeze(1)
    return Preconditioner("jacobi", tuple(A.shape), lambda X: X * inverse, A.dtype, A.device)


def block_jacobi(A: torch.Tensor, block_size: int) -> Preconditioner:
    """The block Jacobi preconditioner: the inverses of A's diagonal blocks.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)`` or ``(b, n, n)``.
    block_size : int
        Size of the diagonal blocks; the last block of each matrix may be smaller.

    Returns
    -------
    Preconditioner
        Applies all blocks in one batched product (``ceil(n / block_size)`` dense
        ``block_size²`` blocks per matrix).

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR.
    ValueError
        A non-square A, a NaN or Inf value, a ``block_size`` that is not a positive int, or
        a singular block.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import block_jacobi, cg, poisson_2d
    >>> A = poisson_2d(16)
    >>> b = torch.ones(256, dtype=torch.float64)
    >>> plain = cg(A, b, rtol=1e-10, return_info=True)[1].iterations
    >>> lines = cg(A, b, rtol=1e-10, M=block_jacobi(A, 64), return_info=True)[1].iterations
    >>> lines < plain  # four grid lines per block
    True
    """
    fn = "block_jacobi"
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise ValueError(f"{fn}: block_size must be a positive int, got {block_size!r}")
    A, pattern, values = _pattern_and_values(fn, A)
    n = A.shape[-1]
    if n == 0:  # nothing to precondition
        return Preconditioner("block_jacobi", tuple(A.shape), lambda X: X, A.dtype, A.device)
    bs = min(block_size, n)
    per_matrix = -(-n // bs)
    nblocks = (A.shape[0] if A.dim() == 3 else 1) * per_matrix
    rows, cols = pattern.rows.to(torch.int64), pattern.cols.to(torch.int64)
    item, local_r, local_c = rows // n, rows % n, cols % n
    inside = local_r // bs == local_c // bs
    block = item * per_matrix + local_r // bs
    blocks = values.new_zeros(nblocks, bs, bs)
    blocks.index_put_(
        (block[inside], local_r[inside] % bs, local_c[inside] % bs), values[inside], accumulate=True
    )
    padded = per_matrix * bs - n  # the short last block: identity on the padding
    if padded:
        pad = torch.arange(bs - padded, bs, device=values.device)
        last = torch.arange(per_matrix - 1, nblocks, per_matrix, device=values.device)
        blocks[last[:, None], pad, pad] = 1.0
    lu, pivots, info = torch.linalg.lu_factor_ex(blocks)
    if bool((info != 0).any()):
        bad = int(torch.nonzero(info)[0, 0])
        where = _where((bad % per_matrix) * bs, n, A.dim() == 3).replace("row", "the block at row")
        raise ValueError(f"{fn}: {where} is singular; use a different block_size or jacobi")
    eye = torch.eye(bs, dtype=values.dtype, device=values.device).expand_as(blocks)
    inverses = torch.linalg.lu_solve(lu, pivots, eye)

    def apply(X: torch.Tensor) -> torch.Tensor:
        k = X.shape[-1]
        items = X.reshape(nblocks // per_matrix, n, k)
        if padded:
            items = torch.cat([items, items.new_zeros(items.shape[0], padded, k)], dim=1)
        out = torch.bmm(inverses, items.reshape(nblocks, bs, k))
        return out.reshape(-1, per_matrix * bs, k)[:, :n].reshape(-1, k)

    return Preconditioner(f"block_jacobi({bs})", tuple(A.shape), apply, A.dtype, A.device)


def _ilu0_values(
    fn: str, pattern: Pattern, values: torch.Tensor, n: int, batched: bool
) -> torch.Tensor:
    """ILU(0) of the folded matrix, in place of A's values: strictly lower entries hold L
    (unit diagonal implied), the rest U.

    Entry (i, j) needs, for every k < min(i, j) with (i, k) and (k, j) stored, the
    products l_ik u_kj, and (below the diagonal) u_jj. Entries are processed by level of
    that dependency graph, each level in one vectorised step.
    """
    crow, cols, perm = pattern.csr_form
    assert perm is None  # callers pass a coalesced COO or a CSR: values are row-major
    crow, cols = crow.to(torch.int64), cols.to(torch.int64)
    rows = pattern.rows.to(torch.int64)
    N, nnz = pattern.nrows, pattern.nnz
    device = values.device
    keys = rows * N + cols
    if nnz == 0 and N > 0:
        raise ValueError(f"{fn}: A has no stored diagonal entry at {_where(0, n, batched)}")
    # Position of each row's diagonal and of its first entry right of the diagonal.
    diag_pos = torch.searchsorted(keys, torch.arange(N, device=device) * (N + 1))
    has_diag = keys[diag_pos.clamp(max=nnz - 1)] == torch.arange(N, device=device) * (N + 1)
    if not bool(has_diag.all()):
        where = _where(int(torch.nonzero(~has_diag)[0, 0]), n, batched)
        raise ValueError(f"{fn}: A has no stored diagonal entry at {where}")
    upper_start = diag_pos + 1
    # Triples (target t, l-entry e1 = (i, k), u-entry e2 = (k, j)) with (i, j) stored.
    lower = torch.nonzero(cols < rows).squeeze(1)
    k = cols[lower]
    counts = crow[k + 1] - upper_start[k]
    e2 = ragged_positions(upper_start[k], counts)
    e1 = torch.repeat_interleave(lower, counts, output_size=e2.numel())
    target_keys = rows[e1] * N + cols[e2]
    t = torch.searchsorted(keys, target_keys).clamp(max=nnz - 1)
    stored = keys[t] == target_keys
    t, e1, e2 = t[stored], e1[stored], e2[stored]
    # Below the diagonal, l_ij also waits for u_jj.
    lower_diag = diag_pos[cols[lower]]
    schedule = LevelSchedule(torch.cat([t, t, lower]), torch.cat([e1, e2, lower_diag]), nnz)
    level = schedule.level
    out = values.clone()
    triple_order = torch.argsort(level[t], stable=True)
    triple_counts = torch.bincount(level[t], minlength=schedule.depth).tolist()
    is_lower = cols < rows
    entries = torch.split(schedule.row_order, schedule.row_counts)
    triples = torch.split(triple_order, triple_counts)
    for level_entries, level_triples in zip(entries, triples, strict=True):  # per level
        if level_triples.numel():
            tt = t[level_triples]
            out.index_add_(0, tt, -(out[e1[level_triples]] * out[e2[level_triples]]))
        low = level_entries[is_lower[level_entries]]
        if low.numel():
            out[low] = out[low] / out[diag_pos[cols[low]]]
    pivots = out[diag_pos]
    zero = torch.nonzero(pivots == 0)
    if zero.numel():
        where = _where(int(zero[0, 0]), n, batched)
        raise ValueError(f"{fn}: zero pivot at {where}; the incomplete factorization broke down")
    return out


def ilu0(A: torch.Tensor) -> Preconditioner:
    """Incomplete LU factorization with zero fill-in, ILU(0): ``A ≈ L U`` on A's pattern.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR ``(n, n)`` or ``(b, n, n)`` with every diagonal entry stored.

    Returns
    -------
    Preconditioner
        Applies ``U⁻¹ L⁻¹`` by two sparse triangular solves.

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR.
    ValueError
        A non-square A, a NaN or Inf value, a diagonal entry that is not stored, or a zero
        pivot.

    Notes
    -----
    Saad, "Iterative Methods for Sparse Linear Systems", 2nd ed., section 10.3 (ILU(0)).
    The factorization is exact ILU(0), computed without a loop over rows: stored entries
    are grouped by dependency level and each level is updated in one vectorised step.
    Setup memory is O(sum over rows of the row length squared).

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import bicgstab, ilu0, poisson_2d
    >>> A = poisson_2d(16)
    >>> b = torch.ones(256, dtype=torch.float64)
    >>> plain = bicgstab(A, b, rtol=1e-10, return_info=True)[1].iterations
    >>> better = bicgstab(A, b, rtol=1e-10, M=ilu0(A), return_info=True)[1].iterations
    >>> better < plain
    True
    """
    fn = "ilu0"
    A, pattern, values = _pattern_and_values(fn, A)
    lu = _ilu0_values(fn, pattern, values, A.shape[-1], A.dim() == 3)

    def apply(X: torch.Tensor) -> torch.Tensor:
        Y = _solve_kernel(pattern, lu, X, upper=False, unitriangular=True, transpose=False)
        return _solve_kernel(pattern, lu, Y, upper=True, unitriangular=False, transpose=False)

    return Preconditioner("ilu0", tuple(A.shape), apply, A.dtype, A.device)


def ic0(A: torch.Tensor) -> Preconditioner:
    """Incomplete Cholesky with zero fill-in, IC(0): ``A ≈ L Lᵀ`` on A's lower pattern.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO or CSR symmetric positive definite ``(n, n)`` or ``(b, n, n)`` with a
        symmetric pattern and every diagonal entry stored.

    Returns
    -------
    Preconditioner
        Applies ``L⁻ᵀ L⁻¹`` by two sparse triangular solves.

    Raises
    ------
    TypeError
        ``A`` is not sparse COO/CSR.
    ValueError
        A non-square or nonsymmetric A, a NaN or Inf value, a diagonal entry that is not
        stored, or a non-positive pivot (IC(0) does not exist for this A: use
        :func:`jacobi` or :func:`ilu0`).

    Notes
    -----
    For symmetric A, ILU(0) gives ``U = D Lᵀ``, so IC(0) is ``L D^{1/2}``: it is computed
    by the ILU(0) engine and shares its cost.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import cg, ic0, poisson_2d
    >>> A = poisson_2d(16)
    >>> b = torch.ones(256, dtype=torch.float64)
    >>> plain = cg(A, b, rtol=1e-10, return_info=True)[1].iterations
    >>> better = cg(A, b, rtol=1e-10, M=ic0(A), return_info=True)[1].iterations
    >>> better < plain
    True
    """
    fn = "ic0"
    A, pattern, values = _pattern_and_values(fn, A)
    if not is_symmetric(A):
        raise ValueError(
            f"{fn}: A must be symmetric (IC(0) approximates A ≈ L Lᵀ), got an A that differs "
            "from its transpose; use ilu0 for a nonsymmetric A"
        )
    lu = _ilu0_values(fn, pattern, values, A.shape[-1], A.dim() == 3)
    rows, cols = pattern.rows, pattern.cols
    on_diag = rows == cols
    pivots = values.new_zeros(pattern.nrows).index_add_(
        0, rows[on_diag].to(torch.int64), lu[on_diag]
    )
    bad = torch.nonzero(pivots <= 0)
    if bad.numel():
        where = _where(int(bad[0, 0]), A.shape[-1], A.dim() == 3)
        raise ValueError(
            f"{fn}: non-positive pivot at {where}: IC(0) does not exist for this A "
            "(is it symmetric positive definite?); use jacobi or ilu0"
        )
    root = torch.sqrt(pivots)
    # L_ic = L_unit D^{1/2}: scale the strictly lower entries by the root of their column.
    factor = torch.where(on_diag, root[rows.to(torch.int64)], lu * root[cols.to(torch.int64)])

    def apply(X: torch.Tensor) -> torch.Tensor:
        Y = _solve_kernel(pattern, factor, X, upper=False, unitriangular=False, transpose=False)
        return _solve_kernel(pattern, factor, Y, upper=False, unitriangular=False, transpose=True)

    return Preconditioner("ic0", tuple(A.shape), apply, A.dtype, A.device)
