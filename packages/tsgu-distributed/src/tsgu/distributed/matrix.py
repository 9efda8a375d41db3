"""DistributedSparseMatrix: a square sparse matrix whose rows are split over a process group."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

import tsgu.core as tc
from tsgu.core.extend import Pattern, values_of

from ._halo import HaloPlan, halo_gather, halo_reduce
from ._validate import (
    agree,
    check_group,
    check_local_rows,
    check_operand,
    check_partition,
)
from .partition import RowPartition

__all__ = ["DistributedSparseMatrix"]


class DistributedSparseMatrix:
    """A square ``(n, n)`` sparse matrix split by rows over the ranks of a process group.

    Each rank holds the rows that its :class:`RowPartition` block assigns it, as a local
    sparse matrix whose columns are its own rows' followed and preceded by its *halo*: the
    other ranks' rows that its entries reference. Build one with :meth:`from_local_rows`
    (each rank passes its own rows) or :meth:`from_global` (one rank holds the whole matrix
    and scatters it); every rank of the group calls either at the same time.

    Attributes
    ----------
    shape : tuple of int
        The global ``(n, n)``.
    partition : RowPartition
        Which rows each rank owns.
    rows : torch.Tensor
        This rank's rows, ``(n_local, n)`` sparse, with global columns, as given (with their
        autograd history when built from trainable values).
    values : torch.Tensor
        This rank's stored values in ``rows``' order; gradients reach them (and through them
        the values ``rows`` was built from) on this rank only.
    local : torch.Tensor
        ``(n_local, n_ext)`` sparse, the same values in the extended numbering
        ``[halo below | own rows | halo above]``.

    Notes
    -----
    A product ``A @ X`` exchanges, once, the rows of ``X`` that some rank's entries
    reference (only those), then multiplies locally. Gradients: for ``X``, ``Aᵀ G`` made
    locally and sent back to the rows' owners (the reverse exchange); for A, at each rank's
    own stored entries, on that rank.

    Examples
    --------
    On one process (a group of one), the whole matrix is the local block:

    >>> import torch, torch.distributed as dist, tsgu.core as tc
    >>> from tsgu.distributed import DistributedSparseMatrix
    >>> from tsgu.distributed.testing import free_port
    >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
    ...                         rank=0, world_size=1)
    >>> A = DistributedSparseMatrix.from_global(tc.poisson_2d(4))
    >>> x = torch.ones(16, dtype=torch.float64)
    >>> torch.allclose(A @ x, tc.poisson_2d(4) @ x)
    True
    >>> dist.destroy_process_group()
    """

    shape: tuple[int, int]
    partition: RowPartition
    group: dist.ProcessGroup | None
    rank: int
    rows: torch.Tensor
    values: torch.Tensor
    local: torch.Tensor
    plan: HaloPlan
    _pattern: Pattern
    _local_indices: tuple[torch.Tensor, ...]
    _transposed: torch.Tensor | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "DistributedSparseMatrix: the constructor must not be called directly, got "
            f"{len(args) + len(kwargs)} arguments; use DistributedSparseMatrix.from_local_rows "
            "or DistributedSparseMatrix.from_global"
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_local_rows(
        cls,
        rows: torch.Tensor,
        partition: RowPartition | None = None,
        *,
        group: dist.ProcessGroup | None = None,
    ) -> DistributedSparseMatrix:
        """The matrix whose rows on this rank are ``rows``; every rank calls it together.

        Parameters
        ----------
        rows : torch.Tensor
            Sparse COO or CSR ``(n_local, n)``, float32 or float64: this rank's block of
            rows with global column indices. Build it with tsgu's constructors from values
            that require grad to train them.
        partition : RowPartition, optional
            Which rows each rank owns; default: consecutive blocks of each rank's
            ``n_local`` (one all_gather finds them).
        group : ProcessGroup, optional
            Default: the default group.

        Returns
        -------
        DistributedSparseMatrix

        Raises
        ------
        TypeError
            ``rows`` is not a sparse COO/CSR tensor.
        ValueError
            Bad dtype or structure, or ``rows`` not matching ``partition`` (before any
            communication); ranks that disagree on ``n``, the partition or the dtype (on
            every rank, after one small all_gather).

        Examples
        --------
        >>> import torch, torch.distributed as dist, tsgu.core as tc
        >>> from tsgu.distributed import DistributedSparseMatrix
        >>> from tsgu.distributed.testing import free_port
        >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
        ...                         rank=0, world_size=1)
        >>> P = tc.poisson_2d(3)
        >>> values = P.values().clone().requires_grad_()
        >>> rows = tc.sparse_csr_tensor(P.crow_indices(), P.col_indices(), values, P.shape)
        >>> A = DistributedSparseMatrix.from_local_rows(rows)
        >>> (A @ torch.ones(9, dtype=torch.float64)).sum().backward()
        >>> values.grad.shape
        torch.Size([33])
        >>> dist.destroy_process_group()
        """
        fn = "DistributedSparseMatrix.from_local_rows"
        group = check_group(fn, group)
        rows = check_local_rows(fn, rows)
        rank = dist.get_rank(group)
        if partition is not None:
            check_partition(fn, partition, rows, rank, dist.get_world_size(group))
        sizes = agree(fn, rows, partition, group)
        if partition is None:
            partition = RowPartition.from_sizes(sizes)
        return cls._build(rows, partition, group)

    @classmethod
    def from_global(
        cls,
        A: torch.Tensor | None,
        partition: RowPartition | None = None,
        *,
        src: int = 0,
        group: dist.ProcessGroup | None = None,
    ) -> DistributedSparseMatrix:
        """Scatter a matrix that rank ``src`` holds; every rank calls it together.

        Parameters
        ----------
        A : torch.Tensor or None
            On rank ``src``: sparse COO or CSR ``(n, n)``; ignored elsewhere (pass None).
        partition : RowPartition, optional
            Default: :meth:`RowPartition.even` over the group.
        src : int
            The rank (in ``group``) that holds A.
        group : ProcessGroup, optional
            Default: the default group.

        Returns
        -------
        DistributedSparseMatrix
            Its values are this rank's rows of A, detached: to train them, make
            ``A.values.detach().requires_grad_()`` a leaf and use :meth:`with_values`.

        Examples
        --------
        >>> import torch, torch.distributed as dist, tsgu.core as tc
        >>> from tsgu.distributed import DistributedSparseMatrix
        >>> from tsgu.distributed.testing import free_port
        >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
        ...                         rank=0, world_size=1)
        >>> A = DistributedSparseMatrix.from_global(tc.poisson_2d(3))
        >>> A.shape, A.partition
        ((9, 9), RowPartition([0, 9]))
        >>> dist.destroy_process_group()
        """
        fn = "DistributedSparseMatrix.from_global"
        group = check_group(fn, group)
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        if not isinstance(src, int) or not 0 <= src < world:
            raise ValueError(
                f"{fn}: src must be a rank of the group (0 to {world - 1}), got {src!r}; "
                "pass the rank that holds A"
            )
        parts: list[Any] = [None] * world
        if rank == src:
            A = check_local_rows(fn, A, name="A")
            if A.shape[0] != A.shape[1]:
                raise ValueError(
                    f"{fn}: A must be square, got shape {tuple(A.shape)}; "
                    "pass the whole (n, n) matrix"
                )
            if partition is None:
                partition = RowPartition.even(A.shape[0], world)
            if partition.world_size != world or partition.n != A.shape[0]:
                raise ValueError(
                    f"{fn}: partition must cover A's {A.shape[0]} rows over {world} ranks, "
                    f"got {partition}; build it with RowPartition.even(n, world_size)"
                )
            csr = A.detach().to_sparse_csr() if A.layout != torch.sparse_csr else A.detach()
            crow, col, val = csr.crow_indices(), csr.col_indices(), csr.values()
            for r in range(world):  # a loop over ranks
                a, b = partition.offsets[r], partition.offsets[r + 1]
                lo, hi = int(crow[a]), int(crow[b])
                parts[r] = (crow[a : b + 1] - lo, col[lo:hi], val[lo:hi], A.shape[1])
        mine: list[Any] = [None]
        # the rows travel once, pickled; a matrix too large for one rank's memory is built
        # with from_local_rows instead
        dist.scatter_object_list(
            mine, parts if rank == src else None, src=_global(group, src), group=group
        )
        crow, col, val, n = mine[0]
        rows = torch.sparse_csr_tensor(
            crow, col, val, (crow.numel() - 1, n), check_invariants=False
        )
        return cls.from_local_rows(rows, None, group=group)

    @classmethod
    def _build(
        cls, rows: torch.Tensor, partition: RowPartition, group: dist.ProcessGroup | None
    ) -> DistributedSparseMatrix:
        self = object.__new__(cls)
        self.partition, self.group = partition, group
        self.rank = dist.get_rank(group)
        self.shape = (partition.n, partition.n)
        self.rows = rows
        self._pattern = Pattern.of(rows)
        self.plan = HaloPlan(self._pattern.cols, partition, group)
        self._local_indices = self._extended_indices(rows)
        self.values = values_of(rows, self._pattern)
        self.local = self._local(self.values)
        self._transposed = None
        return self

    def _extended_indices(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ext = self.plan.ext_cols
        if rows.layout == torch.sparse_csr:
            return (rows.crow_indices(), ext.to(rows.col_indices().dtype))
        indices = rows._indices()
        return (torch.stack([indices[0], ext.to(indices.dtype)]),)

    def _local(self, values: torch.Tensor) -> torch.Tensor:
        size = (self.plan.n_local, self.plan.n_ext)
        if self.rows.layout == torch.sparse_csr:
            crow, col = self._local_indices
            return tc.sparse_csr_tensor(crow, col, values, size)
        (indices,) = self._local_indices
        return tc.sparse_coo_tensor(indices, values, size, is_coalesced=self.rows.is_coalesced())

    def with_values(self, values: torch.Tensor) -> DistributedSparseMatrix:
        """The same matrix (pattern, partition, halo plan: no communication) with this rank's
        stored values replaced by ``values`` (``self.values``' shape), e.g. a Parameter.

        Examples
        --------
        >>> import torch, torch.distributed as dist, tsgu.core as tc
        >>> from tsgu.distributed import DistributedSparseMatrix
        >>> from tsgu.distributed.testing import free_port
        >>> dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}",
        ...                         rank=0, world_size=1)
        >>> A = DistributedSparseMatrix.from_global(tc.poisson_2d(3))
        >>> w = torch.nn.Parameter(A.values.detach().clone())
        >>> B = A.with_values(w)
        >>> (B @ torch.ones(9, dtype=torch.float64)).sum().backward()
        >>> w.grad.shape
        torch.Size([33])
        >>> dist.destroy_process_group()
        """
        fn = "DistributedSparseMatrix.with_values"
        if not isinstance(values, torch.Tensor) or values.shape != self.values.shape:
            got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
            raise ValueError(
                f"{fn}: values must be a tensor of shape {tuple(self.values.shape)}, got {got}; "
                "pass one value per stored entry of this rank, in A.values' order"
            )
        if values.dtype != self.values.dtype:
            raise ValueError(
                f"{fn}: values must have dtype {self.values.dtype}, got {values.dtype}; "
                f"cast it with .to({self.values.dtype})"
            )
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.values = values
        new.local = new._local(values)
        new._transposed = None
        return new

    def square(self) -> torch.Tensor:
        """This rank's rows as a square ``(n_ext + 1, n_ext + 1)`` sparse matrix in the
        extended numbering (rows ``[n_below, n_below + n_local)``; the halo rows and one
        last padding row, which keeps a rank that owns nothing non-empty, are empty), built
        from :attr:`values` (differentiable): the matrix that :func:`tsgu.distributed.solve`
        hands to :func:`tsgu.core.extend.linear_solve`."""
        plan = self.plan
        size = (plan.n_ext + 1, plan.n_ext + 1)
        if self.rows.layout == torch.sparse_csr:
            crow, col = self._local_indices
            nnz = crow[-1:]
            crow = torch.cat(
                [
                    crow.new_zeros(plan.n_below),
                    crow,
                    nnz.expand(plan.n_ext + 1 - plan.n_below - plan.n_local),
                ]
            )
            return tc.sparse_csr_tensor(crow, col, self.values, size)
        (indices,) = self._local_indices
        shifted = torch.stack([indices[0] + plan.n_below, indices[1]])
        return tc.sparse_coo_tensor(
            shifted, self.values, size, is_coalesced=self.rows.is_coalesced()
        )

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        """The values' dtype."""
        return self.values.dtype

    @property
    def n_local(self) -> int:
        """Rows this rank owns."""
        return self.plan.n_local

    @property
    def local_rows(self) -> range:
        """The global rows this rank owns."""
        return self.partition.rows(self.rank)

    def halo_bytes(self, k: int = 1) -> dict[str, int]:
        """Bytes this rank sends and receives in one exchange of ``k`` columns."""
        size = torch.empty((), dtype=self.dtype).element_size()
        return {
            "sent": self.plan.halo_rows_sent * k * size,
            "received": self.plan.halo_rows_received * k * size,
        }

    def diagonal(self) -> torch.Tensor:
        """This rank's rows' diagonal entries (zero where none is stored), no gradient."""
        ext = self.plan.ext_cols
        row = self._pattern.rows
        on = ext == row + self.plan.n_below
        d = torch.zeros(self.n_local, dtype=self.dtype, device=self.values.device)
        return d.index_add_(0, row[on], self.values.detach()[on])

    def diagonal_block(self) -> torch.Tensor:
        """This rank's ``(n_local, n_local)`` diagonal block (CSR, no gradient)."""
        ext = self.plan.ext_cols
        lo, n = self.plan.n_below, self.n_local
        keep = (ext >= lo) & (ext < lo + n)
        rows = self._pattern.rows[keep]
        indices = torch.stack([rows, ext[keep] - lo])
        coo = torch.sparse_coo_tensor(indices, self.values.detach()[keep], (n, n)).coalesce()
        return coo.to_sparse_csr()

    # ------------------------------------------------------------------ products
    def matmul(self, X: torch.Tensor) -> torch.Tensor:
        """``A @ X`` for this rank's rows ``X`` ``(n_local,)`` or ``(n_local, k)``: the rows
        of the global product that this rank owns. Every rank calls it together.

        Differentiable in X and in A's values (to any order): one halo exchange forward,
        one reverse exchange backward.
        """
        fn = "DistributedSparseMatrix.matmul"
        X = check_operand(fn, "X", X, self.n_local, self.dtype)
        block = X if X.dim() == 2 else X.unsqueeze(1)
        out = tc.sparse_mm(self.local, halo_gather(block, self.plan))
        return out if X.dim() == 2 else out.squeeze(1)

    __matmul__ = matmul

    def rmatmul(self, X: torch.Tensor) -> torch.Tensor:
        """``Aᵀ @ X`` for this rank's rows of X, this rank's rows of the result (differentiable
        in X only; the values are read detached). Every rank calls it together."""
        fn = "DistributedSparseMatrix.rmatmul"
        X = check_operand(fn, "X", X, self.n_local, self.dtype)
        block = X if X.dim() == 2 else X.unsqueeze(1)
        if self._transposed is None:
            self._transposed = self.local.detach().t().to_sparse_csr()
        out = halo_reduce(tc.sparse_mm(self._transposed, block), self.plan)
        return out if X.dim() == 2 else out.squeeze(1)

    def __repr__(self) -> str:
        return (
            f"DistributedSparseMatrix(shape={self.shape}, rank={self.rank}, "
            f"local_rows={self.local_rows}, halo={self.plan.halo_rows_received}, "
            f"nnz_local={self.values.numel()}, dtype={self.dtype})"
        )


def _global(group: dist.ProcessGroup | None, rank: int) -> int:
    return rank if group is None else dist.get_global_rank(group, rank)
