"""The examples of the torchsparsegradutils 0.2 README, run unchanged against this path.

Each test body is the README's code as printed there; the only edit the README itself asks
for is ``create_sparse_triangular_matrix()`` ("Your sparse CSR matrix"), replaced by a real
one. Where an example cannot run as printed (the sparse normal's backward, with nothing that
requires grad), a test shows that it fails as it did in 0.2, and a second one runs it with the
one edit it needs.
"""

from __future__ import annotations

import warnings

import torch

import tsgu.core


def create_sparse_triangular_matrix(n: int = 50) -> torch.Tensor:
    """The README's placeholder: a well-conditioned lower-triangular CSR matrix."""
    return tsgu.core.rand_sparse_tri(
        (n, n),
        200,
        torch.sparse_csr,
        upper=False,
        well_conditioned=True,
        generator=torch.Generator().manual_seed(0),
    )


def test_basic_sparse_matrix_multiplication(capsys):
    import torch

    from torchsparsegradutils import sparse_mm

    # Create sparse matrix in COO format
    indices = torch.tensor([[0, 1, 1], [2, 0, 2]], dtype=torch.int64)
    values = torch.tensor([3.0, 4.0, 5.0], requires_grad=True)
    A = torch.sparse_coo_tensor(indices, values, (2, 3))

    # Dense matrix
    B = torch.randn(3, 4, requires_grad=True)

    # Memory-efficient sparse matrix multiplication with gradient support
    C = sparse_mm(A, B)
    loss = C.sum()
    with warnings.catch_warnings():  # A is not a leaf: reading A.grad warns, as in 0.2
        warnings.simplefilter("ignore", UserWarning)
        loss.backward()  # Gradients preserved in sparse format

        print(f"A.grad: {A.grad}")  # Sparse gradient
    print(f"B.grad: {B.grad}")  # Dense gradient

    out = capsys.readouterr().out
    assert "B.grad: tensor" in out
    # the gradient reached the values through torch's COO constructor
    torch.testing.assert_close(values.grad, B.detach().sum(1)[indices[1]])


def test_sparse_linear_system_solving():
    import torch

    from torchsparsegradutils import sparse_generic_solve, sparse_triangular_solve
    from torchsparsegradutils.utils import linear_cg

    # Create sparse triangular matrix
    A = create_sparse_triangular_matrix()  # Your sparse CSR matrix
    b = torch.randn(A.shape[0], requires_grad=True)

    # Triangular solve (fast for triangular systems)
    x1 = sparse_triangular_solve(A, b, upper=False)

    # Generic solve with different backends
    with warnings.catch_warnings():  # CG on a nonsymmetric A need not converge: it warns
        warnings.simplefilter("ignore", tsgu.core.ConvergenceWarning)
        x2 = sparse_generic_solve(A, b, solve=linear_cg, tol=1e-6)

        # Using CuPy backend (if available)
        from torchsparsegradutils.cupy import sparse_solve_c4t

        x3 = sparse_solve_c4t(A, b, solve="cg", tol=1e-6)

    torch.testing.assert_close(A.to_dense() @ x1, b.detach())
    assert x2.shape == b.shape == x3.shape


def test_indexed_matrix_operations():
    import torch

    from torchsparsegradutils import gather_mm, segment_mm

    # Segment matrix multiplication (compatible with DGL/PyG)
    a = torch.randn(15, 10, requires_grad=True)  # Node features
    b = torch.randn(3, 10, 5, requires_grad=True)  # Edge type embeddings
    seglen_a = torch.tensor([5, 6, 4])  # Segment lengths

    # Performs: a[0:5] @ b[0], a[5:11] @ b[1], a[11:15] @ b[2]
    result = segment_mm(a, b, seglen_a)

    # Gather matrix multiplication
    indices = torch.tensor([0, 0, 1, 1, 2])
    a_gathered = torch.randn(5, 10, requires_grad=True)
    result = gather_mm(a_gathered, b, indices)

    torch.testing.assert_close(result, torch.bmm(a_gathered.unsqueeze(1), b[indices]).squeeze(1))


def test_pairwise_voxel_encoding(capsys):
    import torch

    from torchsparsegradutils.encoders import PairwiseEncoder

    # Create 3D volume encoder (channels, height, depth, width)
    volume_shape = (4, 64, 64, 64)  # 4 channels, 64x64x64 spatial
    encoder = PairwiseEncoder(radius=2.0, volume_shape=volume_shape, layout=torch.sparse_csr)

    # Generate values for each spatial relationship offset
    num_offsets = len(encoder.offsets)
    values = torch.randn(num_offsets, *volume_shape)

    # Generate sparse encoding matrix
    sparse_matrix = encoder(values)

    print(f"Encoded volume shape: {sparse_matrix.shape}")
    print(f"Sparsity: {sparse_matrix._nnz() / sparse_matrix.numel():.3%}")
    print(f"Number of spatial offsets: {num_offsets}")

    out = capsys.readouterr().out
    assert "Encoded volume shape: torch.Size([1048576, 1048576])" in out
    assert f"Number of spatial offsets: {num_offsets}" in out


def sparse_multivariate_normal_example():
    """The README's code up to its backward, as printed there."""
    import torch

    from torchsparsegradutils.distributions import SparseMultivariateNormal
    from torchsparsegradutils.utils.random_sparse import rand_sparse_tri

    # Create parameters
    batch_size, event_size = 2, 1000
    loc = torch.zeros(batch_size, event_size)

    # Example 1: LDL^T parameterization (numerically stable for precision matrices)
    # Create sparse lower triangular matrix (unit triangular, no diagonal)
    scale_tril = rand_sparse_tri(
        (batch_size, event_size, event_size),
        nnz=5000,  # 5000 non-zeros for 1M parameters (0.5% sparsity)
        layout=torch.sparse_csr,
        upper=False,
        unit_triangular=True,  # Unit triangular for LDL^T
    )

    # Diagonal component for LDL^T parameterization
    diagonal = torch.ones(batch_size, event_size) * 0.5

    # Create distribution with LDL^T parameterization
    dist_ldlt = SparseMultivariateNormal(
        loc=loc,
        diagonal=diagonal,
        scale_tril=scale_tril,  # Unit lower triangular
    )

    # Example 2: LL^T parameterization (standard Cholesky)
    scale_tril_chol = rand_sparse_tri(
        (batch_size, event_size, event_size),
        nnz=5000,
        layout=torch.sparse_csr,
        upper=False,
        unit_triangular=False,  # Include diagonal for LL^T
    )

    # Create distribution with LL^T parameterization
    dist_chol = SparseMultivariateNormal(
        loc=loc,
        scale_tril=scale_tril_chol,  # Lower triangular with diagonal
    )

    # Example 3: Precision matrix parameterization (more stable with LDL^T)
    precision_tril = rand_sparse_tri(
        (batch_size, event_size, event_size),
        nnz=5000,
        layout=torch.sparse_csr,
        upper=False,
        unit_triangular=True,
    )

    precision_diagonal = torch.ones(batch_size, event_size) * 2.0

    dist_precision = SparseMultivariateNormal(
        loc=loc,
        diagonal=precision_diagonal,
        precision_tril=precision_tril,  # Unit triangular precision factor
    )

    # Sample with gradient support
    samples = dist_ldlt.rsample((100,))  # 100 samples
    return samples, scale_tril, dist_ldlt, dist_chol, dist_precision


def test_sparse_multivariate_normal_fails_at_backward_as_in_0_2():
    """As printed, nothing in the README's example requires grad, so its
    ``loss.backward()`` raises in 0.2 as it does here."""
    import pytest

    samples, *_ = sparse_multivariate_normal_example()
    loss = samples.sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        loss.backward()


def test_sparse_multivariate_normal_with_a_trainable_factor(capsys):
    """The README's example with the one edit its prints assume: a factor that requires grad."""
    from torchsparsegradutils.utils import rand_sparse_tri

    samples, _, dist_ldlt, dist_chol, dist_precision = sparse_multivariate_normal_example()
    assert samples.shape == (100, 2, 1000)
    assert dist_chol.rsample((3,)).shape == dist_precision.rsample((3,)).shape == (3, 2, 1000)
    scale_tril = rand_sparse_tri(
        (2, 1000, 1000), nnz=5000, layout=torch.sparse_csr, upper=False, unit_triangular=True
    ).requires_grad_(True)
    from torchsparsegradutils.distributions import SparseMultivariateNormal

    dist_ldlt = SparseMultivariateNormal(
        loc=torch.zeros(2, 1000), diagonal=torch.ones(2, 1000) * 0.5, scale_tril=scale_tril
    )
    samples = dist_ldlt.rsample((100,))

    # Gradient computation preserves sparsity
    loss = samples.sum()
    loss.backward()
    print(f"Sparse gradient shape: {scale_tril.grad.shape}")
    print(f"Sparse gradient nnz: {scale_tril.grad._nnz()}")
    print(f"Using LDL^T parameterization: {dist_ldlt.is_ldlt_parameterization}")

    out = capsys.readouterr().out
    assert "Sparse gradient shape: torch.Size([2, 1000, 1000])" in out
    assert f"Sparse gradient nnz: {scale_tril._nnz()}" in out
    assert "Using LDL^T parameterization: True" in out


def test_pairwise_encoder_into_a_sparse_multivariate_normal():
    """The tail of the README's encoder example: 0.2 checked nothing, so the drop-in
    accepts its (non-triangular) matrix by default too; the volume is the README's."""
    import torch

    from torchsparsegradutils.distributions import SparseMultivariateNormal
    from torchsparsegradutils.encoders import PairwiseEncoder

    volume_shape = (4, 64, 64, 64)  # 4 channels, 64x64x64 spatial
    encoder = PairwiseEncoder(radius=2.0, volume_shape=volume_shape, layout=torch.sparse_csr)
    values = torch.randn(len(encoder.offsets), *volume_shape)
    sparse_matrix = encoder(values)

    # Use in sparse multivariate normal
    flat_size = 4 * 64 * 64 * 64  # Total flattened size
    dist = SparseMultivariateNormal(loc=torch.zeros(flat_size), scale_tril=sparse_matrix)

    assert dist.event_shape == (flat_size,)


def test_statistical_distribution_validation(capsys):
    import torch
    from torch.distributions import MultivariateNormal

    from torchsparsegradutils.utils import cov_nagao_test, mean_hotelling_t2_test

    # Generate sample data from known distribution
    torch.manual_seed(42)
    true_mean = torch.tensor([[0.0, 0.0]])
    true_cov = torch.eye(2).unsqueeze(0)
    n = 1000

    # Generate samples and compute statistics
    dist = MultivariateNormal(true_mean.squeeze(0), true_cov.squeeze(0))
    samples = dist.sample((n,)).unsqueeze(1)
    sample_mean = samples.mean(0)
    sample_cov = torch.cov(samples.squeeze(1).T).unsqueeze(0)

    # Test if sample mean is consistent with hypothesized mean (should pass)
    result, t2_stat, threshold = mean_hotelling_t2_test(
        sample_mean, true_mean, sample_cov, n, confidence_level=0.95
    )
    print(f"Mean test passed: {result.item()}")  # True

    # Test if sample covariance is consistent with hypothesized covariance (should pass)
    result, t_n_stat, threshold = cov_nagao_test(sample_cov, true_cov, n, confidence_level=0.95)
    print(f"Covariance test passed: {result.item()}")  # True

    # Test against wrong parameters (should fail)
    wrong_mean = true_mean + 1.0  # Significantly different mean
    result, _, _ = mean_hotelling_t2_test(
        sample_mean, wrong_mean, sample_cov, n, confidence_level=0.95
    )
    print(f"Wrong mean test passed: {result.item()}")  # False

    out = capsys.readouterr().out
    assert "Mean test passed: True" in out
    assert "Covariance test passed: True" in out
    assert "Wrong mean test passed: False" in out
