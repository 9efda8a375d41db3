"""tsgu.core.extend: what an operation of your own needs to give tsgu-style sparse gradients.

tsgu's satellites (tsgu-cupy, tsgu-jax, tsgu-distributions, tsgu-graph, ...) are built on
this module and on :mod:`tsgu.core`, never on a private module; so can yours. It is public
API, versioned with tsgu-core: its names are pinned by a test, and a change to one is
recorded in tsgu-core's changelog.

The pieces, bottom up:

* **Patterns.** :class:`Pattern` is the index structure of a sparse COO, CSR or CSC
  tensor, 2D or batched (a batch is folded into one block-diagonal matrix): the row and
  column of every stored value in the tensor's own value order (:attr:`Pattern.rows`,
  :attr:`Pattern.cols`), its transpose (:attr:`Pattern.t`,
  :attr:`Pattern.transposed_indices`), its diagonal (:meth:`Pattern.diagonal`).
* **Values.** :func:`values_of` reads a sparse tensor's values as a differentiable vector
  whose gradient flows back as a sparse tensor with the input's layout, indices and order;
  :func:`from_values` and :func:`attach_values` go the other way; :func:`stored_values` is
  the plain accessor (no autograd), :func:`gather_at_pattern` reads any gradient at a
  pattern without densifying a sparse one.
* **Products.** :func:`pattern_matmul` (``A @ B`` for values at a pattern) and
  :func:`sampled_product` (``U @ Vᵀ`` at a pattern only): each one's backward is the
  other, so everything built from them is differentiable to any order.
* **Solves.** :func:`linear_solve` is tsgu's one differentiable solve: a
  :class:`LinearSolver` supplies solves with A and with Aᵀ, and the mechanism supplies the
  gradients (for B, and for A at its pattern), double backward, right-hand-side folding,
  batches and checks (:func:`check_solve_operands`, :func:`check_tol_or_rtol`).
* **Compiling.** :func:`register_compiled` and :func:`call_compiled` run an eager
  function that Dynamo cannot trace (it reads indices on the host, say) as one custom op,
  with its own gradients, so that ``torch.compile(fullgraph=True)`` takes it.
* **Helpers.** :func:`fold_rhs` (a vector, matrix or batch of right-hand sides as the one
  block a kernel takes), :data:`INT32_MAX` and :func:`index_dtype_for` (when int32 indices
  fit), :class:`KernelChoice` (a kernel path that tests can pin).
"""

from ._compiled.function import call_function as call_compiled
from ._compiled.function import register_function as register_compiled
from ._kernel_paths import KernelChoice
from ._linear_solve import LinearSolver, check_solve_operands, check_tol_or_rtol, linear_solve
from ._pattern import (
    INT32_MAX,
    Pattern,
    attach_values,
    from_values,
    gather_at_pattern,
    index_dtype_for,
    pattern_matmul,
    sampled_product,
    stored_values,
    values_of,
)
from ._rhs import fold_rhs

__all__ = [
    "INT32_MAX",
    "KernelChoice",
    "LinearSolver",
    "Pattern",
    "attach_values",
    "call_compiled",
    "check_solve_operands",
    "check_tol_or_rtol",
    "fold_rhs",
    "from_values",
    "gather_at_pattern",
    "index_dtype_for",
    "linear_solve",
    "pattern_matmul",
    "register_compiled",
    "sampled_product",
    "stored_values",
    "values_of",
]
