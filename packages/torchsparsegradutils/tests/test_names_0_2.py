"""Every public name of every torchsparsegradutils 0.2.x module has a home in the drop-in.

The list is the union of the public names of 0.2.2's and 0.2.7's modules (read from their
wheels), plus the private helpers 0.2's own tests import. Left out on purpose: the
``tests`` and ``benchmarks`` packages 0.2 shipped inside its wheel (the drop-in must remove
them), and ``tsgucupy``, an import alias of the package inside 0.2's cupy modules.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings

import pytest

NAMES_0_2 = {
    "torchsparsegradutils": [
        "cupy",
        "distributions",
        "encoders",
        "gather_mm",
        "indexed_matmul",
        "jax",
        "segment_mm",
        "sparse_bidir_logsumexp",
        "sparse_generic_lstsq",
        "sparse_generic_solve",
        "sparse_logsumexp",
        "sparse_lstsq",
        "sparse_matmul",
        "sparse_mm",
        "sparse_solve",
        "sparse_triangular_solve",
        "utils",
    ],
    "torchsparsegradutils._compat": ["linalg_solve_triangular_compat"],
    "torchsparsegradutils.cupy": [
        "c2t_coo",
        "c2t_csr",
        "cupy_bindings",
        "cupy_sparse_solve",
        "have_cupy",
        "sparse_solve_c4t",
        "t2c_coo",
        "t2c_csr",
    ],
    "torchsparsegradutils.cupy.cupy_bindings": ["c2t_coo", "c2t_csr", "t2c_coo", "t2c_csr"],
    "torchsparsegradutils.cupy.cupy_sparse_solve": ["SparseSolveC4T", "sparse_solve_c4t"],
    "torchsparsegradutils.distributions": [
        "SparseMultivariateNormal",
        "SparseMultivariateNormalNative",
        "sparse_multivariate_normal",
    ],
    "torchsparsegradutils.distributions.constraints": [],
    "torchsparsegradutils.distributions.sparse_multivariate_normal": [
        "SparseMultivariateNormal",
        "SparseMultivariateNormalNative",
        "_batch_sparse_mv",
        "spmm",
        "spts",
    ],
    "torchsparsegradutils.encoders": [
        "PairwiseEncoder",
        "PairwiseVoxelEncoder",
        "calc_pairwise_coo_indices",
        "calc_pairwise_coo_indices_nd",
        "calc_pariwise_coo_indices",
        "pairwise_encoder",
    ],
    "torchsparsegradutils.encoders.pairwise_encoder": [
        "PairwiseEncoder",
        "_gen_coords",
        "_gen_coords_nd",
        "_gen_offsets",
        "_gen_offsets_nd",
        "_trim_nd",
        "calc_pairwise_coo_indices",
        "calc_pairwise_coo_indices_nd",
        "calc_pariwise_coo_indices",
        "convert_coo_to_csr_indices_values",
    ],
    "torchsparsegradutils.encoders.pairwise_voxel_encoder": [
        "PairwiseEncoder",
        "PairwiseVoxelEncoder",
        "calc_pairwise_coo_indices",
        "calc_pairwise_coo_indices_nd",
        "calc_pariwise_coo_indices",
    ],
    "torchsparsegradutils.indexed_matmul": ["gather_mm", "segment_mm"],
    "torchsparsegradutils.jax": [
        "have_jax",
        "j2t",
        "j2t_coo",
        "j2t_csr",
        "jax_bindings",
        "jax_sparse_solve",
        "sparse_solve_j4t",
        "spmm_t4j",
        "t2j",
        "t2j_coo",
        "t2j_csr",
    ],
    "torchsparsegradutils.jax.jax_bindings": [
        "j2t",
        "j2t_coo",
        "j2t_csr",
        "spmm_t4j",
        "t2j",
        "t2j_coo",
        "t2j_csr",
    ],
    "torchsparsegradutils.jax.jax_sparse_solve": ["SparseSolveJ4T", "sparse_solve_j4t"],
    "torchsparsegradutils.sparse_logsumexp": [
        "_bidir_2d",
        "_bidir_batched",
        "sparse_bidir_logsumexp",
        "sparse_logsumexp",
    ],
    "torchsparsegradutils.sparse_lstsq": ["SparseGenericLstsq", "sparse_generic_lstsq"],
    "torchsparsegradutils.sparse_matmul": [
        "SparseMatMul",
        "sparse_block_diag",
        "sparse_block_diag_split",
        "sparse_mm",
        "stack_csr",
    ],
    "torchsparsegradutils.sparse_solve": [
        "SparseGenericSolve",
        "SparseTriangularSolve",
        "convert_coo_to_csr",
        "linalg_solve_triangular_compat",
        "sparse_block_diag",
        "sparse_block_diag_split",
        "sparse_generic_solve",
        "sparse_triangular_solve",
        "stack_csr",
    ],
    "torchsparsegradutils.utils": [
        "BICGSTABSettings",
        "CGInfo",
        "LinearCGSettings",
        "MINRESSettings",
        "bicgstab",
        "convert_coo_to_csr",
        "convert_coo_to_csr_indices_values",
        "cov_nagao_test",
        "dist_stats_helpers",
        "linear_cg",
        "lsmr",
        "mean_hotelling_t2_test",
        "minres",
        "rand_sparse",
        "rand_sparse_tri",
        "random_sparse",
        "sparse_block_diag",
        "sparse_block_diag_split",
        "sparse_eye",
        "stack_csr",
        "utils",
    ],
    "torchsparsegradutils.utils.bicgstab": ["BICGSTABSettings", "bicgstab"],
    "torchsparsegradutils.utils.dist_stats_helpers": ["cov_nagao_test", "mean_hotelling_t2_test"],
    "torchsparsegradutils.utils.linear_cg": ["CGInfo", "LinearCGSettings", "linear_cg"],
    "torchsparsegradutils.utils.lsmr": ["lsmr"],
    "torchsparsegradutils.utils.minres": ["MINRESSettings", "minres"],
    "torchsparsegradutils.utils.random_sparse": [
        "convert_coo_to_csr",
        "convert_coo_to_csr_indices_values",
        "generate_random_sparse_coo_matrix",
        "generate_random_sparse_csr_matrix",
        "generate_random_sparse_strictly_triangular_coo_matrix",
        "generate_random_sparse_strictly_triangular_csr_matrix",
        "generate_random_sparse_triangular_coo_matrix",
        "generate_random_sparse_triangular_csr_matrix",
        "make_spd_sparse",
        "rand_sparse",
        "rand_sparse_tri",
    ],
    "torchsparsegradutils.utils.utils": [
        "_compress_row_indices",
        "_demcompress_crow_indices",
        "_sort_coo_indices",
        "convert_coo_to_csr",
        "convert_coo_to_csr_indices_values",
        "sparse_block_diag",
        "sparse_block_diag_split",
        "sparse_eye",
        "stack_csr",
    ],
}


def _has_jax() -> bool:
    return importlib.util.find_spec("jax") is not None


@pytest.mark.parametrize("module", sorted(NAMES_0_2))
def test_every_0_2_name_resolves(module):
    if module.startswith("torchsparsegradutils.jax") and not _has_jax():
        pytest.skip("jax is not installed (the drop-in's jax extra)")
    # a package's submodules are its attributes once imported, as in 0.2
    for name in NAMES_0_2:
        if _has_jax() or "jax" not in name:
            importlib.import_module(name)
    mod = importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated names forward
        expected = [n for n in NAMES_0_2[module] if _has_jax() or n != "jax"]
        missing = [name for name in expected if not hasattr(mod, name)]
    assert not missing, f"{module} lacks 0.2's {missing}"
