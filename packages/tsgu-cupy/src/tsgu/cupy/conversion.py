"""torch sparse <-> SciPy (CPU) / CuPy (CUDA) sparse, sharing memory where the formats allow.

On the CPU the SciPy matrix holds NumPy views of the tensor's own buffers (values, and
indices of either dtype); on CUDA the arrays cross by DLPack. What cannot be shared is
copied: a torch COO tensor keeps its row and column indices in one ``(2, nnz)`` int64
tensor, so ``c2t_coo`` stacks SciPy's separate arrays; cupyx's sparse matrices hold only
int32 indices, so int64 indices are narrowed on the way to CuPy.
"""

from __future__ import annotations

import warnings
from typing import Any

import scipy.sparse
import torch

from tsgu.core.validation import COO, CSR, check_sparse

from ._backend import Backend, backend_for, is_backend_sparse

__all__ = ["c2t_coo", "c2t_csr", "t2c_coo", "t2c_csr"]

# Value dtypes that NumPy and CuPy share with torch.
_ARRAY_DTYPES = (
    torch.float16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.uint8,
    torch.bool,
)


def _check_torch(fn: str, x: object, layout: torch.layout) -> torch.Tensor:
    t = check_sparse(fn, "x", x, layouts=(layout,), dims=(2,))
    if t.dtype not in _ARRAY_DTYPES:
        raise ValueError(
            f"{fn}: x must have a dtype that NumPy and CuPy share, got {t.dtype}; "
            "cast it first, e.g. x.to(torch.float32)"
        )
    return t


# --------------------------------------------------------------------- torch -> backend
def _scipy_csr(shape: tuple[int, int], data: Any, indices: Any, indptr: Any) -> Any:
    """A SciPy csr_matrix over these very arrays (SciPy's constructor narrows int64 indices)."""
    m = scipy.sparse.csr_matrix(shape, dtype=data.dtype)
    m.data, m.indices, m.indptr = data, indices, indptr
    # Drop the flags cached for the empty matrix: SciPy then checks sortedness when it needs it.
    m.__dict__.pop("_has_sorted_indices", None)
    m.__dict__.pop("_has_canonical_format", None)
    m.check_format(full_check=False)
    return m


def backend_csr(backend: Backend, A: torch.Tensor) -> Any:
    """CSR ``A`` as the backend's csr_matrix, sharing memory (no checks, no warnings)."""
    data = backend.array(A.values())
    indices = backend.array(A.col_indices())
    indptr = backend.array(A.crow_indices())
    shape = (A.shape[0], A.shape[1])
    if backend.is_cuda:
        return backend.sparse.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    return _scipy_csr(shape, data, indices, indptr)


def backend_coo(backend: Backend, A: torch.Tensor) -> Any:
    """COO ``A`` (duplicates kept) as the backend's coo_matrix, sharing memory where it can."""
    indices = A._indices()
    data = backend.array(A._values())
    row, col = backend.array(indices[0]), backend.array(indices[1])
    shape = (A.shape[0], A.shape[1])
    if backend.is_cuda:
        m = backend.sparse.coo_matrix((data, (row, col)), shape=shape)
    else:
        m = scipy.sparse.coo_matrix(shape, dtype=data.dtype)
        m.coords, m.data = (row, col), data  # SciPy's constructor narrows int64 indices
    m.has_canonical_format = bool(A.is_coalesced())  # both mean: row-major, no duplicates
    return m


def t2c_csr(x: torch.Tensor) -> Any:
    """A torch sparse CSR matrix as a SciPy (CPU) or CuPy (CUDA) ``csr_matrix``.

    Parameters
    ----------
    x : torch.Tensor
        Sparse CSR ``(n, m)``, on the CPU or a CUDA device.

    Returns
    -------
    scipy.sparse.csr_matrix or cupyx.scipy.sparse.csr_matrix
        The same matrix. On the CPU its ``data``, ``indices`` and ``indptr`` are NumPy
        views of x's values and indices (no copy; int32 and int64 indices are both kept),
        so writing to one writes to the other. On CUDA they come through DLPack; cupyx
        holds int32 indices only, so int64 indices are narrowed (a copy).

    Raises
    ------
    TypeError
        ``x`` is not a sparse CSR tensor.
    ValueError
        ``x`` is not 2D, has a dtype NumPy does not share (bfloat16), or lives on a
        device other than CPU or CUDA.
    ImportError
        ``x`` is on CUDA and CuPy is not installed.

    Notes
    -----
    Gradients do not flow through the conversion (``x`` is detached).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from tsgu.cupy import t2c_csr
    >>> x = torch.tensor([[1.0, 0.0], [2.0, 3.0]]).to_sparse_csr()
    >>> X = t2c_csr(x)
    >>> X.toarray()
    array([[1., 0.],
           [2., 3.]], dtype=float32)
    >>> np.shares_memory(X.data, x.values().numpy())
    True
    """
    fn = "t2c_csr"
    x = _check_torch(fn, x, CSR)
    backend = backend_for(fn, x.device)
    with backend.context():
        return backend_csr(backend, x)


def t2c_coo(x: torch.Tensor) -> Any:
    """A torch sparse COO matrix as a SciPy (CPU) or CuPy (CUDA) ``coo_matrix``.

    Parameters
    ----------
    x : torch.Tensor
        Sparse COO ``(n, m)``, on the CPU or a CUDA device. An uncoalesced tensor is
        coalesced first, with a ``UserWarning``.

    Returns
    -------
    scipy.sparse.coo_matrix or cupyx.scipy.sparse.coo_matrix
        The same matrix, in canonical format (``has_canonical_format`` is True). On the
        CPU ``row``, ``col`` and ``data`` are NumPy views of x's (coalesced) indices and
        values, int64 as torch keeps them; on CUDA, DLPack (cupyx narrows indices to int32).

    Raises
    ------
    TypeError
        ``x`` is not a sparse COO tensor.
    ValueError
        ``x`` is not 2D, has a dtype NumPy does not share, or lives on a device other
        than CPU or CUDA.
    ImportError
        ``x`` is on CUDA and CuPy is not installed.

    Warns
    -----
    UserWarning
        ``x`` is not coalesced (repeated positions are summed in a copy).

    Examples
    --------
    >>> import torch
    >>> from tsgu.cupy import t2c_coo
    >>> x = torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.tensor([2.0, 3.0]),
    ...                             (2, 2)).coalesce()
    >>> X = t2c_coo(x)
    >>> X.row, X.col, X.data
    (array([0, 1]), array([1, 0]), array([2., 3.], dtype=float32))
    """
    fn = "t2c_coo"
    x = _check_torch(fn, x, COO)
    if not x.is_coalesced():
        warnings.warn(
            f"{fn}: x is not coalesced; converting x.coalesce() (a copy with repeated "
            "positions summed)",
            UserWarning,
            stacklevel=2,
        )
        x = x.detach().coalesce()
    backend = backend_for(fn, x.device)
    with backend.context():
        return backend_coo(backend, x)


# --------------------------------------------------------------------- backend -> torch
def _check_backend(fn: str, X: object, fmt: str) -> Any:
    if not is_backend_sparse(X):
        raise TypeError(f"{fn}: X must be a SciPy or CuPy sparse matrix, got {type(X).__name__}")
    got = getattr(X, "format", "?")
    if got != fmt:
        raise TypeError(
            f"{fn}: X must be in {fmt.upper()} format, got {got.upper()}; "
            f"convert it with X.to{fmt}()"
        )
    if len(X.shape) != 2:  # type: ignore[attr-defined]
        raise ValueError(
            f"{fn}: X must be 2D, got shape {tuple(X.shape)}"  # type: ignore[attr-defined]
        )
    return X


def _backend_of(fn: str, X: Any) -> Backend:
    if scipy.sparse.issparse(X):
        return backend_for(fn, torch.device("cpu"))
    index = int(X.data.device.id)
    return backend_for(fn, torch.device("cuda", index))


def _index_pair(backend: Backend, a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Two index arrays as tensors of one dtype (the wider one when they differ)."""
    ta, tb = backend.tensor(a), backend.tensor(b)
    if ta.dtype != tb.dtype or ta.dtype not in (torch.int32, torch.int64):
        ta, tb = ta.to(torch.int64), tb.to(torch.int64)
    return ta, tb


def c2t_csr(X: Any) -> torch.Tensor:
    """A SciPy or CuPy CSR matrix as a torch sparse CSR tensor.

    Parameters
    ----------
    X : scipy.sparse CSR matrix/array or cupyx.scipy.sparse.csr_matrix
        2D. One with unsorted or repeated column indices is put in canonical form first
        (a copy, with a ``UserWarning``): torch's CSR format needs sorted, unique columns.

    Returns
    -------
    torch.Tensor
        Sparse CSR on the CPU (SciPy) or X's CUDA device (CuPy), with X's shape, dtype and
        index dtype; values and indices share X's memory (``torch.from_numpy`` / DLPack).

    Raises
    ------
    TypeError
        ``X`` is not a SciPy/CuPy sparse matrix, or not in CSR format.
    ValueError
        ``X`` is not 2D.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from tsgu.cupy import c2t_csr
    >>> x = c2t_csr(sp.csr_matrix([[0.0, 1.0], [2.0, 0.0]]))
    >>> x.layout, x.crow_indices().dtype
    (torch.sparse_csr, torch.int32)
    >>> x.to_dense()
    tensor([[0., 1.],
            [2., 0.]], dtype=torch.float64)
    """
    fn = "c2t_csr"
    X = _check_backend(fn, X, "csr")
    if not X.has_canonical_format:
        warnings.warn(
            f"{fn}: X has unsorted or repeated column indices; converting a canonical copy "
            "(X.copy() with X.sum_duplicates())",
            UserWarning,
            stacklevel=2,
        )
        X = X.copy()
        X.sum_duplicates()
    backend = _backend_of(fn, X)
    with backend.context():
        crow, col = _index_pair(backend, X.indptr, X.indices)
        values = backend.tensor(X.data)
    return torch.sparse_csr_tensor(crow, col, values, tuple(X.shape))


def c2t_coo(X: Any) -> torch.Tensor:
    """A SciPy or CuPy COO matrix as a torch sparse COO tensor.

    Parameters
    ----------
    X : scipy.sparse COO matrix/array or cupyx.scipy.sparse.coo_matrix
        2D; repeated positions are kept (torch sums them when coalescing).

    Returns
    -------
    torch.Tensor
        Sparse COO on the CPU (SciPy) or X's CUDA device (CuPy), with X's shape and dtype;
        the values share X's memory. Its indices are int64, the only index dtype torch's
        COO layout has (a copy: torch keeps rows and columns in one ``(2, nnz)`` tensor).
        It is marked coalesced when X is in canonical format.

    Raises
    ------
    TypeError
        ``X`` is not a SciPy/CuPy sparse matrix, or not in COO format.
    ValueError
        ``X`` is not 2D.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from tsgu.cupy import c2t_coo
    >>> x = c2t_coo(sp.coo_matrix(np.array([[0.0, 1.0], [2.0, 0.0]])))
    >>> x.layout, x.indices().dtype
    (torch.sparse_coo, torch.int64)
    >>> x.to_dense()
    tensor([[0., 1.],
            [2., 0.]], dtype=torch.float64)
    """
    fn = "c2t_coo"
    X = _check_backend(fn, X, "coo")
    backend = _backend_of(fn, X)
    with backend.context():
        row, col = backend.tensor(X.row), backend.tensor(X.col)
        values = backend.tensor(X.data)
    indices = torch.stack([row.to(torch.int64), col.to(torch.int64)])
    coalesced = bool(getattr(X, "has_canonical_format", False))
    return torch.sparse_coo_tensor(indices, values, tuple(X.shape), is_coalesced=coalesced)
