"""A :class:`SparseMultivariateNormal` given by a sparse precision or covariance *matrix*.

The matrix is factorized once by :mod:`tsgu.factor` (CHOLMOD, a fill-reducing ordering P and
A = Pᵀ L Lᵀ P); the log-determinant and its exact gradient come from the factorization
(selected inversion), solves from its factors, samples from L alone. tsgu-factor is an
optional dependency of this package (``pip install tsgu-distributions[factor]``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import _standard_normal

import tsgu.core as tc

from ._sparse_normal import SparseMultivariateNormal
from ._validate import check_value, check_vector

__all__ = ["MatrixNormal"]

_LOG_2PI = math.log(2 * math.pi)


def _factorize(fn: str, matrix: Any) -> Any:
    try:
        from tsgu.factor import factorize
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            f"{fn}: a precision or covariance matrix needs tsgu-factor; install it with "
            "pip install tsgu-distributions[factor]"
        ) from error
    return factorize(matrix, kind="cholesky")


class MatrixNormal(SparseMultivariateNormal):
    """The distribution of :meth:`SparseMultivariateNormal.from_precision` and
    :meth:`SparseMultivariateNormal.from_covariance` (one 2D matrix, any batch of ``loc``).

    Examples
    --------
    A precision matrix with trainable values; the gradient of ``log_prob`` reaches them:

    >>> import torch
    >>> import tsgu.core as tc
    >>> from tsgu.distributions import SparseMultivariateNormal
    >>> Q = tc.poisson_2d(3, dtype=torch.float64)
    >>> values = Q.values().clone().requires_grad_()
    >>> Q = tc.sparse_csr_tensor(Q.crow_indices(), Q.col_indices(), values, Q.shape)
    >>> mvn = SparseMultivariateNormal.from_precision(torch.zeros(9, dtype=torch.float64), Q)
    >>> mvn.log_prob(mvn.rsample((4,))).sum().backward()
    >>> values.grad.shape
    torch.Size([33])

    A covariance matrix:

    >>> import torch
    >>> import tsgu.core as tc
    >>> from tsgu.distributions import SparseMultivariateNormal
    >>> S = tc.poisson_2d(3, dtype=torch.float64)
    >>> mvn = SparseMultivariateNormal.from_covariance(torch.zeros(9, dtype=torch.float64), S)
    >>> torch.allclose(mvn.entropy(), torch.distributions.MultivariateNormal(
    ...     torch.zeros(9, dtype=torch.float64), S.to_dense()).entropy())
    True
    """

    def __init__(self, loc: torch.Tensor, matrix: torch.Tensor, is_covariance: bool) -> None:
        fn = f"SparseMultivariateNormal.from_{'covariance' if is_covariance else 'precision'}"
        loc = check_vector(fn, "loc", loc)
        name = "covariance" if is_covariance else "precision"
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
            got = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
            raise ValueError(f"{fn}: {name} must be a 2D sparse matrix, got {got}")
        if matrix.shape[-1] != loc.shape[-1]:
            raise ValueError(
                f"{fn}: {name} must be ({loc.shape[-1]}, {loc.shape[-1]}) to match loc, got "
                f"{tuple(matrix.shape)}"
            )
        if matrix.dtype != loc.dtype:
            raise ValueError(
                f"{fn}: loc and {name} must have the same dtype, got {loc.dtype} and "
                f"{matrix.dtype}; convert with .to({matrix.dtype})"
            )
        self.loc = loc
        self._matrix = matrix
        self._is_covariance = is_covariance
        self._diagonal = None
        self._tril = None  # type: ignore[assignment]
        self._factorization = _factorize(fn, matrix)
        Distribution.__init__(self, loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def arg_constraints(self) -> dict[str, constraints.Constraint]:
        return {"loc": constraints.real_vector}

    @property
    def precision_matrix(self) -> torch.Tensor:
        """The sparse precision as given (raises for a covariance-given distribution)."""
        if self._is_covariance:
            raise NotImplementedError(
                "SparseMultivariateNormal.precision_matrix: the inverse of a sparse covariance "
                "is dense; use log_prob, which solves with the factorization"
            )
        return self._matrix

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """The sparse covariance as given (raises for a precision-given distribution)."""
        if not self._is_covariance:
            raise NotImplementedError(
                "SparseMultivariateNormal.covariance_matrix: the inverse of a sparse "
                "precision is dense; use rsample or log_prob"
            )
        return self._matrix

    @property
    def variance(self) -> torch.Tensor:
        raise NotImplementedError(
            "SparseMultivariateNormal.variance: not available for a distribution given by a "
            "matrix in this version; estimate it from rsample"
        )

    def expand(self, batch_shape: Any, _instance: Any = None) -> MatrixNormal:
        new = MatrixNormal.__new__(MatrixNormal)
        new.loc = self.loc.expand(torch.Size(batch_shape) + self._event_shape)
        new._matrix, new._is_covariance = self._matrix, self._is_covariance
        new._diagonal, new._tril = None, None  # type: ignore[assignment]
        new._factorization = self._factorization
        Distribution.__init__(new, torch.Size(batch_shape), self._event_shape, validate_args=False)
        return new

    def _columns(self, x: torch.Tensor, apply: Any) -> torch.Tensor:
        """``apply`` to every vector of x ``(*, n)``, as one ``(n, k)`` block."""
        flat = x.reshape(-1, x.shape[-1]).mT
        return apply(flat).mT.reshape(x.shape)

    def rsample(self, sample_shape: Any = ()) -> torch.Tensor:
        """Samples ``(*sample_shape, *batch, n)``, differentiable in ``loc`` (the derivative
        of the Cholesky factor with respect to the matrix is not computed: no gradient
        reaches the matrix through a sample)."""
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        F = self._factorization
        # precision Q = Pᵀ L Lᵀ P: Pᵀ L⁻ᵀ ε has covariance Q⁻¹; covariance Σ: Σ Pᵀ L⁻ᵀ ε = Pᵀ L ε
        w = self._columns(eps, F.sample)
        if self._is_covariance:
            S = self._matrix.detach()
            w = self._columns(w, lambda X: tc.sparse_mm(S, X))
        return self.loc + w

    def _logdet_matrix(self) -> torch.Tensor:
        return self._factorization.logdet()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density of ``value`` ``(*sample, *batch, n)``, differentiable in ``loc``,
        ``value`` and the matrix (its logdet gradient by selected inversion)."""
        value = check_value("SparseMultivariateNormal.log_prob", value, self.loc)
        r = value - self.loc
        F = self._factorization
        if self._is_covariance:
            z = self._columns(r, F.solve)
            sign = 1.0
        else:
            z = self._columns(r, lambda X: tc.sparse_mm(self._matrix, X))
            sign = -1.0
        M = (r * z).sum(-1)
        n = self._event_shape[0]
        return -0.5 * (n * _LOG_2PI + M + sign * self._logdet_matrix())

    def entropy(self) -> torch.Tensor:
        n = self._event_shape[0]
        sign = 1.0 if self._is_covariance else -1.0
        H = 0.5 * n * (1.0 + _LOG_2PI) + 0.5 * sign * self._logdet_matrix()
        return H.expand(self._batch_shape)

    def __repr__(self) -> str:
        name = "covariance" if self._is_covariance else "precision"
        shape = tuple(self._matrix.shape)
        return f"SparseMultivariateNormal(loc: {tuple(self.loc.shape)}, {name}: {shape})"
