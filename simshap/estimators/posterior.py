"""The weight of the sampled correction under the scale-mixture posterior of the budget knob.

:func:`~simshap.estimators.refine.kernel_shap_with_prior` returns g̃ + a δ̂: the efficient prior g̃
plus a share a of KernelSHAP's sampled correction δ̂. This module computes a per instance from
the posterior over δ (a scale mixture over the prior variances τ² and the noise variance σ²):
its mean weight (``loss="squared"``) or the weight of its geometric median (``loss="l2"``),
which needs the mean of a noncentral χ (:func:`_mean_distance`).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from simshap.errors import UserError

__all__ = ["mixture_weight", "chi2_quantiles", "check_loss", "LOSSES", "VAR_GRID", "GOLDEN_STEPS"]

LOSSES = ("l2", "squared")


def check_loss(loss: str) -> None:
    """Refuse a loss other than those in :data:`LOSSES`."""
    if loss not in LOSSES:
        raise UserError(f"loss must be one of {LOSSES}, got {loss!r}")


VAR_GRID = 16  # σ² quantiles the weight averages over when σ̂² has finite degrees of freedom
GOLDEN_STEPS = 32  # golden-section steps for loss="l2": the weight to within 0.618^32 ≈ 2e-7
_INV_PHI = (5**0.5 - 1) / 2
_LAMBDA_MIN_MAX, _LAMBDA_POINTS = 20.0, 4001  # table of h_k; beyond it, its asymptote


def mixture_weight(
    delta: torch.Tensor,
    var: torch.Tensor,
    tau2: torch.Tensor,
    var_dof: float | None = None,
    loss: str = "squared",
) -> torch.Tensor:
    """The weight a of the sampled correction in g̃ + a δ̂, per instance, from the posterior.

    δ ~ N(0, τ² I) with τ² uniform over the K rows of ``tau2``, and δ̂ = δ + noise of variance
    σ² per player, both on the k = d - 1 dimensions that efficiency leaves free. The likelihood
    of ||δ̂||² under each (τ², σ²) weighs the components; given one, δ | δ̂ ~ N(w δ̂, v I) with
    w = τ² / (τ² + σ²) and v = τ² σ² / (τ² + σ²). With ``var_dof`` = ν, σ̂² = ``var`` is taken as
    an estimate with ν degrees of freedom: σ² runs over ``VAR_GRID`` quantiles of its posterior
    ν σ̂² / χ²_ν (Jeffreys prior); without it σ² = σ̂² exactly.

    ``loss="squared"`` gives the posterior mean, E[w | δ̂, σ̂²]. ``loss="l2"`` gives the a that
    minimizes the posterior expected distance E||a δ̂ - δ||, i.e. Σ π · sqrt(v) · h_k(|a - w|
    ||δ̂|| / sqrt(v)) over the components, with h_k(λ) = E||λ e₁ + Z||, Z ~ N(0, I_k). The
    objective is convex in a; a golden-section search finds it in [0, 1].

    Args:
        delta: ``(B, d, C)`` the sampled correction δ̂.
        var: ``(B, C)`` its estimated noise variance per player, σ̂².
        tau2: ``(K, C)`` the prior variances per player.
        var_dof: degrees of freedom of σ̂² (positive), or None to trust it as exact.
        loss: ``"squared"`` (posterior mean) or ``"l2"`` (posterior geometric median).

    Returns:
        ``(B, C)`` weights in [0, 1].
    """
    check_loss(loss)
    dof = max(delta.shape[1] - 1, 1)
    if var_dof is None:
        sigma2 = var.unsqueeze(0)  # (1, B, C)
    else:
        if not var_dof > 0:
            raise UserError(f"var_dof must be positive, got {var_dof!r}")
        scale = float(var_dof) / chi2_quantiles(float(var_dof), VAR_GRID).to(var)
        sigma2 = var.unsqueeze(0) * scale.view(-1, 1, 1)  # (G, B, C)
    total = (tau2[:, None, None, :] + sigma2.unsqueeze(0)).clamp_min(1e-300)  # (K, G, B, C)
    loglik = -0.5 * dof * total.log() - 0.5 * delta.pow(2).sum(1) / total
    post = torch.softmax(loglik.flatten(0, 1), dim=0).view_as(total)
    w = tau2[:, None, None, :] / total
    if loss == "squared":
        return (post * w).sum((0, 1))
    sd = (w * sigma2.unsqueeze(0)).clamp_min(0.0).sqrt()  # sqrt(v), (K, G, B, C)
    norm = delta.pow(2).sum(1).sqrt()  # ||δ̂||, (B, C)
    tabled = _distance_table(dof)
    table = None if tabled is None else (tabled[0].to(norm), tabled[1])  # once, on the device

    def expected_distance(a: torch.Tensor) -> torch.Tensor:
        return (post * _mean_distance((a - w).abs() * norm, sd, dof, table)).sum((0, 1))

    # golden-section search, one new evaluation per step: the interval shrinks by 0.618
    lo, hi = torch.zeros_like(norm), torch.ones_like(norm)
    a1, a2 = hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo)
    f1, f2 = expected_distance(a1), expected_distance(a2)
    for _ in range(GOLDEN_STEPS):
        left = f1 <= f2  # the minimum lies in [lo, a2]: a1 becomes the new a2
        lo, hi = torch.where(left, lo, a1), torch.where(left, a2, hi)
        a_new = torch.where(left, hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo))
        f_new = expected_distance(a_new)
        a1, a2 = torch.where(left, a_new, a2), torch.where(left, a1, a_new)
        f1, f2 = torch.where(left, f_new, f2), torch.where(left, f1, f_new)
    return (lo + hi) / 2


def _mean_distance(
    m: torch.Tensor,
    sd: torch.Tensor,
    k: int,
    table: tuple[torch.Tensor, float] | None = None,
) -> torch.Tensor:
    """E||μ + sd · Z|| for ||μ|| = ``m`` and Z ~ N(0, I_k): sd · h_k(m / sd), elementwise.

    ``table`` is :func:`_distance_table` (k) already on ``m``'s device; by default it is looked up.

    h_k is read from a table on λ in [0, λ_max], λ_max = max(20, 2 sqrt(k)) (linear
    interpolation; exact at the nodes); beyond it, and where sd = 0, h_k is its asymptote
    sqrt(λ² + k - 1) (relative error about 1e-4 at λ_max). Where the table cannot be computed in
    float64 (k above about 100) h_k(λ) ≈ sqrt(λ² + k - 1/2) throughout, within 6.3e-4 of it
    for k >= 99 and closer as k grows.
    """
    if table is None:
        tabled = _distance_table(k)
        table = None if tabled is None else (tabled[0].to(m), tabled[1])
    if table is None:
        return (m.pow(2) + (k - 0.5) * sd.pow(2)).sqrt()
    far = (m.pow(2) + (k - 1) * sd.pow(2)).sqrt()
    table, lam_max = table
    step = lam_max / (_LAMBDA_POINTS - 1)
    lam = m / sd.clamp_min(1e-300)
    pos = (lam / step).clamp(max=_LAMBDA_POINTS - 1.000001)
    i = pos.floor().long()
    frac = pos - i
    near = sd * (table[i] * (1 - frac) + table[i + 1] * frac)
    return torch.where(lam < lam_max, near, far)


@functools.lru_cache(maxsize=64)
def _distance_table(k: int) -> tuple[torch.Tensor, float] | None:
    """h_k(λ) = E||λ e₁ + Z||, Z ~ N(0, I_k), on ``_LAMBDA_POINTS`` points of [0, λ_max].

    The mean of a noncentral χ_k: sqrt(2) Γ((k + 1) / 2) / Γ(k / 2) · ₁F₁(-1/2; k/2; -λ²/2).
    Returns the float64 table and λ_max, or None where ₁F₁ overflows.
    """
    from scipy.special import gammaln, hyp1f1

    lam_max = max(_LAMBDA_MIN_MAX, 2.0 * k**0.5)
    lam = np.linspace(0.0, lam_max, _LAMBDA_POINTS)
    const = np.sqrt(2.0) * np.exp(gammaln((k + 1) / 2) - gammaln(k / 2))
    with np.errstate(all="ignore"):
        values = const * hyp1f1(-0.5, k / 2, -(lam**2) / 2)
    if not np.isfinite(values).all():
        return None
    return torch.from_numpy(values).to(torch.float64), lam_max


def chi2_quantiles(dof: float, n: int) -> torch.Tensor:
    """``n`` evenly spaced quantiles ((i + 0.5) / n) of χ²_dof, float64."""
    from scipy.stats import chi2

    p = (np.arange(n) + 0.5) / n
    return torch.from_numpy(chi2.ppf(p, dof)).to(torch.float64)
