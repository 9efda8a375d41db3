"""``sparse_eye``: sparse identity matrices, single or batched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch

from .validation import COO, CSR, check_bools, check_choice, check_device

__all__ = ["sparse_eye"]


def sparse_eye(
    size: int | Sequence[int],
    *,
    layout: torch.layout = COO,
    values_dtype: torch.dtype = torch.float64,
    indices_dtype: torch.dtype = torch.int64,
    device: torch.device | str = "cpu",
    requires_grad: bool = False,
) -> torch.Tensor:
    """A sparse identity matrix ``(n, n)`` or a batch ``(b, n, n)`` of them.

    Parameters
    ----------
    size : int or sequence of int
        ``n``, ``(n, n)`` or ``(b, n, n)``.
    layout : torch.layout
        ``torch.sparse_coo`` (flagged coalesced) or ``torch.sparse_csr``.
    values_dtype : torch.dtype
        float32 or float64.
    indices_dtype : torch.dtype
        int32 or int64 (kept for CSR; torch stores COO indices as int64).
    device : torch.device or str
    requires_grad : bool
        Make the result a leaf that requires grad.

    Returns
    -------
    torch.Tensor

    Raises
    ------
    TypeError
        A size that is neither an int nor a sequence of ints; a ``requires_grad`` that is
        not a bool; a device that is not a str, int or torch.device.
    ValueError
        A size that is not square or not 1 to 3 non-negative ints, an unsupported layout
        or dtype, a string that names no device.

    Examples
    --------
    >>> import torch
    >>> from tsgu.core import sparse_eye
    >>> sparse_eye((2, 3, 3), layout=torch.sparse_csr).to_dense()[1]
    tensor([[1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.]], dtype=torch.float64)
    """
    fn = "sparse_eye"
    if isinstance(size, int) and not isinstance(size, bool):
        shape: tuple[object, ...] = (size, size)
    elif isinstance(size, Sequence | torch.Size) and not isinstance(size, str):
        shape = tuple(size)
    else:
        raise TypeError(
            f"{fn}: size must be an int n or a tuple (n, n) or (b, n, n) of ints, "
            f"got {type(size).__name__} {size!r}"
        )
    if (
        len(shape) not in (2, 3)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
        or shape[-1] != shape[-2]
    ):
        raise ValueError(
            f"{fn}: size must be n, (n, n) or (b, n, n) with non-negative ints, got {size!r}"
        )
    device = check_device(fn, "device", device)
    check_bools(fn, requires_grad=requires_grad)
    check_choice(fn, "layout", layout, (COO, CSR))
    check_choice(fn, "values_dtype", values_dtype, (torch.float32, torch.float64))
    check_choice(fn, "indices_dtype", indices_dtype, (torch.int32, torch.int64))
    dims = cast(tuple[int, ...], shape)
    b = dims[0] if len(dims) == 3 else 1
    n = dims[-1]
    diag = torch.arange(n, device=device, dtype=indices_dtype)
    values = torch.ones(b * n, dtype=values_dtype, device=device)
    if layout == COO:
        rows = diag.repeat(b)
        indices = torch.stack([rows, rows])
        if len(dims) == 3:
            batch = torch.arange(b, device=device, dtype=indices_dtype).repeat_interleave(n)
            indices = torch.cat([batch[None], indices])
        eye = torch.sparse_coo_tensor(indices, values, dims, is_coalesced=True)
    else:
        crow = torch.arange(n + 1, device=device, dtype=indices_dtype)
        if len(dims) == 3:
            eye = torch.sparse_csr_tensor(
                crow.expand(b, n + 1).contiguous(),
                diag.expand(b, n).contiguous(),
                values.reshape(b, n),
                dims,
            )
        else:
            eye = torch.sparse_csr_tensor(crow, diag, values, dims)
    return eye.requires_grad_(requires_grad)
