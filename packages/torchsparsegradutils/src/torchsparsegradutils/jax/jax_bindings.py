"""0.2's ``torchsparsegradutils.jax.jax_bindings``: tsgu.jax's conversions, 0.2's conventions.

Where 0.2 and tsgu.jax differ, these functions keep 0.2's behaviour:

- ``t2j_csr`` / ``t2j_coo`` of a 2D tensor return 0.2's ``jax.experimental.sparse.CSR`` /
  ``COO`` (tsgu.jax returns ``BCSR`` / ``BCOO``; batched tensors, which 0.2 did not
  convert, still do); ``j2t_csr`` / ``j2t_coo`` accept both families.
- With JAX's 64-bit mode off, a 64-bit tensor is converted at 32 bits, as 0.2 (through
  JAX) did, but with a warning that says what was lost; tsgu.jax refuses it instead.
  An int64 tensor whose values do not fit in int32 raises rather than wrap.
- ``t2j_coo`` coalesces an uncoalesced tensor first, with a warning, as 0.2 did.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import torch
from jax.experimental import sparse as jsparse

from ._tsgu_jax import tsgu_jax

__all__ = ["j2t", "j2t_coo", "j2t_csr", "spmm_t4j", "t2j", "t2j_coo", "t2j_csr"]

j2t = tsgu_jax.j2t
spmm_t4j = tsgu_jax.spmm_t4j

# what a 64-bit dtype becomes without JAX's 64-bit mode, and what that costs
_AT_32_BITS = {
    torch.float64: (torch.float32, "about 7 significant digits instead of 16"),
    torch.complex128: (torch.complex64, "about 7 significant digits instead of 16"),
    torch.int64: (torch.int32, "the range beyond +-2**31"),
}


def _x64_off() -> bool:
    return not bool(jax.config.read("jax_enable_x64"))


def _at_32_bits(fn: str, name: str, x: torch.Tensor, stacklevel: int = 3) -> torch.Tensor:
    """``x`` at 32 bits when JAX's 64-bit mode is off and x is 64-bit, with a warning."""
    if x.dtype not in _AT_32_BITS or not _x64_off():
        return x
    dtype, lost = _AT_32_BITS[x.dtype]
    if dtype == torch.int32 and x.numel():
        info = torch.iinfo(torch.int32)
        if bool(((x < info.min) | (x > info.max)).any()):
            raise ValueError(
                f"{fn}: {name} holds int64 values outside int32's range, and JAX's 64-bit "
                'mode is off; enable it with jax.config.update("jax_enable_x64", True)'
            )
    warnings.warn(
        f"{fn}: JAX's 64-bit mode is off, so {name} ({x.dtype}) is converted to {dtype}, "
        f"losing {lost}; enable the mode first with "
        'jax.config.update("jax_enable_x64", True) to keep it',
        UserWarning,
        stacklevel=stacklevel,
    )
    return x.to(dtype)


def t2j(x_torch: torch.Tensor) -> jax.Array:
    """A dense tensor as a JAX array: :func:`tsgu.jax.t2j`, 32-bit without x64 (warned).

    Examples
    --------
    >>> import torch
    >>> t2j(torch.arange(3.0))
    Array([0., 1., 2.], dtype=float32)
    """
    return tsgu_jax.t2j(_at_32_bits("t2j", "x_torch", x_torch))


def _values_at_32_bits(fn: str, A: torch.Tensor) -> torch.Tensor:
    """A sparse tensor with its values (not its indices, which tsgu.jax narrows itself)
    at 32 bits when JAX's 64-bit mode is off."""
    if A.dtype not in _AT_32_BITS or not _x64_off():
        return A
    values = A.values() if A.layout == torch.sparse_csr else A._values()
    values = _at_32_bits(fn, "x_torch's values", values.detach(), stacklevel=4)
    if A.layout == torch.sparse_csr:
        return torch.sparse_csr_tensor(A.crow_indices(), A.col_indices(), values, A.shape)
    return torch.sparse_coo_tensor(A._indices(), values, A.shape, is_coalesced=A.is_coalesced())


def t2j_csr(x_torch: torch.Tensor) -> Any:
    """A sparse CSR tensor as 0.2's ``jax.experimental.sparse.CSR`` (``BCSR`` if batched).

    Examples
    --------
    >>> import torch
    >>> M = t2j_csr(torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse_csr())
    >>> type(M).__name__, M.todense().tolist()
    ('CSR', [[2.0, 0.0], [1.0, 3.0]])
    """
    M = tsgu_jax.t2j_csr(_values_at_32_bits("t2j_csr", x_torch))
    if M.ndim != 2:
        return M
    return jsparse.CSR((M.data, M.indices, M.indptr), shape=M.shape)


def t2j_coo(x_torch: torch.Tensor) -> Any:
    """A sparse COO tensor as 0.2's ``jax.experimental.sparse.COO`` (``BCOO`` if batched),
    its entries sorted by row (an uncoalesced tensor is coalesced first, with a warning).

    Examples
    --------
    >>> import torch
    >>> M = t2j_coo(torch.tensor([[2.0, 0.0], [1.0, 3.0]]).to_sparse())
    >>> type(M).__name__, M.row.tolist(), M.col.tolist()
    ('COO', [0, 1, 1], [0, 0, 1])
    """
    if isinstance(x_torch, torch.Tensor) and x_torch.layout == torch.sparse_coo:
        if not x_torch.is_coalesced():
            warnings.warn(
                "t2j_coo: x_torch is not coalesced; converting its coalesced copy",
                UserWarning,
                stacklevel=2,
            )
            x_torch = x_torch.coalesce()
        x_torch = _values_at_32_bits("t2j_coo", x_torch)
    M = tsgu_jax.t2j_coo(x_torch)
    if M.ndim != 2:
        return M
    return jsparse.COO((M.data, M.indices[:, 0], M.indices[:, 1]), shape=M.shape, rows_sorted=True)


def j2t_csr(x_jax: Any) -> torch.Tensor:
    """A ``BCSR`` or 0.2's ``CSR`` JAX matrix as a torch sparse CSR tensor.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from jax.experimental import sparse
    >>> j2t_csr(sparse.CSR.fromdense(jnp.eye(2))).to_dense()
    tensor([[1., 0.],
            [0., 1.]])
    """
    if isinstance(x_jax, jsparse.CSR):
        x_jax = jsparse.BCSR((x_jax.data, x_jax.indices, x_jax.indptr), shape=x_jax.shape)
    return tsgu_jax.j2t_csr(x_jax)


def j2t_coo(x_jax: Any) -> torch.Tensor:
    """A ``BCOO`` or 0.2's ``COO`` JAX matrix as a torch sparse COO tensor.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from jax.experimental import sparse
    >>> j2t_coo(sparse.COO.fromdense(jnp.eye(2))).to_dense()
    tensor([[1., 0.],
            [0., 1.]])
    """
    if isinstance(x_jax, jsparse.COO):
        indices = jnp.stack([x_jax.row, x_jax.col], axis=1)
        x_jax = jsparse.BCOO((x_jax.data, indices), shape=x_jax.shape)
    return tsgu_jax.j2t_coo(x_jax)
