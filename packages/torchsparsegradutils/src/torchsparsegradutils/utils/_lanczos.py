"""The Lanczos tridiagonal matrices that conjugate gradients builds as it runs.

CG on ``A x = b`` with step sizes ``alpha_k`` and direction updates ``beta_k`` is the
Lanczos process started from ``b`` in disguise (Saad, *Iterative Methods for Sparse Linear
Systems*, 2nd ed., ch. 6, CG derived from Lanczos): the tridiagonal matrix of the Lanczos
basis has

    T[0, 0]    = 1 / alpha_0
    T[k, k]    = 1 / alpha_k + beta_{k-1} / alpha_{k-1}
    T[k, k-1]  = T[k-1, k] = sqrt(beta_{k-1}) / alpha_{k-1}

so its eigenvalues (Ritz values) approximate A's, and stochastic Lanczos quadrature over
random probe vectors estimates ``log det A`` (gpytorch's use of ``linear_cg(n_tridiag=...)``).
"""

from __future__ import annotations

import torch

__all__ = ["Tridiagonal"]

# Once an off-diagonal entry falls below this, the Lanczos basis has lost its
# orthogonality to round-off (the Krylov space is exhausted) and T stops growing.
_EXHAUSTED = 1e-6


class Tridiagonal:
    """T for the first ``probes`` columns of a CG solve, grown one CG iteration at a time.

    Parameters
    ----------
    size : int
        Most rows T may get (``min(max_tridiag_iter, n)``).
    batch_shape : torch.Size
        The batch dimensions of the right-hand side.
    probes : int
        How many leading right-hand-side columns get a T (``n_tridiag``).
    """

    def __init__(
        self,
        size: int,
        batch_shape: torch.Size,
        probes: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.probes = probes
        self.size = size
        # (rows, cols, *batch, probes): one row of T is written per iteration
        self.matrix = torch.zeros(size, size, *batch_shape, probes, dtype=dtype, device=device)
        self.rows = 0
        self.growing = size > 0
        self._last_alpha_reciprocal: torch.Tensor | None = None
        self._last_beta: torch.Tensor | None = None

    def add(self, alpha: torch.Tensor, beta: torch.Tensor) -> None:
        """Add the row of CG's iteration ``self.rows``: ``alpha``, ``beta`` are ``(*batch, k)``.

        A column that has stopped updating has ``alpha = 0``; its reciprocal is taken as 1
        (as 0.2 did), which keeps T finite.
        """
        if not self.growing or self.rows >= self.size:
            return
        alpha = alpha[..., : self.probes]
        beta = beta[..., : self.probes]
        alpha_reciprocal = torch.where(alpha == 0, 1.0, alpha).reciprocal()
        k = self.rows
        if k == 0:
            self.matrix[0, 0] = alpha_reciprocal
        else:
            assert self._last_alpha_reciprocal is not None and self._last_beta is not None
            last_r, last_b = self._last_alpha_reciprocal, self._last_beta
            self.matrix[k, k] = alpha_reciprocal + last_b * last_r
            off_diagonal = last_b.sqrt() * last_r
            self.matrix[k, k - 1] = off_diagonal
            self.matrix[k - 1, k] = off_diagonal
            if bool(off_diagonal.max() < _EXHAUSTED):
                self.growing = False
        self.rows = k + 1
        self._last_alpha_reciprocal = alpha_reciprocal
        self._last_beta = beta.clone()

    def result(self) -> torch.Tensor:
        """``(probes, *batch, r, r)``, ``r`` the rows added (at least one row is returned)."""
        r = max(self.rows, 1)
        T = self.matrix[:r, :r]
        batch_dims = T.dim() - 3
        return T.permute(-1, *range(2, 2 + batch_dims), 0, 1).contiguous()
