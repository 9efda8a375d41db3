"""``SparseMultivariateNormal``: a Gaussian whose covariance or precision has a sparse factor."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.distributions import Distribution, constraints
from torch.distributions.utils import _standard_normal

import tsgu.core as tc

from ._factor import SparseFactor
from ._fold import apply_folded
from ._validate import (
    batch_shape_of,
    check_diagonal,
    check_factor,
    check_factor_values,
    check_positive,
    check_real,
    check_sample_shape,
    check_value,
    check_vector,
)
from .constraints import sparse_lower_cholesky, sparse_strictly_lower

__all__ = ["SparseMultivariateNormal"]

_NAME = "SparseMultivariateNormal"
_LOG_2PI = math.log(2 * math.pi)


class SparseMultivariateNormal(Distribution):
    r"""A multivariate normal whose covariance or precision is given by a sparse triangular factor.

    The torchsparsegradutils 0.2 signature and meaning, with ``log_prob``, ``entropy`` and
    ``variance`` added, and any sample and batch shape. Exactly one of ``scale_tril`` and
    ``precision_tril`` is given; ``diagonal`` chooses between the two factorisations:

    * ``scale_tril``: covariance :math:`\Sigma = L L^\top`, L lower triangular with its
      positive diagonal stored;
    * ``scale_tril`` and ``diagonal``: covariance :math:`\Sigma = L D L^\top`, L unit lower
      triangular with its diagonal *not* stored;
    * ``precision_tril``: precision :math:`\Sigma^{-1} = L L^\top`, L as for ``scale_tril``;
    * ``precision_tril`` and ``diagonal``: precision :math:`\Sigma^{-1} = L D L^\top`, L unit
      lower triangular with its diagonal *not* stored,

    with :math:`D = \operatorname{diag}(d)`, ``d = diagonal > 0``. In the :math:`L D L^\top` forms
    the factor holds only the strictly lower part: its unit diagonal is implicit.

    Parameters
    ----------
    loc : torch.Tensor
        Mean, ``(*batch, n)``, float32 or float64.
    diagonal : torch.Tensor, optional
        ``d`` of :math:`L D L^\top`, ``(*batch, n)``, positive. ``None``: the
        :math:`L L^\top` form.
    scale_tril : torch.Tensor, optional
        Sparse COO or CSR factor of the covariance, ``(n, n)`` or ``(b, n, n)`` (int32 or
        int64 CSR indices), with loc's dtype and device. A batched factor belongs to the
        last batch dimension; one of size 1 is broadcast.
    precision_tril : torch.Tensor, optional
        The same for a factor of the precision.
    validate_args : bool, optional
        Check the values of the arguments: the factor lower triangular (strictly, in the
        :math:`L D L^\top` forms), its diagonal stored and positive (:math:`L L^\top`),
        ``diagonal`` positive, ``loc`` free of NaN; and in :meth:`log_prob`, the value's
        shape. ``None``: torch's default (:meth:`Distribution.set_default_validate_args`,
        on unless Python runs with ``-O``). Shapes, layouts, dtypes and devices are always
        checked.

    Raises
    ------
    TypeError
        An argument that is not a tensor; a factor that is not sparse COO/CSR; a dense
        argument that is sparse.
    ValueError
        Both or neither factor; shapes, dtypes or devices that disagree; batch shapes that
        do not broadcast; with validation, a factor that is not (strictly) lower triangular,
        a missing or non-positive factor diagonal, a non-positive ``diagonal``, NaN in loc.

    Notes
    -----
    Every method folds all its sample and batch vectors into the columns of one
    right-hand side and makes one call of :func:`tsgu.core.sparse_mm` or
    :func:`tsgu.core.sparse_triangular_solve` (no Python loop over samples or batch), so
    time and memory are O(nnz·K + n·K) for K vectors, and the gradients of the factor are
    sparse, with its layout and indices, reaching the values of a factor built with
    :func:`tsgu.core.sparse_coo_tensor` / :func:`tsgu.core.sparse_csr_tensor`.

    Sampling (:meth:`rsample`, reparameterised), with :math:`\varepsilon \sim N(0, I)`:

    * covariance :math:`L L^\top`: :math:`x = \mu + L \varepsilon`;
    * covariance :math:`L D L^\top`: :math:`\eta = \sqrt d \odot \varepsilon`,
      :math:`x = \mu + \eta + L_s \eta` (:math:`L_s` the stored strict part);
    * precision :math:`L L^\top`: :math:`x = \mu + L^{-\top} \varepsilon`;
    * precision :math:`L D L^\top`: :math:`x = \mu + L^{-\top} (\varepsilon / \sqrt d)`
      (a unit triangular solve).

    Density (:meth:`log_prob`), with :math:`r = x - \mu`:
    :math:`\log p(x) = -\tfrac12 (n \log 2\pi + M) - \tfrac12 \log\det\Sigma`, where

    * covariance: :math:`M = \lVert L^{-1} r \rVert^2` (:math:`L L^\top`) or
      :math:`\sum_i (L^{-1} r)_i^2 / d_i` (:math:`L D L^\top`), a triangular solve;
    * precision: :math:`M = \lVert L^\top r \rVert^2` or :math:`\sum_i d_i (L^\top r)_i^2`,
      a sparse product with the transposed factor (its permutation is found once);
    * :math:`\tfrac12\log\det\Sigma = \pm\sum_i \log|L_{ii}|` or
      :math:`\pm\tfrac12\sum_i \log d_i` (+ for covariance, − for precision).

    :meth:`entropy` is :math:`\tfrac n2 (1 + \log 2\pi) + \tfrac12 \log\det\Sigma`.
    :attr:`variance` is cheap for a covariance factor: the row sums of
    :math:`L_{ij}^2` (:math:`L L^\top`) or :math:`d_i + \sum_j L_{ij}^2 d_j`
    (:math:`L D L^\top`); for a precision factor it would need the diagonal of
    :math:`(L L^\top)^{-1}`, which is dense work, so it raises NotImplementedError.

    **Exploding gradients of the precision** :math:`L L^\top` **form.** There a sample is
    :math:`x = \mu + L^{-\top}\varepsilon`, and the gradient of a loss :math:`f` with
    respect to a stored entry is :math:`\partial f/\partial L_{ij} = -x_i\,(L^{-1} g)_j`
    with :math:`g = \partial f/\partial x`. Write the same precision as
    :math:`L D L^\top`: :math:`L = U \operatorname{diag}(s)` with :math:`U` unit triangular
    and :math:`d = s^2`. Then :math:`(L^{-1}g)_j = (U^{-1}g)_j / s_j`, so
    :math:`\partial f/\partial L_{ij} = (\partial f/\partial U_{ij}) / s_j`: every factor
    gradient of the :math:`L L^\top` form is that of the :math:`L D L^\top` form divided by
    a diagonal entry of :math:`L`. On a badly conditioned precision (small :math:`s`) the
    :math:`L L^\top` factor gradients grow like :math:`1/s^2` (values above 1e6 are
    common), the :math:`L D L^\top` ones only like the samples themselves
    (:math:`1/s`): its triangular solve has a unit diagonal, and all of the scale sits in
    ``diagonal``, an elementwise term. Prefer ``diagonal=`` with a precision factor, and
    train ``diagonal`` through a log or softplus (its raw gradient scales like
    :math:`d^{-3/2}`, as that of any parameter that sets the sample scale).

    Examples
    --------
    >>> import torch
    >>> import tsgu.core as tc
    >>> from tsgu.distributions import SparseMultivariateNormal
    >>> crow, col = torch.tensor([0, 1, 3, 5]), torch.tensor([0, 0, 1, 1, 2])
    >>> values = torch.tensor([1.0, 0.5, 2.0, -0.3, 1.5], requires_grad=True)
    >>> L = tc.sparse_csr_tensor(crow, col, values, (3, 3))  # lower triangular
    >>> mvn = SparseMultivariateNormal(torch.zeros(3), scale_tril=L)
    >>> x = mvn.rsample((2, 5))  # any sample shape
    >>> x.shape
    torch.Size([2, 5, 3])
    >>> mvn.log_prob(x).sum().backward()  # gradient to the 5 stored values
    >>> values.grad.shape
    torch.Size([5])
    >>> mvn.variance.detach()  # row sums of squares
    tensor([1.0000, 4.2500, 2.3400])

    The same matrix as the unit factor of a precision (its diagonal left out):

    >>> strict = tc.sparse_csr_tensor(
    ...     torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1]), torch.tensor([0.5, -0.3]), (3, 3)
    ... )
    >>> prec = SparseMultivariateNormal(
    ...     torch.zeros(3), diagonal=torch.ones(3), precision_tril=strict
    ... )
    >>> prec.entropy()
    tensor(4.2568)
    """

    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self,
        loc: torch.Tensor,
        diagonal: torch.Tensor | None = None,
        scale_tril: torch.Tensor | None = None,
        precision_tril: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        fn = _NAME
        if (scale_tril is None) == (precision_tril is None):
            got = "both" if scale_tril is not None else "neither"
            raise ValueError(
                f"{fn}: exactly one of scale_tril and precision_tril must be given, got {got}"
            )
        loc = check_vector(fn, "loc", loc)
        name = "scale_tril" if scale_tril is not None else "precision_tril"
        factor = check_factor(
            fn, name, scale_tril if scale_tril is not None else precision_tril, loc
        )
        shapes: dict[str, tuple[int, ...]] = {"loc": tuple(loc.shape[:-1])}
        if diagonal is not None:
            diagonal = check_diagonal(fn, diagonal, loc)
            shapes["diagonal"] = tuple(diagonal.shape[:-1])
        shapes[name] = tuple(factor.shape[:-2])
        batch_shape = batch_shape_of(fn, shapes)
        event_shape = loc.shape[-1:]
        validate = Distribution._validate_args if validate_args is None else validate_args
        if validate:
            check_real(fn, "loc", loc)
            if diagonal is not None:
                check_positive(fn, "diagonal", diagonal)
            check_factor_values(fn, name, factor, ldlt=diagonal is not None)
        self.loc = loc.expand(batch_shape + event_shape)
        self._diagonal = diagonal
        self._tril = factor
        self._is_covariance = name == "scale_tril"
        self._factor = SparseFactor(factor)
        super().__init__(batch_shape, event_shape, validate_args=False)
        self._validate_args = validate

    # ---------------------------------------------------------------- arguments
    @property
    def arg_constraints(self) -> dict[str, constraints.Constraint]:
        """The constraints of the given arguments (the factor's is a sparse one)."""
        out: dict[str, constraints.Constraint] = {"loc": constraints.real_vector}
        name = "scale_tril" if self._is_covariance else "precision_tril"
        if self._diagonal is not None:
            out["diagonal"] = constraints.independent(constraints.positive, 1)
            out[name] = sparse_strictly_lower
        else:
            out[name] = sparse_lower_cholesky
        return out

    @property
    def diagonal(self) -> torch.Tensor | None:
        """``d`` of the :math:`L D L^\\top` forms, as given (None for :math:`L L^\\top`)."""
        return self._diagonal

    @property
    def scale_tril(self) -> torch.Tensor | None:
        """The sparse covariance factor, as given (None for a precision factor)."""
        return self._tril if self._is_covariance else None

    @property
    def precision_tril(self) -> torch.Tensor | None:
        """The sparse precision factor, as given (None for a covariance factor)."""
        return None if self._is_covariance else self._tril

    @property
    def is_ldlt_parameterization(self) -> bool:
        """True for the :math:`L D L^\\top` forms (``diagonal`` given)."""
        return self._diagonal is not None

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        """Marginal variances ``(*batch, n)``: O(nnz) for a covariance factor.

        Raises NotImplementedError for a precision factor (the diagonal of
        :math:`(L L^\\top)^{-1}` is dense work).
        """
        if not self._is_covariance:
            raise NotImplementedError(
                f"{_NAME}.variance: the variance of a precision factor is the diagonal of "
                "(L Lᵀ)⁻¹ (or (L D Lᵀ)⁻¹), which has no O(nnz) form; estimate it from "
                "rsample, or use a covariance factor (scale_tril)"
            )
        full = self._batch_shape + self._event_shape
        squares = self._factor.values().square()
        if self._diagonal is None:
            return self._factor.row_sums(squares).expand(full)
        d = self._diagonal.expand(full)
        W = self._factor.matrix(squares)
        return d + apply_folded(lambda X: tc.sparse_mm(W, X), d, self._factor_batch)

    # ------------------------------------------------------------------ helpers
    @property
    def _factor_batch(self) -> int | None:
        return self._factor.shape[0] if self._factor.batched else None

    def _half_log_det(self, values: torch.Tensor) -> torch.Tensor:
        """:math:`\\tfrac12 \\log\\det\\Sigma`, shaped like the parameters' batch."""
        if self._diagonal is not None:
            half = 0.5 * self._diagonal.log().sum(-1)
        else:
            half = self._factor.diagonal(values).abs().log().sum(-1)
        return half if self._is_covariance else -half

    def _solve(self, L: torch.Tensor, x: torch.Tensor, transpose: bool) -> torch.Tensor:
        """:math:`L^{-1} x` or :math:`L^{-\top} x` for every vector of x (unit diagonal in LDLᵀ)."""
        unit = self._diagonal is not None
        if unit and self._factor.nnz == 0:
            # L = I. (torch 2.13's MKL kernel returns NaN for a unit solve with no entries.)
            return x
        return apply_folded(
            lambda X: tc.sparse_triangular_solve(
                L, X, upper=False, unitriangular=unit, transpose=transpose
            ),
            x,
            self._factor_batch,
        )

    # ------------------------------------------------------------------ methods
    def expand(
        self, batch_shape: Any, _instance: SparseMultivariateNormal | None = None
    ) -> SparseMultivariateNormal:
        """The same distribution over a larger batch (views; the factor is shared)."""
        new = self._get_checked_instance(SparseMultivariateNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        try:
            ok = torch.broadcast_shapes(self._batch_shape, batch_shape) == batch_shape
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"{_NAME}.expand: batch_shape must be one that the batch shape "
                f"{tuple(self._batch_shape)} broadcasts to, got {tuple(batch_shape)}"
            )
        new.loc = self.loc.expand(batch_shape + self._event_shape)
        new._diagonal = self._diagonal
        new._tril = self._tril
        new._is_covariance = self._is_covariance
        new._factor = self._factor
        Distribution.__init__(new, batch_shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def rsample(self, sample_shape: Any = ()) -> torch.Tensor:
        """Reparameterised samples ``(*sample_shape, *batch, n)``, differentiable in every
        parameter (the factor's gradient is sparse)."""
        shape = self._extended_shape(
            check_sample_shape("SparseMultivariateNormal.rsample", sample_shape)
        )
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)
        values = self._factor.values()
        L = self._factor.matrix(values)
        fb = self._factor_batch
        d = self._diagonal
        if self._is_covariance:
            if d is None:
                return self.loc + apply_folded(lambda X: tc.sparse_mm(L, X), eps, fb)
            eta = d.sqrt() * eps
            return self.loc + eta + apply_folded(lambda X: tc.sparse_mm(L, X), eta, fb)
        rhs = eps if d is None else eps * d.rsqrt()
        return self.loc + self._solve(L, rhs, transpose=True)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density of ``value`` ``(*sample, *batch, n)`` (batch dims broadcast)."""
        value = check_value(f"{_NAME}.log_prob", value, self.loc)
        if self._validate_args:
            self._validate_sample(value)
        r = value - self.loc
        values = self._factor.values()
        fb = self._factor_batch
        d = self._diagonal
        if self._is_covariance:
            z = self._solve(self._factor.matrix(values), r, transpose=False)
            M = z.square().sum(-1) if d is None else (z.square() / d).sum(-1)
        else:
            Lt = self._factor.transpose(values)
            z = apply_folded(lambda X: tc.sparse_mm(Lt, X), r, fb)
            M = z.square().sum(-1) if d is None else ((z + r).square() * d).sum(-1)
        n = self._event_shape[0]
        return -0.5 * (n * _LOG_2PI + M) - self._half_log_det(values)

    def entropy(self) -> torch.Tensor:
        """Differential entropy, ``batch_shape``."""
        n = self._event_shape[0]
        H = 0.5 * n * (1.0 + _LOG_2PI) + self._half_log_det(self._factor.values())
        return H.expand(self._batch_shape)

    def __repr__(self) -> str:
        name = "scale_tril" if self._is_covariance else "precision_tril"
        A = self._tril
        layout = "COO" if A.layout == torch.sparse_coo else "CSR"
        nnz = self._factor.coords.raw_values.numel()
        parts = [f"loc: {tuple(self.loc.shape)}"]
        if self._diagonal is not None:
            parts.append(f"diagonal: {tuple(self._diagonal.shape)}")
        parts.append(f"{name}: {layout} {tuple(A.shape)} nnz={nnz}")
        return f"{_NAME}({', '.join(parts)})"

    @classmethod
    def from_precision(cls, loc: torch.Tensor, precision: torch.Tensor) -> SparseMultivariateNormal:
        r"""N(loc, Q⁻¹) given by a sparse symmetric positive definite precision matrix Q.

        Q (2D, COO or CSR, both triangles stored, possibly built from trainable values with
        tsgu's constructors) is factorized once by :func:`tsgu.factor.factorize`
        (``pip install tsgu-distributions[factor]``). ``log_prob`` is
        :math:`-\tfrac12 (n \log 2\pi + r^\top Q r - \log\det Q)` with the exact gradient of
        :math:`\log\det Q` (:math:`Q^{-1}` at Q's pattern, by selected inversion); ``rsample``
        is :math:`loc + P^\top L^{-\top}\varepsilon` (differentiable in loc, not in Q);
        ``entropy`` is :math:`\tfrac n2 (1 + \log 2\pi) - \tfrac12 \log\det Q`.

        Examples are in ``tsgu.distributions._from_matrix.MatrixNormal`` (they run where
        tsgu-factor is installed).
        """
        from ._from_matrix import MatrixNormal

        return MatrixNormal(loc, precision, is_covariance=False)

    @classmethod
    def from_covariance(
        cls, loc: torch.Tensor, covariance: torch.Tensor
    ) -> SparseMultivariateNormal:
        r"""N(loc, Σ) given by a sparse symmetric positive definite covariance matrix Σ.

        As :meth:`from_precision`: ``log_prob`` solves with Σ's kept factorization (exact
        gradients for Σ, its logdet by selected inversion); ``rsample`` is
        :math:`loc + \Sigma P^\top L^{-\top}\varepsilon = loc + P^\top L \varepsilon`
        (differentiable in loc, not in Σ).

        Examples are in ``tsgu.distributions._from_matrix.MatrixNormal``.
        """
        from ._from_matrix import MatrixNormal

        return MatrixNormal(loc, covariance, is_covariance=True)
