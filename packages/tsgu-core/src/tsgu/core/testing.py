"""What every tsgu package's tests share: seeded generators, named matrix cases, tolerances.

Tests are parametrized over ``CASES x LAYOUTS x INDEX_DTYPES x BATCH_FORMS``, as SciPy's
iterative-solver tests are. A case builds small dense float64 references in the test
process, then the sparse tensor under test from them; every batch item shares one pattern
(batched CSR needs equal nnz) and has its own values, drawn so that the case's property
(SPD, triangular, indefinite, ...) holds for every item.

Importing this module needs nothing beyond torch; :func:`devices` needs pytest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._pattern import Pattern
from .constructors import sparse_coo_tensor, sparse_csc_tensor, sparse_csr_tensor
from .poisson import poisson_2d, poisson_3d

__all__ = [
    "BATCH_FORMS",
    "CASES",
    "CORRUPTIONS",
    "INDEX_DTYPES",
    "LAYOUTS",
    "MatrixCase",
    "assert_error_policy",
    "case",
    "cases",
    "corrupt",
    "devices",
    "generator",
    "run_fuzz_module",
    "to_layout",
    "tol",
    "torchsparsegradutils_0_2",
    "values_at",
    "weighted_sum",
    "with_values",
]

LAYOUTS = (torch.sparse_coo, torch.sparse_csr)
INDEX_DTYPES = (torch.int32, torch.int64)
BATCH_FORMS = ("unbatched", "batched")
BATCH_SIZE = 3
# Fixed seed of every case's sparsity pattern: batch items share it, values differ.
_PATTERN_SEED = 20241123


def tol(dtype: torch.dtype) -> dict[str, float]:
    """``rtol``/``atol`` for comparing a result of ``dtype`` with a float64 reference.

    Use as ``torch.testing.assert_close(a, b, **tol(a.dtype))``.
    """
    if dtype == torch.float64:
        return {"rtol": 1e-9, "atol": 1e-10}
    return {"rtol": 1e-4, "atol": 1e-5}


def assert_error_policy(error: BaseException, start: str) -> None:
    """``error``'s message starts with ``start`` and reads, as every tsgu error does,
    ``"<function>: <argument> <expected>, got <actual>; <fix>"`` (CONTRIBUTING.md).

    Examples
    --------
    >>> from tsgu.core.testing import assert_error_policy
    >>> error = ValueError("f: B must have 3 rows, got shape (2,); reshape B")
    >>> assert_error_policy(error, "f: B must have 3 rows")
    """
    message = str(error)
    assert message.startswith(start), f"{message!r} does not start with {start!r}"
    assert re.match(r"[\w.]+: \w+ .+, got .+; .+", message, re.DOTALL), (
        f"{message!r} does not read '<function>: <argument> ..., got ...; <fix>'"
    )


def generator(seed: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def devices() -> list[Any]:
    """``["cpu", cuda]`` for ``pytest.mark.parametrize``; cuda is marked and skips without a GPU."""
    import pytest

    cuda = pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ],
    )
    return ["cpu", cuda]


def torchsparsegradutils_0_2(submodule: str = "") -> Any:
    """A real torchsparsegradutils 0.2 release (or its ``submodule``), or the test skips.

    From 0.3 on that name is tsgu's own drop-in path: comparing with it would compare tsgu
    with itself. Needs pytest.
    """
    from importlib.metadata import version

    import pytest

    name = "torchsparsegradutils" + (f".{submodule}" if submodule else "")
    module = pytest.importorskip(name, reason="torchsparsegradutils 0.2 not installed")
    released = version("torchsparsegradutils")
    if not released.startswith("0.2."):
        pytest.skip(f"torchsparsegradutils {released} is not a 0.2 release")
    return module


def to_layout(
    dense: torch.Tensor, layout: torch.layout, index_dtype: torch.dtype = torch.int64
) -> torch.Tensor:
    """A small dense ``(n, m)`` or ``(b, n, m)`` test matrix as sparse COO, CSR or CSC.

    Entries equal to zero are left out. CSR/CSC keep ``index_dtype``; COO is int64 (torch).
    """
    if layout == torch.sparse_coo:
        return dense.to_sparse().coalesce()
    if layout == torch.sparse_csr:
        A = dense.to_sparse_csr()
        return torch.sparse_csr_tensor(
            A.crow_indices().to(index_dtype), A.col_indices().to(index_dtype), A.values(), A.shape
        )
    if layout == torch.sparse_csc:
        A = dense.to_sparse_csc()
        return torch.sparse_csc_tensor(
            A.ccol_indices().to(index_dtype), A.row_indices().to(index_dtype), A.values(), A.shape
        )
    raise ValueError(f"to_layout: unsupported layout {layout}")


def with_values(A: torch.Tensor) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """A's values as a fresh leaf that requires grad, and ``rebuild(values) -> sparse``.

    ``rebuild`` uses tsgu's constructors with A's indices, so
    ``gradcheck(lambda v: op(rebuild(v)), (values,))`` checks an operation's sparse
    gradient through dense inputs (gradcheck takes no sparse inputs).
    """
    shape = tuple(A.shape)
    if A.layout == torch.sparse_coo:
        indices = A._indices()
        values = A._values()
        coalesced = A.is_coalesced()

        def rebuild(v: torch.Tensor) -> torch.Tensor:
            return sparse_coo_tensor(indices, v, shape, is_coalesced=coalesced)

    elif A.layout == torch.sparse_csr:
        crow, col, values = A.crow_indices(), A.col_indices(), A.values()

        def rebuild(v: torch.Tensor) -> torch.Tensor:
            return sparse_csr_tensor(crow, col, v, shape)

    elif A.layout == torch.sparse_csc:
        ccol, row, values = A.ccol_indices(), A.row_indices(), A.values()

        def rebuild(v: torch.Tensor) -> torch.Tensor:
            return sparse_csc_tensor(ccol, row, v, shape)

    else:
        raise ValueError(f"with_values: unsupported layout {A.layout}")
    return values.detach().clone().requires_grad_(True), rebuild


def values_at(A: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """The entries of ``dense`` at A's stored positions, in A's value order (flat)."""
    return dense.reshape(-1).index_select(0, Pattern.of(A).linear_index())


class _WeightedSum(torch.autograd.Function):
    @staticmethod
    def forward(S: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        return (S.to_dense() * W).sum()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (W,) = ctx.saved_tensors
        return grad * W, None


def weighted_sum(S: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``sum(S * W)`` for a small sparse ``S`` of any layout, differentiable in S.

    Its backward hands S a dense gradient, which tsgu's constructors gather at their
    pattern: a way to read any sparse result in a gradcheck (torch's own ``to_dense`` and
    ``values`` cannot differentiate batched CSR, CSC or uncoalesced COO).
    """
    out: torch.Tensor = _WeightedSum.apply(S, W)
    return out


# ------------------------------------------------------------------------- the cases
def _signs(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).double()


def _magnitudes(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    # Bounded away from zero so that the pattern never loses an entry.
    return (0.5 + torch.rand(shape, generator=gen)).double()


def _mask(n: int, m: int, density: float) -> torch.Tensor:
    return torch.rand(n, m, generator=generator(_PATTERN_SEED)) < density


def _dominant_diagonal(
    off: torch.Tensor, gen: torch.Generator, sign: torch.Tensor | None = None
) -> torch.Tensor:
    """``off`` with a diagonal exceeding each row's and column's off-diagonal mass."""
    off = off - torch.diag(torch.diagonal(off))
    mass = torch.maximum(off.abs().sum(1), off.abs().sum(0))
    diag = mass + 1.0 + torch.rand(off.shape[0], generator=gen).double()
    if sign is not None:
        diag = diag * sign
    return off + torch.diag(diag)


def _poisson2d(gen: torch.Generator) -> torch.Tensor:
    return poisson_2d(4).to_dense() * (0.5 + torch.rand((), generator=gen).double())


def _poisson3d(gen: torch.Generator) -> torch.Tensor:
    return poisson_3d(3, stencil=27).to_dense() * (0.5 + torch.rand((), generator=gen).double())


def _spd(gen: torch.Generator, n: int = 12) -> torch.Tensor:
    mask = _mask(n, n, 0.25)
    mask = mask | mask.T
    off = _signs((n, n), gen) * _magnitudes((n, n), gen) * mask
    off = torch.triu(off, 1)
    return _dominant_diagonal(off + off.T, gen)


def _symmetric_indefinite(gen: torch.Generator, n: int = 12) -> torch.Tensor:
    mask = _mask(n, n, 0.25)
    off = torch.triu(_signs((n, n), gen) * _magnitudes((n, n), gen) * (mask | mask.T), 1)
    sign = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0).double()
    return _dominant_diagonal(off + off.T, gen, sign)


def _nonsymmetric(gen: torch.Generator, n: int = 12) -> torch.Tensor:
    off = _signs((n, n), gen) * _magnitudes((n, n), gen) * _mask(n, n, 0.3)
    return _dominant_diagonal(off, gen)


def _triangular(gen: torch.Generator, lower: bool, n: int = 12) -> torch.Tensor:
    full = _nonsymmetric(gen, n)
    return torch.tril(full) if lower else torch.triu(full)


def _rectangular(gen: torch.Generator, m: int = 16, n: int = 10) -> torch.Tensor:
    mask = _mask(m, n, 0.3)
    A = _signs((m, n), gen) * _magnitudes((m, n), gen) * mask
    top = _dominant_diagonal(A[:n], gen)  # full column rank through a dominant top block
    return torch.cat([top, A[n:]])


def _singular(gen: torch.Generator, n: int = 12) -> torch.Tensor:
    A = _nonsymmetric(gen, n)
    A[:, -1] = A[:, 0]  # two equal columns: rank n - 1
    return A


@dataclass(frozen=True)
class MatrixCase:
    """A named family of small test matrices with known properties.

    ``tags`` say what holds for every item: ``square``, ``spd``, ``symmetric``,
    ``indefinite``, ``nonsymmetric``, ``triangular``, ``lower``, ``upper``,
    ``rectangular``, ``singular``, ``invertible``.
    """

    name: str
    tags: frozenset[str]
    build: Callable[[torch.Generator], torch.Tensor]

    def dense(
        self, *, batch: str = "unbatched", dtype: torch.dtype = torch.float64, seed: int = 0
    ) -> torch.Tensor:
        """The dense reference ``(n, m)`` or ``(BATCH_SIZE, n, m)``."""
        gen = generator(seed)
        if batch == "batched":
            return torch.stack([self.build(gen) for _ in range(BATCH_SIZE)]).to(dtype)
        return self.build(gen).to(dtype)

    def make(
        self,
        *,
        layout: torch.layout = torch.sparse_csr,
        index_dtype: torch.dtype = torch.int64,
        batch: str = "unbatched",
        dtype: torch.dtype = torch.float64,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> torch.Tensor:
        """The sparse matrix under test, in ``layout`` with ``index_dtype``."""
        dense = self.dense(batch=batch, dtype=dtype, seed=seed)
        return to_layout(dense, layout, index_dtype).to(device)

    def __str__(self) -> str:  # readable pytest ids
        return self.name


CASES: tuple[MatrixCase, ...] = (
    MatrixCase("poisson_2d", frozenset({"square", "spd", "symmetric", "invertible"}), _poisson2d),
    MatrixCase("poisson_3d", frozenset({"square", "spd", "symmetric", "invertible"}), _poisson3d),
    MatrixCase("spd", frozenset({"square", "spd", "symmetric", "invertible"}), _spd),
    MatrixCase(
        "symmetric_indefinite",
        frozenset({"square", "symmetric", "indefinite", "invertible"}),
        _symmetric_indefinite,
    ),
    MatrixCase("nonsymmetric", frozenset({"square", "nonsymmetric", "invertible"}), _nonsymmetric),
    MatrixCase(
        "lower_triangular",
        frozenset({"square", "triangular", "lower", "nonsymmetric", "invertible"}),
        lambda g: _triangular(g, lower=True),
    ),
    MatrixCase(
        "upper_triangular",
        frozenset({"square", "triangular", "upper", "nonsymmetric", "invertible"}),
        lambda g: _triangular(g, lower=False),
    ),
    MatrixCase("rectangular", frozenset({"rectangular"}), _rectangular),
    MatrixCase("singular", frozenset({"square", "singular", "nonsymmetric"}), _singular),
)


def case(name: str) -> MatrixCase:
    """The case called ``name``."""
    for c in CASES:
        if c.name == name:
            return c
    raise KeyError(f"no matrix case {name!r}; known: {[c.name for c in CASES]}")


def cases(*tags: str, exclude: tuple[str, ...] = ()) -> list[MatrixCase]:
    """The cases that carry every tag in ``tags`` and none in ``exclude``."""
    return [c for c in CASES if set(tags) <= c.tags and not set(exclude) & c.tags]


# ----------------------------------------------------------- malformed sparse tensors
# The ways a sparse tensor's index structure can be wrong, for the fuzz tests of every
# package (torch builds such tensors without complaint when its invariant checks are off).
CORRUPTIONS = (
    "index_too_large",  # a column (COO: any) index past its dimension
    "index_negative",
    "pointer_start",  # CSR/CSC: the first row pointer is not 0
    "pointer_end",  # CSR/CSC: the last row pointer is not nnz
    "pointer_decreasing",  # CSR/CSC: a row pointer smaller than the one before it
    "false_coalesced",  # COO: flagged coalesced, indices not sorted and unique
)


def corrupt(A: torch.Tensor, kind: str, offset: int = 0, position: int = 0) -> torch.Tensor | None:
    """A copy of sparse ``A`` (COO, CSR or CSC, 2D or batched) with its indices broken as
    ``kind`` says (one of :data:`CORRUPTIONS`), built without torch's checks; ``None`` when
    that corruption cannot apply to A (no entry to break, a layout without pointers).

    ``offset`` (>= 0) moves a bad index further out of range; ``position`` picks the entry.
    """
    if A.layout == torch.sparse_coo:
        indices, values = A._indices().clone(), A._values().clone()
        nnz = indices.shape[1]
        if kind in ("index_too_large", "index_negative") and nnz:
            d, k = position % indices.shape[0], position % nnz
            indices[d, k] = A.shape[d] + offset if kind == "index_too_large" else -1 - offset
            return torch.sparse_coo_tensor(indices, values, A.shape, check_invariants=False)
        if kind == "false_coalesced" and nnz >= 2:
            order = torch.arange(nnz - 1, -1, -1)  # reversed: not sorted
            return torch.sparse_coo_tensor(
                indices[:, order], values[order], A.shape, is_coalesced=True, check_invariants=False
            )
        return None
    build: Callable[..., torch.Tensor]
    if A.layout == torch.sparse_csr:
        compressed, plain, build = A.crow_indices(), A.col_indices(), torch.sparse_csr_tensor
        plain_size = A.shape[-1]
    elif A.layout == torch.sparse_csc:
        compressed, plain, build = A.ccol_indices(), A.row_indices(), torch.sparse_csc_tensor
        plain_size = A.shape[-2]
    else:
        return None
    compressed, plain, values = compressed.clone(), plain.clone(), A.values().clone()
    nnz = plain.shape[-1]
    limit = torch.iinfo(plain.dtype).max
    if kind in ("index_too_large", "index_negative") and nnz:
        k = position % nnz
        bad = plain_size + offset if kind == "index_too_large" else -1 - offset
        plain[..., k] = max(min(bad, limit), -limit)
    elif kind == "pointer_start" and nnz:
        compressed[..., 0] = 1 + offset % max(nnz, 1)
    elif kind == "pointer_end":
        compressed[..., -1] = nnz + 1 + offset
    elif kind == "pointer_decreasing" and compressed.shape[-1] >= 3 and nnz:
        j = 1 + position % (compressed.shape[-1] - 2)
        compressed[..., j] = compressed[..., j + 1] + 1 + offset % max(nnz, 1)
    else:
        return None
    return build(compressed, plain, values, A.shape, check_invariants=False)


def run_fuzz_module(path: str | os.PathLike[str], timeout: float = 600.0) -> None:
    """Run the ``check_*`` properties of the fuzz module at ``path`` in a child pytest.

    A crash (a segfault, an abort) then fails the calling test with the child's output,
    faulthandler's traceback included, instead of killing the suite. The hypothesis profile
    comes from ``TSGU_FUZZ_PROFILE`` (``default`` or ``nightly``). Raises AssertionError
    when a property fails or the child dies.
    """
    import subprocess
    import sys

    path = os.fspath(path)
    command = [
        sys.executable,
        "-X",
        "faulthandler",
        "-m",
        "pytest",
        path,
        "-c",
        os.devnull,  # the repository's settings (doctests, testpaths) do not apply
        "--rootdir",
        os.path.dirname(path),
        "--import-mode=importlib",
        "-p",
        "no:cacheprovider",
        "-o",
        "python_files=fuzz_*.py",
        "-o",
        "python_functions=check_*",
        "-q",
    ]
    env = {**os.environ, "TSGU_FUZZ_PROFILE": os.environ.get("TSGU_FUZZ_PROFILE", "default")}
    child = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if child.returncode != 0:
        died = f"the child died (signal {-child.returncode})" if child.returncode < 0 else ""
        raise AssertionError(
            f"fuzz properties of {os.path.basename(path)} failed {died}\n"
            f"{child.stdout[-8000:]}\n{child.stderr[-4000:]}"
        )


def fuzz_profile(examples: int) -> None:
    """Load the hypothesis profile named by ``TSGU_FUZZ_PROFILE``: ``default`` (``examples``
    per property, derandomized, for the suite) or ``nightly`` (50 times as many, random)."""
    from hypothesis import HealthCheck, settings

    relaxed = [HealthCheck.too_slow, HealthCheck.filter_too_much]
    settings.register_profile(
        "default",
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=relaxed,
    )
    settings.register_profile(
        "nightly", max_examples=50 * examples, deadline=None, suppress_health_check=relaxed
    )
    settings.load_profile(os.environ.get("TSGU_FUZZ_PROFILE", "default"))


def sparse_matrices(
    *,
    layouts: tuple[torch.layout, ...] = (torch.sparse_coo, torch.sparse_csr, torch.sparse_csc),
    batches: tuple[int | None, ...] = (None, 1, 2),
    sizes: tuple[int, int] = (0, 5),
    square: bool = False,
    symmetric: bool = False,
    dominant: bool = False,
    lower: bool = False,
    dtype: torch.dtype = torch.float64,
) -> Any:
    """A hypothesis strategy of small valid sparse matrices (or batches sharing a pattern)
    of every layout, index dtype and shape in ``sizes``, empty ones included.

    ``symmetric`` mirrors the pattern and values; ``dominant`` adds a diagonal that makes the
    matrix diagonally dominant (solvable); ``lower`` keeps the lower triangle and a unit
    diagonal (a Cholesky factor). The last three imply a square matrix.
    """
    from hypothesis import strategies as st

    square = square or symmetric or dominant or lower

    @st.composite
    def build(draw: Any) -> torch.Tensor:
        layout = draw(st.sampled_from(layouts))
        batch = draw(st.sampled_from(batches))
        n = draw(st.integers(*sizes))
        m = n if square else draw(st.integers(*sizes))
        index_dtype = draw(st.sampled_from(INDEX_DTYPES))
        density = draw(st.sampled_from([0.0, 0.4, 1.0]))
        gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
        mask = torch.rand(n, m, generator=gen) < density  # one pattern for every batch item
        shape = (batch, n, m) if batch else (n, m)
        dense = (torch.rand(shape, generator=gen, dtype=dtype) + 0.5) * mask
        if symmetric:
            dense = dense + dense.mT
        if lower:
            dense = torch.tril(dense, -1) + torch.eye(n, dtype=dtype)
        elif dominant:
            dense = dense + (2 * n + 1) * torch.eye(n, dtype=dtype)
        return to_layout(dense, layout, index_dtype)

    return build()
