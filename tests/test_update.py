"""The closed-form ROCR update against independent dense computations."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from formless.rocr.update import null_space_basis, project, rocr_delta


def random_problem(seed: int, d_ff: int = 24, d: int = 10, n: int = 3, m: int = 2, null: int = 14):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_ff, d_ff, generator=g, dtype=torch.float64))
    eigenvalues = torch.cat(
        [
            torch.rand(null, generator=g, dtype=torch.float64) * 1e-3,
            1 + torch.rand(d_ff - null, generator=g, dtype=torch.float64),
        ]
    )
    keys = torch.randn(d_ff, n, generator=g, dtype=torch.float64) * 3
    residuals = torch.randn(d, n, generator=g, dtype=torch.float64)
    prev = torch.randn(d_ff, m, generator=g, dtype=torch.float64) * 3 if m else None
    return eigenvalues, q, keys, residuals, prev


def dense_reference(keys, residuals, basis, lam, prev):
    """X = (P (K K^T + C_prev) + lam I)^-1 P K R^T with a full d_ff x d_ff solve, float64."""
    d_ff = keys.shape[0]
    p = basis @ basis.T
    c_prev = prev @ prev.T if prev is not None else torch.zeros(d_ff, d_ff, dtype=keys.dtype)
    a = p @ (keys @ keys.T + c_prev) + lam * torch.eye(d_ff, dtype=keys.dtype)
    return torch.linalg.solve(a, p @ keys @ residuals.T).T


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 4), m=st.integers(0, 3), lam=st.floats(0.05, 20.0))
def test_woodbury_update_equals_dense_solve(seed, n, m, lam):
    eigenvalues, q, keys, residuals, prev = random_problem(seed, n=n, m=m)
    basis = null_space_basis(eigenvalues, q, threshold=1e-2)
    assert basis.shape[1] == 14
    ours = rocr_delta(keys, residuals, basis, lam, prev)
    torch.testing.assert_close(
        ours, dense_reference(keys, residuals, basis, lam, prev), rtol=1e-9, atol=1e-10
    )


def test_single_concept_is_sherman_morrison_rank_one():
    eigenvalues, q, keys, residuals, _ = random_problem(1, n=1, m=0)
    basis = null_space_basis(eigenvalues, q, 1e-2)
    k, r = keys[:, 0], residuals[:, 0]
    pk = project(basis, k)
    expected = torch.outer(r, pk) / (1.0 + k @ pk)
    delta = rocr_delta(keys, residuals, basis, 1.0)
    torch.testing.assert_close(delta, expected)
    singular = torch.linalg.svdvals(delta)
    assert singular[1] < 1e-12 * singular[0]  # rank one


def test_edit_moves_key_output_by_intended_amount():
    eigenvalues, q, keys, residuals, _ = random_problem(2, n=1, m=0)
    basis = null_space_basis(eigenvalues, q, 1e-2)
    k, r = keys[:, 0], residuals[:, 0]
    kpk = float(k @ project(basis, k))
    for lam in (1.0, 1e-3):
        moved = rocr_delta(keys, residuals, basis, lam) @ k
        torch.testing.assert_close(moved, r * kpk / (lam + kpk))
    # with a ridge term small against k^T P k the key's output moves by the full residual
    torch.testing.assert_close(rocr_delta(keys, residuals, basis, 1e-6) @ k, r, rtol=1e-5, atol=1e-6)


def test_protected_subspace_is_left_unchanged():
    eigenvalues, q, keys, residuals, prev = random_problem(3, n=3, m=2)
    basis = null_space_basis(eigenvalues, q, 1e-2)
    delta = rocr_delta(keys, residuals, basis, 1.0, prev)
    protected = q[:, eigenvalues >= 1e-2]  # directions generic text uses
    assert protected.shape[1] == 10
    assert delta.abs().max() > 1e-2  # the edit is not trivially zero...
    torch.testing.assert_close(
        delta @ protected, torch.zeros(delta.shape[0], 10, dtype=delta.dtype), atol=1e-10, rtol=0
    )  # ...but invisible to protected inputs


def test_projector_factor_is_idempotent_projection():
    eigenvalues, q, *_ = random_problem(4)
    basis = null_space_basis(eigenvalues, q, 1e-2)
    p = basis @ basis.T
    torch.testing.assert_close(p @ p, p)
    x = torch.randn(24, 2, dtype=torch.float64)
    torch.testing.assert_close(project(basis, x), p @ x)
