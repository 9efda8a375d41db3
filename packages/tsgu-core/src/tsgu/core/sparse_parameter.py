"""``SparseParameter``: a trainable sparse matrix (indices as buffers, values a Parameter)."""

from __future__ import annotations

import torch

from .constructors import sparse_coo_tensor, sparse_csc_tensor, sparse_csr_tensor
from .validation import COO, CSC, CSR, check_sparse

__all__ = ["SparseParameter"]

_INDEX_NAMES = {
    COO: ("indices",),
    CSR: ("crow_indices", "col_indices"),
    CSC: ("ccol_indices", "row_indices"),
}


class SparseParameter(torch.nn.Module):
    r"""A trainable sparse matrix: its indices are buffers, its values a Parameter.

    Calling the module gives the matrix, built with tsgu's constructors, so its gradient
    reaches :attr:`values` in O(nnz). Outside ``torch.compile`` that is a torch sparse
    tensor; inside a compiled region it is the matrix as its parts, which every tsgu
    operation takes, so ``torch.compile(model, fullgraph=True)`` traces a model that holds
    one (Dynamo refuses torch sparse tensors). The pattern is fixed; optimizers see only the
    values, and ``state_dict`` holds the indices and the values.

    Parameters
    ----------
    A : torch.Tensor
        Sparse COO, CSR or CSC ``(n, m)`` or ``(b, n, m)``: its pattern and initial values
        (copied). COO keeps its stored order (coalesce it first for the fast kernels).
    requires_grad : bool
        Whether the values are trained.

    Raises
    ------
    TypeError
        ``A`` is not a sparse COO, CSR or CSC tensor.
    ValueError
        ``A`` has other than 2 or 3 dimensions, hybrid values or malformed indices.

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> W = tc.SparseParameter(torch.tensor([[1.0, 0.0], [0.0, 2.0]]).to_sparse_csr())
    >>> [name for name, _ in W.named_parameters()]
    ['values']
    >>> loss = tc.sparse_mm(W(), torch.ones(2, 1)).sum()
    >>> loss.backward()
    >>> W.values.grad  # one entry per stored value
    tensor([1., 1.])
    """

    def __init__(self, A: torch.Tensor, requires_grad: bool = True) -> None:
        super().__init__()
        A = check_sparse("SparseParameter", "A", A, layouts=(COO, CSR, CSC), dims=(2, 3))
        if A.layout == COO:
            index_tensors: tuple[torch.Tensor, ...] = (A._indices(),)
            values = A._values()
        elif A.layout == CSR:
            index_tensors, values = (A.crow_indices(), A.col_indices()), A.values()
        else:
            index_tensors, values = (A.ccol_indices(), A.row_indices()), A.values()
        self.layout = A.layout
        self.size = tuple(A.shape)
        self.is_coalesced = A.layout == COO and A.is_coalesced()
        self._index_names = _INDEX_NAMES[A.layout]
        for name, tensor in zip(self._index_names, index_tensors, strict=True):
            self.register_buffer(name, tensor.detach().clone())
        self.values = torch.nn.Parameter(values.detach().clone(), requires_grad=requires_grad)

    def forward(self) -> torch.Tensor:
        """The sparse matrix, differentiable in :attr:`values`."""
        indices = [getattr(self, name) for name in self._index_names]
        if self.layout == COO:
            return sparse_coo_tensor(
                indices[0], self.values, self.size, is_coalesced=self.is_coalesced
            )
        build = sparse_csr_tensor if self.layout == CSR else sparse_csc_tensor
        return build(indices[0], indices[1], self.values, self.size)

    def extra_repr(self) -> str:
        return f"layout={self.layout}, size={self.size}, nnz={self.values.numel()}"
