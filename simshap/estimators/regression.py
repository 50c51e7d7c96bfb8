"""Weighted least squares of KernelSHAP: Gram matrices, moments and the efficient solve."""

from __future__ import annotations

import itertools

import torch

from simshap.games.contract import coalitions_range

__all__ = ["subsets_of_sizes", "constrained_least_squares", "gram", "moment"]


def subsets_of_sizes(d: int, sizes: list[int], device: torch.device) -> torch.Tensor:
    """All coalitions whose size is in ``sizes``: bool ``(n, d)``."""
    if not sizes:
        return torch.zeros(0, d, dtype=torch.bool, device=device)
    if d <= 20:
        allc = coalitions_range(0, 2**d, d, device)
        return allc[torch.isin(allc.sum(-1), torch.tensor(sizes, device=device))]
    out = []
    for s in sizes:
        k = min(s, d - s)  # enumerate the smaller side, complement if needed
        idx = torch.tensor(list(itertools.combinations(range(d), k)), device=device)
        m = torch.zeros(idx.shape[0], d, dtype=torch.bool, device=device)
        m.scatter_(1, idx.view(idx.shape[0], k), True)
        out.append(m if k == s else ~m)
    return torch.cat(out)


def constrained_least_squares(
    a: torch.Tensor, b: torch.Tensor, total: torch.Tensor
) -> torch.Tensor:
    """Efficiency-constrained least squares: phi = A⁻¹(b - 1 nu) with 1ᵀphi = total, batched.

    A rank-deficient A (fewer distinct coalitions than players, e.g. a budget below d) has no
    unique solution; there the minimum-norm solution of the KKT system
    ``[[A, 1], [1ᵀ, 0]] [phi; nu] = [b; total]`` is returned (pseudo-inverse), which stays
    bounded and efficient instead of exploding along the directions the data cannot see.

    Args:
        a: ``(B, d, d)`` (or ``(d, d)``) weighted Gram matrix E[z zᵀ].
        b: ``(B, d, C)`` weighted E[z (v(S) - v(∅))].
        total: ``(B, C)`` v(N) - v(∅).
    """
    bsz, d, c = b.shape
    a = a.expand(bsz, d, d)
    rhs = torch.cat([b, torch.ones(bsz, d, 1, dtype=b.dtype, device=b.device)], dim=-1)
    sol, info = torch.linalg.solve_ex(a, rhs)
    a_inv_b, a_inv_1 = sol[..., :c], sol[..., c:]
    nu = (a_inv_b.sum(1) - total) / a_inv_1.sum(1)  # (B, C)
    phi = a_inv_b - a_inv_1 * nu.unsqueeze(1)
    eig = torch.linalg.eigvalsh(a)  # ascending; A is symmetric positive semi-definite
    tol = eig[:, -1:].abs().clamp_min(1e-300) * (d * torch.finfo(a.dtype).eps * 1e3)
    bad = (info != 0) | (eig[:, 0] <= tol[:, 0]) | ~torch.isfinite(phi).flatten(1).all(1)
    if bad.any():
        ab = a[bad]
        kkt = kkt_matrix(ab)
        right = torch.cat([b[bad], total[bad].unsqueeze(1).to(b.dtype)], dim=1)  # (k, d+1, C)
        phi = phi.clone()
        phi[bad] = (torch.linalg.pinv(kkt, hermitian=True) @ right)[:, :d]
    return phi


def kkt_matrix(a: torch.Tensor) -> torch.Tensor:
    """``[[A, 1], [1ᵀ, 0]]``: the KKT matrix of efficiency-constrained least squares, batched."""
    bsz, d = a.shape[0], a.shape[-1]
    kkt = torch.zeros(bsz, d + 1, d + 1, dtype=a.dtype, device=a.device)
    kkt[:, :d, :d] = a
    kkt[:, :d, d] = 1.0
    kkt[:, d, :d] = 1.0
    return kkt


def gram(masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted Σ_k w_k z_k z_kᵀ over the coalition axis (second to last)."""
    z = masks.to(weights.dtype)
    return torch.einsum("...md,...m,...me->...de", z, weights, z)


def moment(masks: torch.Tensor, weights: torch.Tensor, centered: torch.Tensor) -> torch.Tensor:
    """Weighted Σ_k w_k z_k (v_k - v(∅)): ``(B, d, C)``."""
    z = masks.to(weights.dtype)
    if z.ndim == 2:  # coalitions shared by every instance
        return torch.einsum("md,m,bmc->bdc", z, weights, centered)
    return torch.einsum("bmd,bm,bmc->bdc", z, weights, centered)
