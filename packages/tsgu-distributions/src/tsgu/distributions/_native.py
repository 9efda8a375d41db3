"""``SparseMultivariateNormalNative``: covariance L Lᵀ sampled with torch's own sparse product."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import _standard_normal

import tsgu.core as tc
from tsgu.core.validation import CSR

from ._factor import SparseFactor
from ._validate import (
    check_factor,
    check_factor_values,
    check_real,
    check_sample_shape,
    check_value,
    check_vector,
)
from .constraints import sparse_lower_cholesky

__all__ = ["SparseMultivariateNormalNative"]

_NAME = "SparseMultivariateNormalNative"
_LOG_2PI = math.log(2 * math.pi)


class SparseMultivariateNormalNative(Distribution):
    r"""A multivariate normal with covariance :math:`L L^\top`, sampled by ``torch.sparse.mm``.

    torchsparsegradutils 0.2's native variant: one unbatched CSR factor, the covariance
    :math:`L L^\top` form only, and samples drawn with torch's own CSR product, whose
    autograd hands the factor a CSR gradient. For batches, COO, precision factors or the
    :math:`L D L^\top` forms use :class:`SparseMultivariateNormal`.

    Parameters
    ----------
    loc : torch.Tensor
        Mean ``(n,)``, float32 or float64.
    scale_tril : torch.Tensor
        Sparse CSR ``(n, n)`` lower triangular factor with a positive diagonal (stored),
        loc's dtype and device.
    validate_args : bool, optional
        Check that the factor is lower triangular with a stored positive diagonal and that
        loc has no NaN (torch's default when None). Shapes, layouts, dtypes and devices are
        always checked.

    Raises
    ------
    TypeError
        A factor that is not sparse CSR, or arguments that are not tensors.
    ValueError
        A loc that is not 1D; a factor that is not ``(n, n)``; dtypes or devices that
        differ; with validation, a factor that is not lower triangular or lacks a positive
        diagonal.

    Notes
    -----
    :meth:`rsample` is :math:`x = \mu + L\varepsilon` with ``torch.sparse.mm`` (all samples
    in one product). :meth:`log_prob` is
    :math:`-\tfrac12(n\log 2\pi + \lVert L^{-1}(x-\mu)\rVert^2) - \sum_i \log L_{ii}`, its
    solve by :func:`tsgu.core.sparse_triangular_solve` (O(nnz), sparse gradient; torch's
    own sparse ``triangular_solve`` returns a dense gradient). :attr:`variance` is the row
    sums of :math:`L_{ij}^2` and :meth:`entropy` reads the diagonal: both O(nnz). Only
    :attr:`covariance_matrix` is dense (it warns).

    Examples
    --------
    >>> import torch
    >>> from tsgu.distributions import SparseMultivariateNormalNative
    >>> L = torch.tensor([[1.0, 0.0], [0.5, 2.0]]).to_sparse_csr()
    >>> mvn = SparseMultivariateNormalNative(torch.zeros(2), L)
    >>> mvn.rsample((4,)).shape
    torch.Size([4, 2])
    >>> mvn.variance
    tensor([1.0000, 4.2500])
    """

    support = constraints.real_vector
    has_rsample = True

    @property
    def arg_constraints(self) -> dict[str, constraints.Constraint]:
        """``loc`` real, ``scale_tril`` sparse lower triangular with a positive diagonal."""
        return {"loc": constraints.real_vector, "scale_tril": sparse_lower_cholesky}

    def __init__(
        self, loc: torch.Tensor, scale_tril: torch.Tensor, validate_args: bool | None = None
    ) -> None:
        fn = _NAME
        loc = check_vector(fn, "loc", loc, "(n,)")
        if loc.dim() != 1:
            raise ValueError(
                f"{fn}: loc must have 1 dimension (n,), got shape {tuple(loc.shape)}; "
                "use SparseMultivariateNormal for batches"
            )
        factor = check_factor(fn, "scale_tril", scale_tril, loc, layouts=(CSR,), dims=(2,))
        validate = Distribution._validate_args if validate_args is None else validate_args
        if validate:
            check_real(fn, "loc", loc)
            check_factor_values(fn, "scale_tril", factor, ldlt=False)
        self.loc = loc
        self._scale_tril = factor
        # log_prob, entropy and variance read the values through tsgu's one-bridge factor
        # (torch's own CSR values() gives wrong second derivatives); rsample uses torch's
        # own product on the factor as given.
        self._factor = SparseFactor(factor)
        super().__init__(torch.Size(), loc.shape, validate_args=False)
        self._validate_args = validate

    @property
    def scale_tril(self) -> torch.Tensor:
        """The CSR covariance factor, as given."""
        return self._scale_tril

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def covariance_matrix(self) -> torch.Tensor:
        """The dense :math:`L L^\\top` (n x n memory: it warns)."""
        warnings.warn(
            f"{_NAME}.covariance_matrix builds a dense n x n matrix "
            f"(n = {self.loc.shape[0]}); use variance for its diagonal",
            UserWarning,
            stacklevel=2,
        )
        dense = self._scale_tril.to_dense()
        return dense @ dense.mT

    @property
    def variance(self) -> torch.Tensor:
        """Row sums of :math:`L_{ij}^2`, O(nnz)."""
        return self._factor.row_sums(self._factor.values().square())

    def _half_log_det(self) -> torch.Tensor:
        return self._factor.diagonal(self._factor.values()).abs().log().sum()

    def expand(
        self, batch_shape: Any, _instance: SparseMultivariateNormalNative | None = None
    ) -> SparseMultivariateNormalNative:
        """Only the empty batch shape: this variant is unbatched."""
        if tuple(batch_shape) != ():
            raise ValueError(
                f"{_NAME}.expand: this distribution is unbatched, got batch_shape "
                f"{tuple(batch_shape)}; use SparseMultivariateNormal for batches"
            )
        return self

    def rsample(self, sample_shape: Any = ()) -> torch.Tensor:
        """Reparameterised samples ``(*sample_shape, n)`` by one ``torch.sparse.mm``."""
        shape = self._extended_shape(
            check_sample_shape("SparseMultivariateNormalNative.rsample", sample_shape)
        )
        n = self.loc.shape[0]
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        y = torch.sparse.mm(self._scale_tril, eps.reshape(-1, n).mT).mT.reshape(shape)
        return self.loc + y

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density of ``value`` ``(*sample, n)``; O(nnz) by a sparse triangular solve."""
        value = check_value(f"{_NAME}.log_prob", value, self.loc)
        if self._validate_args:
            self._validate_sample(value)
        r = value - self.loc
        n = self.loc.shape[0]
        shape = r.shape
        L = self._factor.matrix(self._factor.values())
        z = tc.sparse_triangular_solve(L, r.reshape(-1, n).mT, upper=False)
        M = z.mT.reshape(shape).square().sum(-1)
        return -0.5 * (n * _LOG_2PI + M) - self._half_log_det()

    def entropy(self) -> torch.Tensor:
        """Differential entropy (a scalar)."""
        return 0.5 * self.loc.shape[0] * (1.0 + _LOG_2PI) + self._half_log_det()
