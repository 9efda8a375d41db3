"""torch <-> JAX exchange: dense arrays through DLPack, sparse matrices as BCSR / BCOO.

Memory is shared wherever DLPack allows: a contiguous, aligned torch tensor and the JAX
array made from it are one buffer on one device (and the other way round). JAX treats its
arrays as immutable: writing in place into a shared torch tensor changes the JAX array too,
so clone first when either side will be modified.
"""

from __future__ import annotations

import jax
import torch
from jax.experimental import sparse as jsparse

from tsgu.core.validation import COO, CSR, check_dense, check_sparse

from ._validate import check_jax_array, check_jax_sparse, checked_torch_sparse, index_dtype_for
from ._x64 import require_x64_for, x64_enabled

__all__ = ["j2t", "j2t_coo", "j2t_csr", "t2j", "t2j_coo", "t2j_csr"]


def _to_jax(fn: str, name: str, x: torch.Tensor) -> jax.Array:
    """DLPack export of a dense tensor (detached, made contiguous), 64-bit mode checked."""
    require_x64_for(fn, name, x.dtype)
    x = x.detach()
    if not x.is_contiguous():
        x = x.contiguous()  # DLPack consumers other than torch expect row-major buffers
    try:
        return jax.dlpack.from_dlpack(x)
    except Exception as err:  # JAX lacks the device (CUDA without jax[cuda]) or the dtype
        raise ValueError(
            f"{fn}: JAX cannot take {name} (dtype {x.dtype} on {x.device}): {err}; "
            "cast it to a dtype JAX supports, or, for a GPU tensor, install the jax build "
            "for that device (e.g. jax[cuda12])"
        ) from err


def _to_torch(x: jax.Array) -> torch.Tensor:
    return torch.from_dlpack(x)


def _index(fn: str, name: str, idx: torch.Tensor, *extents: int) -> torch.Tensor:
    """Index tensor ``idx`` in a dtype JAX holds: kept when it can be, else int32."""
    if idx.dtype == torch.int32 or (idx.dtype == torch.int64 and x64_enabled()):
        return idx
    return idx.to(index_dtype_for(fn, name, *extents))


def t2j(x: torch.Tensor) -> jax.Array:
    """A dense torch tensor as a JAX array on the same device, sharing its memory.

    Parameters
    ----------
    x : torch.Tensor
        Dense (strided) tensor of any shape. A tensor that requires grad is detached.

    Returns
    -------
    jax.Array
        The same numbers, dtype and device. Zero-copy (DLPack) when ``x`` is contiguous and
        its data aligned as XLA needs (torch's own allocations are); otherwise a copy.

    Raises
    ------
    TypeError
        ``x`` is not a tensor, or is sparse (use :func:`t2j_csr` / :func:`t2j_coo`).
    ValueError
        ``x`` is 64-bit (float64, int64, complex128) while JAX's 64-bit mode is off (JAX
        would silently downcast it; the message says how to enable the mode), or JAX has
        no device for ``x``.

    Notes
    -----
    JAX arrays are immutable; a torch tensor that shares memory with one must not be
    modified in place while the JAX array is in use. JAX's 64-bit mode is the caller's to
    switch on.

    Examples
    --------
    >>> import torch
    >>> from tsgu.jax import t2j
    >>> x = torch.arange(4, dtype=torch.float32)
    >>> t2j(x)
    Array([0., 1., 2., 3.], dtype=float32)
    >>> t2j(x).unsafe_buffer_pointer() == x.data_ptr()  # one buffer
    True
    """
    fn = "t2j"
    x = check_dense(fn, "x", x, dims=range(0, 64))
    return _to_jax(fn, "x", x)


def j2t(x: jax.Array) -> torch.Tensor:
    """A dense JAX array as a torch tensor on the same device, sharing its memory.

    Parameters
    ----------
    x : jax.Array
        Dense array (not a BCOO/BCSR: use :func:`j2t_coo` / :func:`j2t_csr`).

    Returns
    -------
    torch.Tensor
        The same numbers, dtype and device, through DLPack (zero-copy).

    Raises
    ------
    TypeError
        ``x`` is not a dense ``jax.Array``.

    Notes
    -----
    The tensor views JAX's buffer: do not modify it in place (JAX assumes its arrays never
    change); ``j2t(x).clone()`` gives a tensor of your own.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from tsgu.jax import j2t
    >>> y = jnp.arange(3.0)
    >>> j2t(y)
    tensor([0., 1., 2.])
    >>> j2t(y).data_ptr() == y.unsafe_buffer_pointer()
    True
    """
    x = check_jax_array("j2t", "x", x)
    return _to_torch(x)


def t2j_csr(A: torch.Tensor) -> jsparse.BCSR:
    """A torch sparse CSR matrix (or batch of them) as a ``jax.experimental.sparse.BCSR``.

    Parameters
    ----------
    A : torch.Tensor
        Sparse CSR ``(n, m)``, or batched ``(b, n, m)`` (a BCSR with ``n_batch=1``).

    Returns
    -------
    jax.experimental.sparse.BCSR
        Same shape; ``data``, ``indices`` and ``indptr`` share A's values, column indices
        and row pointers through DLPack. int32 indices stay int32; int64 stay int64 in
        64-bit mode and become int32 (a copy) otherwise.

    Raises
    ------
    TypeError
        ``A`` is not a sparse CSR tensor.
    ValueError
        ``A`` is hybrid or not 2D/3D; float64 values with JAX's 64-bit mode off.

    Examples
    --------
    >>> import torch
    >>> from tsgu.jax import t2j_csr
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr()
    >>> M = t2j_csr(A)
    >>> M.todense()
    Array([[2., 0.],
           [1., 3.]], dtype=float32)
    """
    fn = "t2j_csr"
    A = check_sparse(fn, "A", A, layouts=(CSR,), dims=(2, 3))
    require_x64_for(fn, "A", A.dtype)
    nnz = A.col_indices().shape[-1]
    crow = _index(fn, "A", A.crow_indices(), nnz, A.shape[-1])
    col = _index(fn, "A", A.col_indices(), nnz, A.shape[-1])
    if col.dtype != crow.dtype:  # pragma: no cover - torch keeps one index dtype
        col = col.to(crow.dtype)
    data = _to_jax(fn, "A's values", A.values())
    return jsparse.BCSR((data, _to_jax(fn, "A", col), _to_jax(fn, "A", crow)), shape=tuple(A.shape))


def j2t_csr(M: jsparse.BCSR) -> torch.Tensor:
    """A ``jax.experimental.sparse.BCSR`` matrix as a torch sparse CSR tensor.

    Parameters
    ----------
    M : jax.experimental.sparse.BCSR
        ``(n, m)``, or ``(b, n, m)`` with ``n_batch=1``; scalar values (``n_dense=0``).

    Returns
    -------
    torch.Tensor
        Sparse CSR with M's shape; values and indices share M's buffers through DLPack
        (zero-copy; padding past the last row pointer is left out as a view).

    Raises
    ------
    TypeError
        ``M`` is not a BCSR matrix.
    ValueError
        ``M`` has dense dimensions or is not 2D/3D; a batch whose items hold different
        numbers of entries (torch's batched CSR needs equal counts).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from jax.experimental import sparse
    >>> from tsgu.jax import j2t_csr
    >>> A = j2t_csr(sparse.BCSR.fromdense(jnp.array([[2.0, 0.0], [1.0, 3.0]])))
    >>> A.crow_indices()
    tensor([0, 1, 3], dtype=torch.int32)
    >>> A.col_indices(), A.values()
    (tensor([0, 0, 1], dtype=torch.int32), tensor([2., 1., 3.]))
    """
    fn = "j2t_csr"
    M = check_jax_sparse(fn, "M", M, jsparse.BCSR)
    crow, col, data = _to_torch(M.indptr), _to_torch(M.indices), _to_torch(M.data)
    last = crow[..., -1]
    nse = col.shape[-1]
    if bool((last != nse).any()):  # padding after the last row's entries
        if M.ndim == 3 and not bool((last == last[0]).all()):
            raise ValueError(
                f"{fn}: M's batch items hold different numbers of entries "
                f"({last.tolist()}); torch's batched CSR needs one count for every item"
            )
        count = int(last.reshape(-1)[0])
        col, data = col[..., :count], data[..., :count]
    if col.dtype != crow.dtype:
        col = col.to(crow.dtype)
    return checked_torch_sparse(
        fn, "M", torch.sparse_csr_tensor(crow, col, data, tuple(M.shape), check_invariants=False)
    )


def t2j_coo(A: torch.Tensor) -> jsparse.BCOO:
    """A torch sparse COO tensor as a ``jax.experimental.sparse.BCOO``.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO ``(n, m)`` or ``(b, n, m)`` (all dimensions sparse), coalesced or not.

    Returns
    -------
    jax.experimental.sparse.BCOO
        Same shape, ``n_batch=0``; ``data`` shares A's values (DLPack). The indices are a
        copy: torch stores them ``(ndim, nnz)``, BCOO ``(nnz, ndim)``; they are int64 in
        JAX's 64-bit mode and int32 otherwise. A coalesced A gives
        ``indices_sorted=unique_indices=True``; an uncoalesced one is passed as it is
        (repeated positions add up in every BCOO operation).

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO tensor.
    ValueError
        ``A`` is hybrid or not 2D/3D; float64 values with JAX's 64-bit mode off.

    Notes
    -----
    Nothing is reordered and no private JAX API is used.

    Examples
    --------
    >>> import torch
    >>> from tsgu.jax import t2j_coo
    >>> A = torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse()
    >>> M = t2j_coo(A)
    >>> M.indices.tolist(), M.indices_sorted
    ([[0, 0], [1, 0], [1, 1]], True)
    """
    fn = "t2j_coo"
    A = check_sparse(fn, "A", A, layouts=(COO,), dims=(2, 3))
    require_x64_for(fn, "A", A.dtype)
    coalesced = A.is_coalesced()
    indices, values = A._indices(), A._values()
    dtype = torch.int64 if x64_enabled() else index_dtype_for(fn, "A", *A.shape)
    flat = indices.T.to(dtype).contiguous()
    return jsparse.BCOO(
        (_to_jax(fn, "A's values", values), _to_jax(fn, "A", flat)),
        shape=tuple(A.shape),
        indices_sorted=coalesced,
        unique_indices=coalesced,
    )


def j2t_coo(M: jsparse.BCOO) -> torch.Tensor:
    """A ``jax.experimental.sparse.BCOO`` matrix as a torch sparse COO tensor.

    Parameters
    ----------
    M : jax.experimental.sparse.BCOO
        2D or 3D with scalar values (``n_dense=0``); batch dimensions (``n_batch > 0``)
        are unfolded with the public ``M.update_layout(n_batch=0)``.

    Returns
    -------
    torch.Tensor
        Sparse COO with M's shape; its values share M's data (DLPack) unless padding or
        batch dimensions had to be removed. Indices become int64 (torch COO's only index
        dtype). Marked coalesced when M's indices are sorted and unique.

    Raises
    ------
    TypeError
        ``M`` is not a BCOO matrix.
    ValueError
        ``M`` has dense dimensions or is not 2D/3D.

    Notes
    -----
    BCOO pads with entries whose indices lie out of bounds; those are dropped.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from jax.experimental import sparse
    >>> from tsgu.jax import j2t_coo
    >>> A = j2t_coo(sparse.BCOO.fromdense(jnp.array([[2.0, 0.0], [1.0, 3.0]])))
    >>> A.to_dense()
    tensor([[2., 0.],
            [1., 3.]])
    """
    fn = "j2t_coo"
    M = check_jax_sparse(fn, "M", M, jsparse.BCOO)
    if M.n_batch:
        M = M.update_layout(n_batch=0)
    indices = _to_torch(M.indices).T
    values = _to_torch(M.data)
    shape = torch.tensor(M.shape, dtype=indices.dtype, device=indices.device)[:, None]
    inside = (indices < shape).all(0)
    if not bool(inside.all()):
        indices, values = indices[:, inside], values[inside]
    coalesced = bool(M.indices_sorted and M.unique_indices)
    return checked_torch_sparse(
        fn,
        "M",
        torch.sparse_coo_tensor(
            indices.to(torch.int64), values, tuple(M.shape), is_coalesced=coalesced
        ),
    )
