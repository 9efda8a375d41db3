"""Sparsity patterns and the two products every sparse gradient in tsgu is made of.

A sparse matrix, or a batch ``(b, n, m)`` of them, is *folded* into one block-diagonal
``(b*n, b*m)`` matrix whose stored entries are the input's entries in the input's value
order. Every kernel works on the folded matrix, so batched inputs take the same single
vectorised path as unbatched ones.

Two differentiable primitives are defined on a :class:`Pattern`:

* :func:`pattern_matmul` ``(pattern, values, B) -> A @ B``, with ``A`` the matrix that has
  ``values`` at ``pattern``;
* :func:`sampled_product` ``(pattern, U, V) -> values``, ``values[k] = <U[row_k], V[col_k]>``,
  the dense-dense product ``U @ V.T`` sampled at the pattern only.

Each one's backward is written with the other (and with the transposed pattern), so every
backward in tsgu is itself differentiable and second derivatives come for free.
:func:`values_of` and :func:`from_values` move between a sparse tensor and its value vector,
keeping gradients O(nnz): a sparse gradient always has the input's indices, in its order.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

import torch

from .validation import COO, CSC, CSR

_unwrap_dead_wrappers: Callable[..., Any] | None
try:  # private to torch: a torch without it takes Function.apply's usual path (apply_function)
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap_dead_wrappers
except ImportError:  # pragma: no cover - the torch this was written on (2.13) has it
    _unwrap_dead_wrappers = None

# Upper bound on the bytes of one gathered (chunk x k) block in the gather-based sampled
# product: it keeps the intermediate memory O(chunk*k) instead of O(nnz*k).
_GATHER_CHUNK_BYTES = 32 * 2**20
INT32_MAX = 2**31 - 1  # the largest index (and extent) an int32 index tensor holds


def index_dtype_for(*sizes: int, preferred: torch.dtype) -> torch.dtype:
    """``preferred``, or int64 when ``preferred`` is int32 and a size exceeds ``INT32_MAX``.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import index_dtype_for
    >>> index_dtype_for(10, 2**31, preferred=torch.int32)
    torch.int64
    """
    if preferred == torch.int32 and max(sizes, default=0) > INT32_MAX:
        return torch.int64
    return preferred


def _load_memcmp() -> Callable[[int, int, int], int] | None:
    """The C library's ``memcmp``, or None where it cannot be found."""
    try:
        # the symbols of the running process (the C library among them); Windows: msvcrt
        library = ctypes.cdll.msvcrt if sys.platform == "win32" else ctypes.CDLL(None)
        fn = library.memcmp
    except (OSError, AttributeError):  # pragma: no cover - no C library found
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    return fn


_MEMCMP = _load_memcmp()


def same_content(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether index tensors ``a`` and ``b`` hold the same integers (same dtype and shape).

    Contiguous CPU tensors are compared as bytes by the C library's ``memcmp``: the same
    verdict as :func:`torch.equal` on integers, 4-7x faster (the 1-D Laplacian of
    N = 32,768: 29 against 200 µs for its CSR indices), which every call on a rebuilt tensor
    pays. Others go through :func:`torch.equal`.
    """
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if (
        _MEMCMP is not None
        and not a.is_floating_point()  # bytes would tell -0.0 from 0.0
        and a.device.type == "cpu"
        and b.device.type == "cpu"
        and a.is_contiguous()
        and b.is_contiguous()
    ):
        size = a.numel() * a.element_size()
        return size == 0 or _MEMCMP(a.data_ptr(), b.data_ptr(), size) == 0
    return torch.equal(a, b)


def _compress(sorted_rows: torch.Tensor, nrows: int, dtype: torch.dtype) -> torch.Tensor:
    """Compressed row pointers of a sorted row-index vector."""
    bounds = torch.arange(nrows + 1, device=sorted_rows.device, dtype=sorted_rows.dtype)
    return torch.searchsorted(sorted_rows, bounds, out_int32=dtype == torch.int32)


def _expand(crow: torch.Tensor, nnz: int, dtype: torch.dtype) -> torch.Tensor:
    """Row index of every stored entry, from compressed row pointers."""
    counts = crow.diff().to(torch.int64)
    rows = torch.arange(crow.numel() - 1, device=crow.device, dtype=dtype)
    # output_size spares a device-to-host sync on CUDA
    return torch.repeat_interleave(rows, counts, output_size=nnz)


def _fold_compressed(
    compressed: torch.Tensor, plain: torch.Tensor, plain_size: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold batched compressed indices ``(b, n+1)``, ``(b, nnz)`` into block-diagonal 2D ones."""
    b, nnz = plain.shape
    batch = torch.arange(b, device=plain.device, dtype=dtype)[:, None]
    tail = torch.full((1,), b * nnz, device=plain.device, dtype=dtype)
    folded_compressed = torch.cat([(compressed[:, :-1].to(dtype) + batch * nnz).reshape(-1), tail])
    folded_plain = (plain.to(dtype) + batch * plain_size).reshape(-1)
    return folded_compressed, folded_plain


class Pattern:
    """The sparsity pattern of a sparse matrix or batch, folded to one 2D matrix.

    ``rows[k]`` and ``cols[k]`` are the folded coordinates of the k-th stored value, in the
    order of the input's values (COO order as stored, duplicates kept; CSR row-major; CSC
    column-major). ``crow`` holds compressed row pointers when that order is row-major,
    which lets the fast CSR kernels run without any reordering.

    A pattern made by :meth:`of` also remembers how to rebuild a tensor of the input's
    layout (:func:`from_values`); a transposed pattern (:attr:`t`) does not need to.
    """

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        nrows: int,
        ncols: int,
        cols: torch.Tensor,
        rows: torch.Tensor | None = None,
        crow: torch.Tensor | None = None,
    ) -> None:
        if rows is None and crow is None:
            raise ValueError("Pattern needs rows or crow")
        self.shape = tuple(shape)
        self.nrows = nrows
        self.ncols = ncols
        self.cols = cols
        self._crow = crow
        self._rows = rows
        self._may_be_row_sorted = False
        self._transposed: Pattern | None = None
        # How to rebuild a tensor of the input's layout; set by Pattern.of.
        self.layout: torch.layout | None = None
        self.index_tensors: tuple[torch.Tensor, ...] = ()
        self.values_shape: tuple[int, ...] = ()
        self.is_coalesced = False

    # --------------------------------------------------------------- construction
    @classmethod
    def of(cls, A: torch.Tensor) -> Pattern:
        """The pattern of a sparse COO, CSR or CSC tensor, 2D or batched 3D (no checks)."""
        shape = tuple(A.shape)
        b = shape[0] if len(shape) == 3 else 1
        n, m = shape[-2], shape[-1]
        if A.layout == COO:
            indices = A._indices()
            if len(shape) == 2:
                rows, cols = indices[0], indices[1]
            else:
                rows = indices[0] * n + indices[1]
                cols = indices[0] * m + indices[2]
            pattern = cls(shape=shape, nrows=b * n, ncols=b * m, rows=rows, cols=cols)
            # Stored COO order may still be row-major; `crow` finds out when first needed.
            pattern._may_be_row_sorted = True
            pattern.index_tensors = (indices,)
            pattern.values_shape = (indices.shape[1],)
            pattern.is_coalesced = A.is_coalesced()
        elif A.layout in (CSR, CSC):
            if A.layout == CSR:
                compressed, plain = A.crow_indices(), A.col_indices()
                # the stored order is row-major: the pattern itself is compressed by rows
                plain_size, compressed_size = m, n
            else:
                compressed, plain = A.ccol_indices(), A.row_indices()
                # the stored order is column-major: the transpose is compressed by rows
                plain_size, compressed_size = n, m
            nnz = plain.shape[-1]
            dtype = index_dtype_for(b * nnz, b * max(n, m), preferred=plain.dtype)
            if len(shape) == 2:
                folded_compressed, folded_plain = compressed.to(dtype), plain.to(dtype)
            else:
                folded_compressed, folded_plain = _fold_compressed(
                    compressed, plain, plain_size, dtype
                )
            compressed_pattern = cls(
                shape=shape if A.layout == CSR else (*shape[:-2], m, n),
                nrows=b * compressed_size,
                ncols=b * plain_size,
                cols=folded_plain,
                crow=folded_compressed,
            )
            pattern = compressed_pattern if A.layout == CSR else compressed_pattern.t
            pattern.index_tensors = (compressed, plain)
            pattern.values_shape = tuple(A.values().shape)
        else:  # pragma: no cover - callers validate layouts first
            raise TypeError(f"unsupported layout {A.layout}")
        pattern.layout = A.layout
        return pattern

    # ------------------------------------------------------------------ structure
    @property
    def nnz(self) -> int:
        """Number of stored values (over the whole batch)."""
        return self.cols.numel()

    @property
    def device(self) -> torch.device:
        return self.cols.device

    @property
    def crow(self) -> torch.Tensor | None:
        """Compressed row pointers when the value order is row-major, else ``None``."""
        if self._crow is None and self._may_be_row_sorted:
            self._may_be_row_sorted = False
            rows = self.rows
            # CSR kernels need rows in order, not uniqueness: an O(nnz) check avoids a
            # sort for COO tensors that are row-sorted without being flagged coalesced.
            if bool((rows[1:] >= rows[:-1]).all()):
                self._crow = _compress(rows, self.nrows, torch.int64)
        return self._crow

    @property
    def rows(self) -> torch.Tensor:
        """Folded row index of every stored value, in value order."""
        if self._rows is None:
            assert self._crow is not None
            self._rows = _expand(self._crow, self.nnz, self.cols.dtype)
        return self._rows

    @property
    def t(self) -> Pattern:
        """The pattern of the transpose, with the same value order."""
        if self._transposed is None:
            n, m = self.shape[-2], self.shape[-1]
            transposed = Pattern(
                shape=(*self.shape[:-2], m, n),
                nrows=self.ncols,
                ncols=self.nrows,
                rows=self.cols,
                cols=self.rows,
            )
            transposed._transposed = self
            self._transposed = transposed
        return self._transposed

    @cached_property
    def csr_form(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(crow, col, perm)``: compressed rows of the folded matrix.

        ``perm`` is ``None`` when the value order is already row-major; otherwise values
        must be taken as ``values[perm]``. The reordering is a stable sort of the row
        indices (int32 keys where they fit, which halves the sort time).
        """
        crow = self.crow
        if crow is not None:
            return crow, self.cols, None
        keys = self.rows
        if self.nrows <= INT32_MAX:
            keys = keys.to(torch.int32)
        sorted_rows, perm = torch.sort(keys, stable=True)
        dtype = index_dtype_for(self.nnz, self.ncols, preferred=keys.dtype)
        crow = _compress(sorted_rows, self.nrows, dtype)
        return crow, self.cols.index_select(0, perm).to(dtype), perm

    @cached_property
    def kernel_form(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:attr:`csr_form` with int32 indices where they fit.

        torch's CSR kernels (MKL, cuSPARSE) run about twice as fast with int32 indices as
        with int64 ones (measured on the 27-point 50³ matrix: 51 against 93 ms for 16
        columns); the conversion is paid once per pattern, which a forward, its backward
        and every iteration of a Krylov solve share.
        """
        crow, col, perm = self.csr_form
        if crow.dtype == torch.int64 and max(self.nnz, self.ncols, self.nrows) <= INT32_MAX:
            crow, col = crow.to(torch.int32), col.to(torch.int32)
        return crow, col, perm

    @cached_property
    def canonical_form(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
        """``(crow, col, slot, nnz_unique)``: row-major, columns sorted and unique per row.

        Kernels that need it (MKL's triangular solve misreads unsorted columns and
        duplicates) take ``values`` when ``slot`` is None, else
        ``zeros(nnz_unique).index_add(0, slot, values)``: duplicates summed, as every other
        kernel counts them. Indices are int32 where they fit.
        """
        keys = self.rows.to(torch.int64) * self.ncols + self.cols.to(torch.int64)
        if bool((keys[1:] > keys[:-1]).all()):  # already canonical: the common case
            crow, col, _ = self.kernel_form
            return crow, col, None, self.nnz
        sorted_keys, order = torch.sort(keys, stable=True)
        first = torch.ones_like(sorted_keys, dtype=torch.bool)
        first[1:] = sorted_keys[1:] != sorted_keys[:-1]
        slot = torch.empty_like(order)
        slot[order] = torch.cumsum(first, 0) - 1
        unique = sorted_keys[first]
        dtype = index_dtype_for(unique.numel(), self.ncols, self.nrows, preferred=torch.int32)
        crow = _compress(unique // self.ncols, self.nrows, dtype)
        return crow, (unique % self.ncols).to(dtype), slot, unique.numel()

    def diagonal(self, values: torch.Tensor) -> torch.Tensor:
        """The diagonal of the folded matrix, ``(nrows,)``, of ``values`` in this pattern's
        order: stored duplicates summed, absent entries zero."""
        where, rows = self.diagonal_entries
        return values.new_zeros(self.nrows).index_add_(0, rows, values.index_select(0, where))

    @cached_property
    def one_entry_per_diagonal(self) -> bool:
        """Whether every row stores exactly one diagonal entry (none missing, no duplicate):
        then the diagonal is ``values[where]`` in row order of ``diagonal_entries``."""
        where, rows = self.diagonal_entries
        if where.numel() != self.nrows:
            return False
        return bool((torch.bincount(rows, minlength=self.nrows) == 1).all())

    @cached_property
    def diagonal_entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(where, rows)``: the positions of the stored diagonal entries and their rows,
        found once per pattern (a solve checks its diagonal at every call)."""
        where = torch.nonzero(self.rows == self.cols).squeeze(1)
        return where, self.rows.index_select(0, where)

    @cached_property
    def transposed_indices(self) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The index tensors of the transpose, in row-major order, and the order of its values.

        The index tensors have the input's layout (COO or CSR), batch shape and index dtype;
        the transpose holds ``values[perm]``. One stable sort, made once per pattern.
        """
        crow, col, perm = self.t.csr_form
        if perm is None:  # the transpose is row-major already (the pattern of a CSC input)
            perm = torch.arange(self.nnz, device=self.device)
        n, m = self.shape[-2], self.shape[-1]
        batched = len(self.shape) == 3
        if self.layout == COO:
            rows, cols = _expand(crow, self.nnz, torch.int64), col.to(torch.int64)
            parts = [rows % m, cols % n]
            if batched:
                parts.insert(0, rows // m)
            return (torch.stack(parts),), perm
        dtype = self.index_tensors[0].dtype
        if batched:  # unfold the block-diagonal transpose back into a batch
            b = self.shape[0]
            nnz = self.nnz // b
            batch = torch.arange(b, device=crow.device, dtype=torch.int64)[:, None]
            heads = crow[:-1].to(torch.int64).reshape(b, m) - batch * nnz
            tails = torch.full((b, 1), nnz, dtype=torch.int64, device=crow.device)
            crow = torch.cat([heads, tails], dim=1)
            col = col.to(torch.int64).reshape(b, nnz) - batch * n
        return (crow.to(dtype), col.to(dtype)), perm

    def linear_index(self) -> torch.Tensor:
        """Position of every stored value in the dense ``(b, n, m)`` tensor, flattened."""
        m = self.shape[-1]
        return self.rows.to(torch.int64) * m + torch.remainder(self.cols.to(torch.int64), m)

    def same_structure(self, other: torch.Tensor) -> bool:
        """Whether sparse ``other`` has this pattern's layout, shape and very index tensors."""
        if other.layout != self.layout or tuple(other.shape) != self.shape:
            return False
        if other.layout == COO:
            theirs: tuple[torch.Tensor, ...] = (other._indices(),)
        elif other.layout == CSR:
            theirs = (other.crow_indices(), other.col_indices())
        else:
            theirs = (other.ccol_indices(), other.row_indices())
        return all(
            a.shape == b.shape
            and a.dtype == b.dtype
            and (a.data_ptr() == b.data_ptr() or same_content(a, b))
            for a, b in zip(theirs, self.index_tensors, strict=True)
        )


# ---------------------------------------------------------------------------- kernels
def _matmul_kernel(pattern: Pattern, values: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    crow, col, perm = pattern.kernel_form
    if perm is not None:
        values = values.index_select(0, perm)
    A = torch.sparse_csr_tensor(
        crow, col, values, (pattern.nrows, pattern.ncols), check_invariants=False
    )
    # torch dispatches to MKL (CPU) or cuSPARSE (CUDA) for CSR @ dense; a vector or a single
    # column goes through the matrix-vector kernel, faster than a one-column product.
    if B.dim() == 1:
        return torch.mv(A, B)
    if B.shape[1] == 1:
        return torch.mv(A, B[:, 0]).unsqueeze(1)
    if _MKL_CPU and B.device.type == "cpu" and not _tracks_grad(values, B):
        # ``A @ B`` is addmm(zeros, A, B): it fills an n x k zero matrix and copies it into
        # the result before MKL overwrites it (beta = 0), two passes over the output that
        # cost 20-25% of the product (27-point 50³, k = 16). With the output as its own
        # input, beta = 0 tells MKL not to read it: one pass, same values.
        out = _new_output(B, pattern.nrows)
        return torch.addmm(out, A, B, beta=0.0, out=out)
    return A @ B


# MKL's CSR @ dense kernel never reads the output when beta = 0; torch's fallback kernel
# (builds without MKL) scales it instead, so the empty-output path above needs MKL.
_MKL_CPU = torch.backends.mkl.is_available()


def _new_output(B: torch.Tensor, nrows: int) -> torch.Tensor:
    """The uninitialised ``(nrows, k)`` output of the product (a seam the tests poison)."""
    return B.new_empty((nrows, B.shape[1]))


def apply_function(function: type[torch.autograd.Function], *args: Any) -> Any:
    """``function.apply(*args)``, without binding ``args`` to ``forward``'s signature.

    ``Function.apply`` runs ``inspect.signature(forward).bind`` at every call of a Function
    with a ``setup_context`` (to fill in default arguments): 20-40 µs a call, often more than
    the operation itself on small inputs. tsgu's Functions take positional arguments only,
    without defaults, so the binding changes nothing: they go straight to autograd's own
    ``apply``, except under functorch transforms or torch.compile, which take the usual path.
    """
    if (
        _unwrap_dead_wrappers is None
        or torch._C._are_functorch_transforms_active()
        or torch.compiler.is_compiling()
    ):
        return function.apply(*args)
    # tensors that outlived a functorch transform are unwrapped, as Function.apply does
    args = _unwrap_dead_wrappers(args)
    return super(torch.autograd.Function, function).apply(*args)  # type: ignore[misc]


def _tracks_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd would record an op on ``tensors`` (``out=`` ops refuse that)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _sampled_kernel(pattern: Pattern, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    if U.dim() == 1 or U.shape[1] == 1:
        # Vectors or one column (a matrix-vector product's gradient): one product per entry,
        # the same bits as sampled_addmm's, which takes about 5x as long for it on the CPU
        # (0.48 against 0.1 ms for the 1-D Laplacian of N = 32,768). The product goes into
        # the first gather's fresh buffer: one allocation and one pass fewer.
        u, v = (U, V) if U.dim() == 1 else (U[:, 0], V[:, 0])
        return u.index_select(0, pattern.rows).mul_(v.index_select(0, pattern.cols))
    crow, transposed = pattern.crow, pattern._transposed
    if crow is None and transposed is not None and transposed.crow is not None:
        # Column-major order (CSC): the transpose is row-major, and <U[r], V[c]> is symmetric.
        return _sampled_kernel(transposed, V, U)
    if crow is not None and U.dtype in (torch.float32, torch.float64):
        # sampled_addmm computes U @ V.T at the pattern only, without nnz x k intermediates.
        mask = torch.sparse_csr_tensor(
            crow,
            pattern.cols,
            U.new_zeros(pattern.nnz),
            (pattern.nrows, pattern.ncols),
            check_invariants=False,
        )
        return torch.sparse.sampled_addmm(mask, U, V.mT, beta=0.0).values()
    return _sampled_by_gather(pattern.rows, pattern.cols, U, V)


def _sampled_by_gather(
    rows: torch.Tensor, cols: torch.Tensor, U: torch.Tensor, V: torch.Tensor
) -> torch.Tensor:
    nnz, k = rows.numel(), U.shape[1]
    out = U.new_empty(nnz)
    chunk = max(1, _GATHER_CHUNK_BYTES // max(1, k * U.element_size()))
    # A loop over a few memory-bounded chunks, not over entries.
    for start in range(0, nnz, chunk):
        stop = min(start + chunk, nnz)
        gathered = U.index_select(0, rows[start:stop])
        gathered.mul_(V.index_select(0, cols[start:stop]))
        torch.sum(gathered, dim=1, out=out[start:stop])
    return out


# -------------------------------------------------------------------- autograd ops
class _PatternMatmul(torch.autograd.Function):
    @staticmethod
    def forward(pattern: Pattern, values: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return _matmul_kernel(pattern, values, B)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, values, B = inputs
        ctx.pattern = pattern
        ctx.save_for_backward(values, B)

    @staticmethod
    def backward(
        ctx: Any, grad_C: torch.Tensor
    ) -> tuple[None, torch.Tensor | None, torch.Tensor | None]:
        values, B = ctx.saved_tensors
        grad_values = grad_B = None
        if ctx.needs_input_grad[1]:
            grad_values = sampled_product(ctx.pattern, grad_C, B)
        if ctx.needs_input_grad[2]:
            grad_B = pattern_matmul(ctx.pattern.t, values, grad_C)
        return None, grad_values, grad_B


class _SampledProduct(torch.autograd.Function):
    @staticmethod
    def forward(pattern: Pattern, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return _sampled_kernel(pattern, U, V)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pattern, U, V = inputs
        ctx.pattern = pattern
        ctx.save_for_backward(U, V)

    @staticmethod
    def backward(
        ctx: Any, grad_values: torch.Tensor
    ) -> tuple[None, torch.Tensor | None, torch.Tensor | None]:
        U, V = ctx.saved_tensors
        grad_U = grad_V = None
        if ctx.needs_input_grad[1]:
            grad_U = pattern_matmul(ctx.pattern, grad_values, V)
        if ctx.needs_input_grad[2]:
            grad_V = pattern_matmul(ctx.pattern.t, grad_values, U)
        return None, grad_U, grad_V


def pattern_matmul(pattern: Pattern, values: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` for the folded matrix ``A`` with ``values`` at ``pattern``; B is 2D, or 1D
    (a vector: then so is the result).

    Differentiable in ``values`` and ``B``, to any order: its backward is
    :func:`sampled_product` (for the values) and itself on the transposed pattern (for B).

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import Pattern, pattern_matmul
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
    >>> pattern_matmul(Pattern.of(A), torch.tensor([1.0, 1.0, 1.0]), torch.eye(2))
    tensor([[1., 0.],
            [1., 1.]])
    """
    if not _tracks_grad(values, B):  # nothing to record: the kernel, without autograd's cost
        return _matmul_kernel(pattern, values, B)
    out: torch.Tensor = apply_function(_PatternMatmul, pattern, values, B)
    return out


def sampled_product(pattern: Pattern, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """``(U @ V.T)[row_k, col_k]`` for every stored entry k of ``pattern``; U, V are 2D, or
    both 1D (vectors: ``U[row_k] * V[col_k]``).

    Differentiable in ``U`` and ``V``, to any order. O(nnz) memory beyond the output. This
    is the sparse gradient of every product and solve: for ``C = A @ B``,
    ``grad_values = sampled_product(pattern, grad_C, B)``.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import Pattern, sampled_product
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
    >>> U, V = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]])
    >>> sampled_product(Pattern.of(A), U, V)  # (U Vᵀ) at (0, 0), (1, 0), (1, 1)
    tensor([3., 6., 8.])
    """
    if not _tracks_grad(U, V):
        return _sampled_kernel(pattern, U, V)
    out: torch.Tensor = apply_function(_SampledProduct, pattern, U, V)
    return out


# ------------------------------------------------ between sparse tensors and values
def stored_values(A: torch.Tensor) -> torch.Tensor:
    """The values tensor sparse ``A`` stores (COO, CSR or CSC), as it is: no copy, no
    coalescing, and no autograd bridge (see :func:`values_of` for a differentiable one).

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import stored_values
    >>> stored_values(torch.tensor([[0.0, 2.0], [3.0, 0.0]]).to_sparse())
    tensor([2., 3.])
    """
    return A._values() if A.layout == COO else A.values()


_raw_values = stored_values


def _build(pattern: Pattern, values: torch.Tensor) -> torch.Tensor:
    """A sparse tensor with the pattern's layout and index tensors holding ``values`` (no grad)."""
    values = values.reshape(pattern.values_shape)
    if pattern.layout == COO:
        (indices,) = pattern.index_tensors
        return torch.sparse_coo_tensor(
            indices, values, pattern.shape, is_coalesced=pattern.is_coalesced
        )
    compressed, plain = pattern.index_tensors
    build = torch.sparse_csr_tensor if pattern.layout == CSR else torch.sparse_csc_tensor
    return build(compressed, plain, values, pattern.shape, check_invariants=False)


def gather_at_pattern(pattern: Pattern, grad: torch.Tensor) -> torch.Tensor:
    """The entries of ``grad`` (dense, or sparse of any pattern) at ``pattern``, in its order.

    Entries that ``grad`` does not store are zero. Never densifies a sparse ``grad``.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import Pattern, gather_at_pattern
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
    >>> gather_at_pattern(Pattern.of(A), torch.tensor([[10.0, 20.0], [30.0, 40.0]]))
    tensor([10., 30., 40.])
    """
    if grad.layout == torch.strided:
        return grad.reshape(-1).index_select(0, pattern.linear_index())
    if pattern.same_structure(grad):
        return values_of(grad, pattern)
    # A sparse gradient with another pattern: look our entries up among its (sorted) keys.
    coo = grad if grad.layout == COO else grad.to_sparse_coo()
    coo = coo.coalesce()
    theirs = coo._indices()
    m, n = pattern.shape[-1], pattern.shape[-2]
    keys = theirs[-2] * m + theirs[-1]
    if theirs.shape[0] == 3:
        keys = keys + theirs[0] * (n * m)
    vals = coo._values()
    if keys.numel() == 0:
        return vals.new_zeros(pattern.nnz)
    ours = pattern.linear_index()
    where = torch.searchsorted(keys, ours).clamp_(max=keys.numel() - 1)
    hit = keys.index_select(0, where) == ours
    return torch.where(hit, vals.index_select(0, where), vals.new_zeros(()))


class _ValuesOf(torch.autograd.Function):
    @staticmethod
    def forward(A: torch.Tensor, pattern: Pattern) -> torch.Tensor:
        return _raw_values(A).reshape(-1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.pattern = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad_values: torch.Tensor) -> tuple[torch.Tensor, None]:
        return from_values(ctx.pattern, grad_values), None


class _FromValues(torch.autograd.Function):
    @staticmethod
    def forward(pattern: Pattern, values: torch.Tensor) -> torch.Tensor:
        return _build(pattern, values)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.pattern = inputs[0]
        ctx.values_shape = inputs[1].shape

    @staticmethod
    def backward(ctx: Any, grad_A: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, gather_at_pattern(ctx.pattern, grad_A).reshape(ctx.values_shape)


def values_of(A: torch.Tensor, pattern: Pattern | None = None) -> torch.Tensor:
    """The values of sparse ``A`` as a flat vector in its stored order, differentiable.

    The gradient that flows back to ``A`` is sparse, with A's layout and index tensors.
    ``pattern`` (``Pattern.of(A)``) is built here when not given and a gradient is needed.
    When A was built by :func:`from_values` (tsgu's constructors), its values tensor is
    returned directly: gradients then meet on the dense values, never as sparse tensors
    (torch 2.13 corrupts the sum of two batched CSR gradients), and two Functions are saved.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import values_of
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr().requires_grad_()
    >>> (values_of(A) ** 2).sum().backward()
    >>> A.grad  # sparse, with A's layout and indices
    tensor(crow_indices=tensor([0, 1, 3]),
           col_indices=tensor([0, 0, 1]),
           values=tensor([4., 2., 6.]), size=(2, 2), nnz=3, layout=torch.sparse_csr)
    """
    source: torch.Tensor | None = getattr(A, "_tsgu_values", None)
    if source is not None:
        # a view even when flat already: torch's AccumulateGrad takes a gradient that only
        # this view's node holds as it is, where it would copy the caller's own tensor
        return source.reshape(-1)
    if not (A.requires_grad and torch.is_grad_enabled()):
        return _raw_values(A).reshape(-1)
    if pattern is None:
        pattern = Pattern.of(A)
    out: torch.Tensor = apply_function(_ValuesOf, A, pattern)
    return out


def from_values(pattern: Pattern, values: torch.Tensor) -> torch.Tensor:
    """A sparse tensor with ``pattern``'s layout and indices holding ``values``, differentiable.

    Its backward hands a same-pattern sparse gradient's values straight through and gathers
    any other gradient at the pattern: O(nnz), never dense.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import Pattern, from_values
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
    >>> from_values(Pattern.of(A), torch.tensor([5.0, 6.0, 7.0])).to_dense()
    tensor([[5., 0.],
            [6., 7.]])
    """
    if not values.requires_grad:
        return _build(pattern, values)
    if not torch.is_grad_enabled():  # no graph to record (Function.apply costs ~40 µs)
        out = _build(pattern, values.detach())
    else:
        out = apply_function(_FromValues, pattern, values)
    out._tsgu_values = values  # type: ignore[attr-defined]  # read by values_of
    return out


def attach_values(raw: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Sparse ``raw``, built from ``values.detach()``, wired to ``values`` for autograd.

    The one way tsgu builds a sparse tensor from values that may require grad: torch's CSR
    and CSC constructors densify the gradient in their backward.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core.extend import attach_values
    >>> values = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> crow, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
    >>> A = attach_values(torch.sparse_csr_tensor(crow, col, values.detach(), (2, 2)), values)
    >>> import tsgu.core as tc
    >>> tc.sparse_mm(A, torch.tensor([[1.0], [10.0]])).sum().backward()
    >>> values.grad  # O(nnz): the gradient of each stored value
    tensor([10.,  1.])
    """
    if not values.requires_grad:
        return raw
    if not torch.is_grad_enabled():  # as from_values does without a graph: no pattern needed
        raw._tsgu_values = values  # type: ignore[attr-defined]  # read by values_of
        return raw
    return from_values(Pattern.of(raw), values)


def transpose(A: torch.Tensor, pattern: Pattern | None = None) -> torch.Tensor:
    """``A.mT`` in A's own layout (COO stays COO, CSR stays CSR), differentiable in O(nnz).

    COO swaps its index rows (no reordering) when A is uncoalesced; a coalesced COO A and a
    CSR A have their values reordered by a stable sort of the column indices, so the result
    is coalesced (row-major) too; CSR keeps A's index dtype. ``pattern`` (A's, e.g. a cached
    one that remembers its sort) is made here when not given.
    """
    if pattern is None:
        pattern = Pattern.of(A)
    values = values_of(A, pattern)
    shape = (*A.shape[:-2], A.shape[-1], A.shape[-2])
    if A.layout == COO and A.is_coalesced():
        (indices,), perm = pattern.transposed_indices
        values = values.index_select(0, perm)
        raw = torch.sparse_coo_tensor(indices, values.detach(), shape, is_coalesced=True)
        return attach_values(raw, values)
    if A.layout == COO:
        indices = A._indices()
        swapped = torch.cat([indices[:-2], indices[-1:], indices[-2:-1]])
        raw = torch.sparse_coo_tensor(swapped, values.detach(), shape)
        return attach_values(raw, values)
    if A.layout != CSR:
        raise TypeError(
            f"transpose: A must be a sparse COO or CSR tensor, got layout {A.layout}; "
            "convert with A.to_sparse_csr()"
        )
    (crow, col), perm = pattern.transposed_indices
    values = values.index_select(0, perm).reshape(col.shape)
    raw = torch.sparse_csr_tensor(crow, col, values.detach(), shape, check_invariants=False)
    return attach_values(raw, values)
