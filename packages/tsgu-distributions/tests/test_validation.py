"""Every documented bad input of SparseMultivariateNormal raises early, naming the argument."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Distribution

from tsgu.distributions import SparseMultivariateNormal

N = 7
F = "SparseMultivariateNormal: "


def _lower(layout=torch.sparse_csr, strict=False, dtype=torch.float64, batch=None):
    L = torch.tril(torch.full((N, N), 0.3, dtype=dtype), -1)
    if not strict:
        L = L + torch.eye(N, dtype=dtype)
    if batch:
        L = L.expand(batch, N, N).clone()
    return L.to_sparse() if layout == torch.sparse_coo else L.to_sparse_csr()


def _loc(*batch, dtype=torch.float64):
    return torch.zeros(*batch, N, dtype=dtype)


# ----------------------------------------------------------------- structure (always)
def test_exactly_one_factor():
    with pytest.raises(
        ValueError, match=F + r"exactly one of scale_tril and precision_tril.*got both"
    ):
        SparseMultivariateNormal(_loc(), scale_tril=_lower(), precision_tril=_lower())
    with pytest.raises(ValueError, match=F + r"exactly one of .*got neither"):
        SparseMultivariateNormal(_loc())


@pytest.mark.parametrize(
    ("loc", "error", "match"),
    [
        ([0.0] * N, TypeError, r"loc must be a torch.Tensor, got list"),
        (
            torch.zeros(N, dtype=torch.float64).to_sparse(),
            TypeError,
            r"loc must be a dense \(strided\) tensor, got layout COO",
        ),
        (
            torch.tensor(0.0, dtype=torch.float64),
            ValueError,
            r"loc must have at least 1 dimension \(\*batch, n\), got shape \(\)",
        ),
        (
            torch.zeros(N, dtype=torch.int64),
            ValueError,
            r"loc must have dtype float32 or float64, got torch.int64",
        ),
    ],
)
def test_bad_loc(loc, error, match):
    with pytest.raises(error, match=F + match):
        SparseMultivariateNormal(loc, scale_tril=_lower())


@pytest.mark.parametrize("name", ["scale_tril", "precision_tril"])
@pytest.mark.parametrize(
    ("factor", "error", "match"),
    [
        ("not a tensor", TypeError, r"{name} must be a torch.Tensor, got str"),
        (
            torch.eye(N, dtype=torch.float64),
            TypeError,
            r"{name} must be a sparse COO or CSR tensor, got layout dense \(strided\); "
            r"convert with {name}.to_sparse_csr\(\)",
        ),
        (
            torch.eye(N, dtype=torch.float64).to_sparse_csc(),
            TypeError,
            r"{name} must be a sparse COO or CSR tensor, got layout CSC",
        ),
        (
            torch.eye(N, dtype=torch.float64).to_sparse().unsqueeze(0).unsqueeze(0),
            ValueError,
            r"{name} must have 2 or 3 dimensions, got shape \(1, 1, 7, 7\)",
        ),
        (
            torch.eye(N, dtype=torch.float64)[:, :, None].to_sparse(2),
            ValueError,
            r"{name} must have scalar values \(no dense dimensions\)",
        ),
        (
            torch.eye(N + 1, dtype=torch.float64).to_sparse_csr(),
            ValueError,
            r"{name} must be \(n, n\) or \(b, n, n\) with n = 7 "
            r"\(the last dimension of loc\), got shape \(8, 8\)",
        ),
        (
            torch.eye(N, dtype=torch.float64)[:, :5].to_sparse(),
            ValueError,
            r"{name} must be \(n, n\) or \(b, n, n\) with n = 7",
        ),
        (
            torch.eye(N, dtype=torch.float32).to_sparse_csr(),
            ValueError,
            r"loc and {name} must have the same dtype, got torch.float64 and torch.float32",
        ),
    ],
)
def test_bad_factor(name, factor, error, match):
    with pytest.raises(error, match=F + match.format(name=name)):
        SparseMultivariateNormal(_loc(), **{name: factor})


def test_factor_on_another_device():
    loc = torch.zeros(N, dtype=torch.float64, device="meta")
    with pytest.raises(
        ValueError, match=F + r"loc and scale_tril must be on the same device, got meta and cpu"
    ):
        SparseMultivariateNormal(loc, scale_tril=_lower())


@pytest.mark.parametrize(
    ("diagonal", "error", "match"),
    [
        ((1.0,) * N, TypeError, r"diagonal must be a torch.Tensor, got tuple"),
        (
            torch.tensor(1.0, dtype=torch.float64),
            ValueError,
            r"diagonal must have at least 1 dimension",
        ),
        (
            torch.ones(N + 2, dtype=torch.float64),
            ValueError,
            r"diagonal must have n = 7 entries in its last dimension "
            r"\(the last dimension of loc\), got shape \(9,\)",
        ),
        (
            torch.ones(N, dtype=torch.float32),
            ValueError,
            r"loc and diagonal must have the same dtype",
        ),
        (
            torch.ones(N, dtype=torch.float64, device="meta"),
            ValueError,
            r"loc and diagonal must be on the same device",
        ),
    ],
)
def test_bad_diagonal(diagonal, error, match):
    with pytest.raises(error, match=F + match):
        SparseMultivariateNormal(_loc(), diagonal, precision_tril=_lower(strict=True))


@pytest.mark.parametrize(
    ("loc", "diagonal", "factor", "match"),
    [
        (_loc(4), None, _lower(batch=3), r"loc \(4,\), scale_tril \(3,\)"),
        (
            _loc(3),
            torch.ones(2, N, dtype=torch.float64),
            _lower(strict=True),
            r"loc \(3,\), diagonal \(2,\), scale_tril \(\)",
        ),
        (_loc(3, 2), None, _lower(batch=3), r"loc \(3, 2\), scale_tril \(3,\)"),
    ],
)
def test_batch_shapes_that_do_not_broadcast(loc, diagonal, factor, match):
    with pytest.raises(
        ValueError,
        match=F + r"the batch shapes of the arguments must broadcast together, got " + match,
    ):
        SparseMultivariateNormal(loc, diagonal, scale_tril=factor)


# ----------------------------------------------------------- values (validate_args)
def test_nan_in_loc():
    loc = _loc()
    loc[3] = float("nan")
    with pytest.raises(ValueError, match=F + r"loc must be real, got NaN at flat index 3"):
        SparseMultivariateNormal(loc, scale_tril=_lower(), validate_args=True)


def test_non_positive_diagonal():
    d = torch.ones(2, N, dtype=torch.float64)
    d[1, 2] = -0.5
    with pytest.raises(
        ValueError, match=F + r"diagonal must be positive, got -0.5 at flat index 9"
    ):
        SparseMultivariateNormal(_loc(), d, scale_tril=_lower(strict=True), validate_args=True)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
@pytest.mark.parametrize("name", ["scale_tril", "precision_tril"])
@pytest.mark.parametrize("ldlt", [False, True])
def test_entry_above_the_diagonal(layout, name, ldlt):
    L = torch.tril(torch.full((2, N, N), 0.3, dtype=torch.float64), -1)
    if not ldlt:
        L = L + torch.eye(N, dtype=torch.float64)
    L[1, 2, 4] = 0.1
    L[1, 3, 0] = 0.0  # equal nnz per item, for batched CSR
    factor = L.to_sparse() if layout == torch.sparse_coo else L.to_sparse_csr()
    d = torch.ones(N, dtype=torch.float64) if ldlt else None
    with pytest.raises(
        ValueError,
        match=F + name + r" must be lower triangular, got a stored entry above the diagonal "
        r"at \(2, 4\) of batch item 1; drop the upper triangle",
    ):
        SparseMultivariateNormal(_loc(), d, **{name: factor}, validate_args=True)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_a_stored_zero_above_the_diagonal_is_rejected_too(layout):
    idx = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]])
    A = torch.sparse_coo_tensor(
        idx, torch.tensor([1.0, 0.2, 1.0, 0.0], dtype=torch.float64), (2, 2)
    )
    A = A.coalesce() if layout == torch.sparse_coo else A.to_sparse_csr()
    with pytest.raises(
        ValueError, match=F + r"scale_tril must be lower triangular, .* at \(0, 1\)"
    ):
        SparseMultivariateNormal(
            torch.zeros(2, dtype=torch.float64), scale_tril=A, validate_args=True
        )


@pytest.mark.parametrize("name", ["scale_tril", "precision_tril"])
def test_ldlt_factor_with_a_stored_diagonal(name):
    with pytest.raises(
        ValueError,
        match=F + name + r" must be strictly lower triangular when diagonal is given .* "
        r"got a stored diagonal entry at \(0, 0\); drop the diagonal",
    ):
        SparseMultivariateNormal(
            _loc(), torch.ones(N, dtype=torch.float64), **{name: _lower()}, validate_args=True
        )


@pytest.mark.parametrize("name", ["scale_tril", "precision_tril"])
def test_llt_factor_without_its_diagonal(name):
    L = torch.tril(torch.full((N, N), 0.3, dtype=torch.float64))
    L[4, 4] = 0.0  # dropped from the pattern
    with pytest.raises(
        ValueError,
        match=F
        + name
        + r" must store every diagonal entry .* got none at row 4; or pass diagonal=",
    ):
        SparseMultivariateNormal(_loc(), **{name: L.to_sparse_csr()}, validate_args=True)
    with pytest.raises(ValueError, match=r"got none at row 0"):
        SparseMultivariateNormal(_loc(), **{name: _lower(strict=True)}, validate_args=True)


@pytest.mark.parametrize("layout", [torch.sparse_coo, torch.sparse_csr])
def test_llt_factor_with_a_non_positive_diagonal(layout):
    L = torch.tril(torch.full((3, N, N), 0.3, dtype=torch.float64))
    L[2, 5, 5] = -0.25
    A = L.to_sparse() if layout == torch.sparse_coo else L.to_sparse_csr()
    with pytest.raises(
        ValueError,
        match=F
        + r"precision_tril must have a positive diagonal, got -0.25 at \(5, 5\) of batch item 2",
    ):
        SparseMultivariateNormal(_loc(), precision_tril=A, validate_args=True)


def test_value_checks_are_skipped_without_validation():
    L = torch.triu(torch.ones(N, N, dtype=torch.float64)).to_sparse_csr()  # upper!
    SparseMultivariateNormal(_loc(), scale_tril=L, validate_args=False)
    default = Distribution._validate_args
    try:
        Distribution.set_default_validate_args(False)
        dist = SparseMultivariateNormal(_loc(), scale_tril=L)
        assert not dist._validate_args
        Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError, match="lower triangular"):
            SparseMultivariateNormal(_loc(), scale_tril=L)  # None: torch's default
    finally:
        Distribution.set_default_validate_args(default)


def test_structure_is_checked_even_without_validation():
    with pytest.raises(TypeError, match=F + "scale_tril must be a sparse COO or CSR tensor"):
        SparseMultivariateNormal(_loc(), scale_tril=torch.eye(N), validate_args=False)


# ----------------------------------------------------------------------- log_prob
@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ([0.0] * N, TypeError, r"value must be a torch.Tensor, got list"),
        (
            torch.zeros(N, dtype=torch.float64).to_sparse(),
            TypeError,
            r"value must be a dense \(strided\) tensor",
        ),
        (
            torch.tensor(0.0, dtype=torch.float64),
            ValueError,
            r"value must have at least 1 dimension \(\*sample, \*batch, n\)",
        ),
        (
            torch.zeros(3, N + 1, dtype=torch.float64),
            ValueError,
            r"value must have n = 7 entries in its last dimension, got shape \(3, 8\)",
        ),
        (
            torch.zeros(N, dtype=torch.float32),
            ValueError,
            r"loc and value must have the same dtype",
        ),
        (
            torch.zeros(N, dtype=torch.float64, device="meta"),
            ValueError,
            r"loc and value must be on the same device",
        ),
    ],
)
def test_bad_log_prob_value(value, error, match):
    dist = SparseMultivariateNormal(_loc(), scale_tril=_lower())
    with pytest.raises(error, match=F[:-2] + r"\.log_prob: " + match):
        dist.log_prob(value)


def test_log_prob_value_with_a_batch_that_does_not_broadcast():
    dist = SparseMultivariateNormal(_loc(3), scale_tril=_lower(), validate_args=True)
    with pytest.raises(
        ValueError, match=r"Value is not broadcastable with batch_shape\+event_shape"
    ):
        dist.log_prob(torch.zeros(4, N, dtype=torch.float64))
