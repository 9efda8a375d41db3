"""The examples of the torchsparsegradutils 0.2 README, run unchanged against this path.

Each test body is the README's code as printed there; the only edit the README itself asks
for is ``create_sparse_triangular_matrix()`` ("Your sparse CSR matrix"), replaced by a real
one. Examples that need tsgu-distributions, tsgu-cupy or tsgu-jax live beside those packages'
re-exports.
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
