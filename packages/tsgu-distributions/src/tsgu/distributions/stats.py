r"""Confidence-region tests of a sample's mean and covariance, as torchsparsegradutils 0.2 has them.

Both take summary statistics of ``n`` draws, with any leading batch shape, and return
``(passed, statistic, threshold)``: a boolean and the statistic per batch element (on the
CPU, as 0.2 returns them) and the critical value (a float, from SciPy). A test passes when
the hypothesised parameter lies inside the confidence region of level
``confidence_level``: a higher level gives a larger region, which is easier to pass. A
correct sampler fails each test with probability ``1 - confidence_level``.

Examples
--------
>>> import torch
>>> from tsgu.distributions.stats import cov_nagao_test, mean_hotelling_t2_test
>>> gen = torch.Generator().manual_seed(1)
>>> cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
>>> x = torch.randn(4000, 2, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
>>> passed, t2, threshold = mean_hotelling_t2_test(x.mean(0), torch.zeros(2), x.T.cov(), 4000)
>>> bool(passed), round(threshold, 3)
(True, 5.997)
>>> passed, tn, threshold = cov_nagao_test(x.T.cov(), cov, 4000)
>>> bool(passed), round(threshold, 3)
(True, 7.815)
"""

from __future__ import annotations

import torch

from tsgu.core.validation import check_same_device

from ._validate import check_vector

__all__ = ["cov_nagao_test", "mean_hotelling_t2_test"]


def _check_level(fn: str, confidence_level: object) -> float:
    if (
        isinstance(confidence_level, bool)
        or not isinstance(confidence_level, (int, float))
        or not 0.0 < float(confidence_level) < 1.0
    ):
        raise ValueError(f"{fn}: confidence_level must be in (0, 1), got {confidence_level!r}")
    return float(confidence_level)


def _check_n(fn: str, n: object, minimum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < minimum:
        raise ValueError(
            f"{fn}: n (the number of draws) must be an int of at least {minimum}, got {n!r}"
        )
    return n


def _check_matrix(fn: str, name: str, value: object, p: int | None = None) -> torch.Tensor:
    t = check_vector(fn, name, value, "(*batch, p, p)", min_dim=2)
    if t.shape[-1] != t.shape[-2] or (p is not None and t.shape[-1] != p):
        size = "(*batch, p, p)" + (f" with p = {p}" if p is not None else "")
        raise ValueError(f"{fn}: {name} must be {size}, got shape {tuple(t.shape)}")
    return t


def mean_hotelling_t2_test(
    sample_mean: torch.Tensor,
    true_mean: torch.Tensor,
    sample_cov: torch.Tensor,
    n: int,
    confidence_level: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""One-sample Hotelling :math:`T^2` test: is ``true_mean`` in the mean's confidence region?

    Parameters
    ----------
    sample_mean : torch.Tensor
        Mean of ``n`` draws, ``(*batch, p)``.
    true_mean : torch.Tensor
        Hypothesised mean, broadcastable to ``sample_mean``.
    sample_cov : torch.Tensor
        Unbiased sample covariance of the draws, ``(*batch, p, p)``, positive definite.
    n : int
        Number of draws, more than ``p``.
    confidence_level : float
        In (0, 1); default 0.95.

    Returns
    -------
    passed : torch.Tensor
        bool ``(*batch,)``: :math:`T^2 \le` threshold (CPU).
    statistic : torch.Tensor
        :math:`T^2` ``(*batch,)`` (CPU).
    threshold : float
        :math:`\frac{p(n-1)}{n-p} F_{p,\,n-p}(\text{confidence\_level})`.

    Raises
    ------
    TypeError
        A sparse or non-tensor input.
    ValueError
        Shapes that do not fit; ``n <= p``; a level outside (0, 1); a covariance that is
        not positive definite.

    Notes
    -----
    :math:`T^2 = n\,(\bar x - \mu_0)^\top \hat\Sigma^{-1} (\bar x - \mu_0)`, with
    :math:`\hat\Sigma^{-1}` applied by a Cholesky solve (no explicit inverse),
    and :math:`\frac{n-p}{p(n-1)} T^2 \sim F_{p,\,n-p}` for Gaussian draws (Hotelling, 1947).
    The quantile is ``scipy.stats.f.ppf``.

    Examples
    --------
    >>> import torch
    >>> from tsgu.distributions.stats import mean_hotelling_t2_test
    >>> passed, t2, threshold = mean_hotelling_t2_test(
    ...     torch.tensor([[0.1, 0.0]]), torch.zeros(1, 2), torch.eye(2).expand(1, 2, 2), 100
    ... )
    >>> passed, t2
    (tensor([True]), tensor([1.0000]))
    """
    from scipy import stats

    fn = "mean_hotelling_t2_test"
    sample_mean = check_vector(fn, "sample_mean", sample_mean, "(*batch, p)")
    true_mean = check_vector(fn, "true_mean", true_mean, "(*batch, p)")
    p = sample_mean.shape[-1]
    sample_cov = _check_matrix(fn, "sample_cov", sample_cov, p)
    if true_mean.shape[-1] != p:
        raise ValueError(
            f"{fn}: true_mean must have p = {p} entries in its last dimension, "
            f"got shape {tuple(true_mean.shape)}"
        )
    check_same_device(fn, ("sample_mean", "sample_cov"), sample_mean, sample_cov)
    check_same_device(fn, ("sample_mean", "true_mean"), sample_mean, true_mean)
    n = _check_n(fn, n, p + 1)
    level = _check_level(fn, confidence_level)
    dtype = torch.promote_types(sample_mean.dtype, sample_cov.dtype)
    diff = (sample_mean.to(dtype) - true_mean.to(dtype)).unsqueeze(-1)
    chol, info = torch.linalg.cholesky_ex(sample_cov.to(dtype))
    if bool((info != 0).any()):
        raise ValueError(f"{fn}: sample_cov must be positive definite, its Cholesky failed")
    batch = torch.broadcast_shapes(diff.shape[:-2], chol.shape[:-2])
    diff, chol = diff.expand(*batch, p, 1), chol.expand(*batch, p, p)
    t2 = n * (diff * torch.cholesky_solve(diff, chol)).sum(dim=(-2, -1))
    threshold = p * (n - 1) / (n - p) * float(stats.f.ppf(level, p, n - p))
    t2 = t2.cpu()
    return t2 <= threshold, t2, threshold


def cov_nagao_test(
    emp_cov: torch.Tensor,
    ref_cov: torch.Tensor,
    n: int,
    confidence_level: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""Nagao's test: is ``ref_cov`` consistent with the empirical covariance of ``n`` draws?

    Parameters
    ----------
    emp_cov : torch.Tensor
        Sample covariance, ``(*batch, p, p)``.
    ref_cov : torch.Tensor
        Hypothesised covariance, positive definite, broadcastable to ``emp_cov``.
    n : int
        Number of draws (at least 2).
    confidence_level : float
        In (0, 1); default 0.95.

    Returns
    -------
    passed : torch.Tensor
        bool ``(*batch,)``: :math:`T_N \le` threshold (CPU).
    statistic : torch.Tensor
        :math:`T_N` ``(*batch,)`` (CPU).
    threshold : float
        :math:`\chi^2_{\nu}(\text{confidence\_level})`, :math:`\nu = p(p+1)/2`.

    Raises
    ------
    TypeError
        A sparse or non-tensor input.
    ValueError
        Shapes that do not fit; ``n < 2``; a level outside (0, 1); a reference covariance
        that is not positive definite.

    Notes
    -----
    With :math:`\Sigma_0 = C C^\top` (Cholesky), :math:`W = C^{-1}\hat\Sigma C^{-\top}` (two
    triangular solves) and :math:`T_N = \frac n2 \lVert W - I\rVert_F^2`, asymptotically
    :math:`\chi^2` with :math:`p(p+1)/2` degrees of freedom under
    :math:`\hat\Sigma \to \Sigma_0` (Nagao, 1973, eq. 3.3). The quantile is
    ``scipy.stats.chi2.ppf``.

    Examples
    --------
    >>> import torch
    >>> from tsgu.distributions.stats import cov_nagao_test
    >>> passed, tn, threshold = cov_nagao_test(2 * torch.eye(2), torch.eye(2), 10)
    >>> bool(passed), float(tn)  # (10 / 2) * ||I||_F^2
    (False, 10.0)
    """
    from scipy import stats

    fn = "cov_nagao_test"
    emp_cov = _check_matrix(fn, "emp_cov", emp_cov)
    p = emp_cov.shape[-1]
    ref_cov = _check_matrix(fn, "ref_cov", ref_cov, p)
    check_same_device(fn, ("emp_cov", "ref_cov"), emp_cov, ref_cov)
    n = _check_n(fn, n, 2)
    level = _check_level(fn, confidence_level)
    dtype = torch.promote_types(emp_cov.dtype, ref_cov.dtype)
    chol, info = torch.linalg.cholesky_ex(ref_cov.to(dtype))
    if bool((info != 0).any()):
        raise ValueError(f"{fn}: ref_cov must be positive definite, its Cholesky failed")
    emp, chol = torch.broadcast_tensors(emp_cov.to(dtype), chol)
    half = torch.linalg.solve_triangular(chol, emp, upper=False)  # C^{-1} S
    W = torch.linalg.solve_triangular(chol, half.mT, upper=False)  # C^{-1} (C^{-1} S)^T
    eye = torch.eye(p, dtype=dtype, device=W.device)
    tn = (0.5 * n) * (W - eye).square().sum(dim=(-2, -1))
    threshold = float(stats.chi2.ppf(level, p * (p + 1) / 2))
    tn = tn.cpu()
    return tn <= threshold, tn, threshold
