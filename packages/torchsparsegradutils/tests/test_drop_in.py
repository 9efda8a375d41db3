"""Every 0.2 name resolves to the tsgu object; adapters keep 0.2's calling conventions."""

from __future__ import annotations

import importlib

import pytest
import torch

import torchsparsegradutils.encoders.pairwise_encoder
import tsgu.core
import tsgu.core.testing
import tsgu.cupy
import tsgu.encoders
import tsgu.graph

IDENTICAL = [
    ("torchsparsegradutils", "sparse_mm", tsgu.core.sparse_mm),
    ("torchsparsegradutils", "sparse_triangular_solve", tsgu.core.sparse_triangular_solve),
    ("torchsparsegradutils", "sparse_generic_solve", tsgu.core.sparse_generic_solve),
    ("torchsparsegradutils", "sparse_generic_lstsq", tsgu.core.sparse_generic_lstsq),
    ("torchsparsegradutils", "sparse_logsumexp", tsgu.core.sparse_logsumexp),
    ("torchsparsegradutils", "sparse_bidir_logsumexp", tsgu.core.sparse_bidir_logsumexp),
    ("torchsparsegradutils", "segment_mm", tsgu.graph.segment_mm),
    ("torchsparsegradutils", "gather_mm", tsgu.graph.gather_mm),
    ("torchsparsegradutils.sparse_matmul", "sparse_mm", tsgu.core.sparse_mm),
    ("torchsparsegradutils.sparse_solve", "sparse_generic_solve", tsgu.core.sparse_generic_solve),
    ("torchsparsegradutils.sparse_lstsq", "sparse_generic_lstsq", tsgu.core.sparse_generic_lstsq),
    ("torchsparsegradutils.indexed_matmul", "gather_mm", tsgu.graph.gather_mm),
    ("torchsparsegradutils.sparse_logsumexp", "sparse_logsumexp", tsgu.core.sparse_logsumexp),
    ("torchsparsegradutils.utils", "sparse_eye", tsgu.core.sparse_eye),
    ("torchsparsegradutils.utils", "stack_csr", tsgu.core.stack_csr),
    ("torchsparsegradutils.utils", "sparse_block_diag", tsgu.core.sparse_block_diag),
    ("torchsparsegradutils.utils", "sparse_block_diag_split", tsgu.core.sparse_block_diag_split),
    ("torchsparsegradutils.utils.utils", "convert_coo_to_csr", tsgu.core.convert_coo_to_csr),
    (
        "torchsparsegradutils.utils.utils",
        "convert_coo_to_csr_indices_values",
        tsgu.core.convert_coo_to_csr_indices_values,
    ),
    ("torchsparsegradutils.utils.random_sparse", "rand_sparse", tsgu.core.rand_sparse),
    ("torchsparsegradutils.utils.random_sparse", "rand_sparse_tri", tsgu.core.rand_sparse_tri),
    ("torchsparsegradutils.utils.random_sparse", "make_spd_sparse", tsgu.core.make_spd_sparse),
    ("torchsparsegradutils.encoders", "PairwiseEncoder", tsgu.encoders.PairwiseEncoder),
    (
        "torchsparsegradutils.encoders",
        "calc_pairwise_coo_indices_nd",
        tsgu.encoders.calc_pairwise_coo_indices_nd,
    ),
    (
        "torchsparsegradutils.encoders.pairwise_encoder",
        "PairwiseEncoder",
        tsgu.encoders.PairwiseEncoder,
    ),
]


@pytest.mark.parametrize(
    ("module", "name", "obj"), IDENTICAL, ids=lambda v: v if isinstance(v, str) else ""
)
def test_names_are_the_tsgu_objects(module, name, obj):
    assert getattr(importlib.import_module(module), name) is obj


def test_version():
    import torchsparsegradutils

    assert torchsparsegradutils.__version__ == "0.3.0"


@pytest.mark.parametrize(
    ("module", "name", "target"),
    [
        ("torchsparsegradutils.encoders", "PairwiseVoxelEncoder", tsgu.encoders.PairwiseEncoder),
        (
            "torchsparsegradutils.encoders",
            "calc_pairwise_coo_indices",
            torchsparsegradutils.encoders.pairwise_encoder.calc_pairwise_coo_indices,
        ),
        (
            "torchsparsegradutils.encoders",
            "calc_pariwise_coo_indices",
            torchsparsegradutils.encoders.pairwise_encoder.calc_pairwise_coo_indices,
        ),
        (
            "torchsparsegradutils.encoders.pairwise_voxel_encoder",
            "PairwiseVoxelEncoder",
            tsgu.encoders.PairwiseEncoder,
        ),
    ],
)
def test_deprecated_names_warn_and_forward(module, name, target):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"{name} is deprecated"):
        assert getattr(mod, name) is target


@pytest.mark.parametrize(
    ("module", "name", "target"),
    [
        ("torchsparsegradutils.sparse_matmul", "SparseMatMul", tsgu.core.sparse_mm),
        (
            "torchsparsegradutils.sparse_solve",
            "SparseTriangularSolve",
            tsgu.core.sparse_triangular_solve,
        ),
        ("torchsparsegradutils.sparse_solve", "SparseGenericSolve", tsgu.core.sparse_generic_solve),
        ("torchsparsegradutils.sparse_lstsq", "SparseGenericLstsq", tsgu.core.sparse_generic_lstsq),
    ],
)
def test_autograd_function_names_keep_apply(module, name, target):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=name):
        assert getattr(mod, name).fn is target


def test_solve_function_names_take_0_2s_trailing_kwargs_dict():
    from torchsparsegradutils import sparse_solve

    A = tsgu.core.testing.case("nonsymmetric").make()
    b = torch.ones(A.shape[0], dtype=torch.float64)
    with pytest.warns(DeprecationWarning, match="SparseGenericSolve"):
        function = sparse_solve.SparseGenericSolve
    # 0.2.7: SparseGenericSolve.apply(A, B, solve, transpose_solve, kwargs)
    x = function.apply(A, b, "bicgstab", None, {"rtol": 1e-12})
    torch.testing.assert_close(x, torch.linalg.solve(A.to_dense(), b))


def test_unknown_names_still_raise_attribute_error():
    import torchsparsegradutils.encoders as enc

    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        enc.nope  # noqa: B018


# ------------------------------------------------------------------- solver adapters
def _spd(n=30):
    return tsgu.core.poisson_2d(int(n**0.5) + 1)


def test_linear_cg_keeps_0_2_keywords_and_defaults():
    from torchsparsegradutils.utils import LinearCGSettings, linear_cg

    A = _spd()
    b = torch.ones(A.shape[0], dtype=torch.float64)
    exact = torch.linalg.solve(A.to_dense(), b)
    x = linear_cg(A, b, tolerance=1e-12, initial_guess=torch.zeros_like(b), max_iter=500)
    torch.testing.assert_close(x, exact)
    x = linear_cg(A, b, settings=LinearCGSettings(cg_tolerance=1e-12))
    torch.testing.assert_close(x, exact)
    torch.testing.assert_close(linear_cg(lambda v: A @ v, b, tol=1e-12), exact)  # README's tol


def test_bicgstab_honours_the_initial_guess_unlike_0_2():
    from torchsparsegradutils.utils import BICGSTABSettings, bicgstab

    A = tsgu.core.testing.case("nonsymmetric").make()
    b = torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    settings = BICGSTABSettings(reltol=1e-12, abstol=0.0)
    x = bicgstab(A, b, initial_guess=torch.ones(12, dtype=torch.float64), settings=settings)
    torch.testing.assert_close(x, torch.linalg.solve(A.to_dense(), b))


def test_minres_shifts_and_value():
    from torchsparsegradutils.utils import MINRESSettings, minres

    A = _spd(16)
    n = A.shape[0]
    b = torch.ones(n, dtype=torch.float64)
    settings = MINRESSettings(minres_tolerance=1e-12)
    shifts = torch.tensor([0.0, 1.0, 2.5], dtype=torch.float64)
    X = minres(A, b, shifts=shifts, value=2.0, settings=settings)
    assert X.shape == (3, n)
    dense = A.to_dense()
    for s, x in zip(shifts.tolist(), X, strict=True):
        torch.testing.assert_close(
            x, torch.linalg.solve(2.0 * dense + s * torch.eye(n, dtype=dense.dtype), b)
        )


def test_minres_broadcasts_a_matrix_batch_against_one_rhs_block():
    from torchsparsegradutils.utils import MINRESSettings, minres

    g = torch.Generator().manual_seed(3)
    M = torch.randn(3, 6, 6, dtype=torch.float64, generator=g)
    A = M @ M.mT + 6 * torch.eye(6, dtype=torch.float64)
    B = torch.randn(6, 2, dtype=torch.float64, generator=g)
    X = minres(A, B, value=-1, settings=MINRESSettings(minres_tolerance=1e-12))
    assert X.shape == (3, 6, 2)
    torch.testing.assert_close(X, torch.linalg.solve(-A, B.expand(3, 6, 2)))


def test_lsmr_returns_x_and_iterations():
    from torchsparsegradutils.utils import lsmr

    A = tsgu.core.testing.case("rectangular").make()
    b = torch.randn(A.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x, itn = lsmr(A, b, atol=1e-12, btol=1e-12)
    assert isinstance(itn, int) and itn > 0
    torch.testing.assert_close(x, torch.linalg.lstsq(A.to_dense(), b).solution)
    D = A.to_dense()
    x2, _ = lsmr(lambda v: D @ v, b, Armat=lambda u: D.T @ u, atol=1e-12, btol=1e-12)
    torch.testing.assert_close(x2, x)


def test_generic_solve_with_a_0_2_style_transposing_transpose_solve():
    # 0.2.5's own tests passed a transpose solve that transposes internally; it receives A.
    from torchsparsegradutils import sparse_generic_solve
    from torchsparsegradutils.utils import bicgstab

    A = tsgu.core.testing.case("nonsymmetric").make().requires_grad_(True)
    b = torch.randn(12, dtype=torch.float64, requires_grad=True)

    def transpose_solve(A, g):
        return torch.linalg.solve(A.detach().to_dense().T, g)

    x = sparse_generic_solve(A, b, solve=bicgstab, transpose_solve=transpose_solve)
    x.sum().backward()
    D = A.detach().to_dense().requires_grad_(True)
    b2 = b.detach().clone().requires_grad_(True)
    torch.linalg.solve(D, b2).sum().backward()
    torch.testing.assert_close(b.grad, b2.grad, rtol=1e-5, atol=1e-6)


def test_its_tsgu_ranges_admit_the_installed_packages():
    import importlib.metadata as metadata

    from packaging.requirements import Requirement
    from packaging.version import Version

    for raw in metadata.requires("torchsparsegradutils") or []:
        requirement = Requirement(raw)
        if requirement.name.startswith("tsgu-") and requirement.marker is None:
            installed = Version(metadata.version(requirement.name))
            assert requirement.specifier.contains(installed, prereleases=True), requirement
