"""tsgu under ``torch.compile``: operations registered as custom ops on a sparse matrix's parts.

Dynamo refuses sparse tensors ("Attempted to wrap sparse Tensor"), so inside a compiled
region a sparse matrix never becomes one. tsgu's constructors, called while Dynamo traces,
return a :class:`~tsgu.core._compiled.parts.SparseParts` (the layout, the index tensors, the
values and the shape: plain tensors and constants that Dynamo traces), and every tsgu
operation that receives one calls a custom op (``torch.library.custom_op``) on those parts.
Each op has a fake implementation (shapes only, for tracing) and an autograd formula made of
tsgu's ops again, so backward stays O(nnz) and double backward works.

One idea per file: :mod:`.parts` (the container and the pattern of a set of parts),
:mod:`.products` (``tsgu::spmm`` and ``tsgu::sampled``, the two products every sparse
gradient is made of), and one file per operation on top of them.
"""
