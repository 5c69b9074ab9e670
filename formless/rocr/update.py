"""The closed-form ROCR update (AlphaEdit form), without any d_ff x d_ff solve.

For keys ``K`` (d_ff x n), residuals ``R`` (d x n), keys of earlier edits ``K_prev`` (d_ff x m)
and the null-space projector ``P = U0 U0^T``:

    X = (P (K K^T + K_prev K_prev^T) + lam I)^-1  P K R^T,      W <- W + X^T

With ``K_all = [K_prev, K]`` and ``U = P K_all``, the right-hand side is ``U E R^T`` (``E`` picks the
new columns), and the push-through identity ``(lam I + U K_all^T)^-1 U = U (lam I + K_all^T U)^-1``
gives

    X = U (lam I + K_all^T U)^-1 E R^T

so the only solve is (n + m) x (n + m), and nothing is divided by lam (stable for small lam).
One concept and no history reduces to Sherman-Morrison: ``dW = r (P k)^T / (lam + k^T P k)``.
"""

from __future__ import annotations

import torch


def null_space_basis(eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, threshold: float) -> torch.Tensor:
    """Columns ``U0`` spanning the directions where generic text has second moment < ``threshold``."""
    return eigenvectors[:, eigenvalues < threshold].contiguous()


def project(basis: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``P x`` with ``P = U0 U0^T`` applied through its factor (never forms P)."""
    return basis @ (basis.T @ x)


def rocr_delta(
    keys: torch.Tensor,
    residuals: torch.Tensor,
    basis: torch.Tensor,
    lam: float,
    previous_keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weight change ``X^T`` (d x d_ff) for ``keys`` (d_ff x n) and ``residuals`` (d x n)."""
    if keys.ndim != 2 or residuals.ndim != 2 or keys.shape[1] != residuals.shape[1]:
        raise ValueError(
            f"keys {tuple(keys.shape)} and residuals {tuple(residuals.shape)} must be d_ff x n, d x n"
        )
    if lam <= 0:
        raise ValueError("lam must be positive")
    all_keys = (
        keys if previous_keys is None or previous_keys.numel() == 0 else torch.cat([previous_keys, keys], 1)
    )
    p_all = project(basis, all_keys)  # U = P K_all, d_ff x N
    n_total, n_new = all_keys.shape[1], keys.shape[1]
    inner = all_keys.double().T @ p_all.double()
    inner.diagonal().add_(lam)
    rhs = torch.zeros(n_total, residuals.shape[0], dtype=torch.float64, device=keys.device)
    rhs[n_total - n_new :] = residuals.double().T  # E R^T
    coefficients = torch.linalg.solve(inner, rhs).to(p_all.dtype)  # N x d
    return (p_all @ coefficients).T.contiguous()
