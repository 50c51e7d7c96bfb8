"""ApproSemivalue and Sim-Semivalue: the unified view of Zhang et al.

ApproSemivalue samples marginal contributions with S ~ p^sv; Sim-Semivalue is the paper's
estimator φ̂ = (1/M) Σ_k a_{S_k} v(S_k) + (v(N) − v(∅))/d · 1 on Shapley-kernel coalitions, whose
per-draw target (:func:`sim_semivalue_target`) SimSHAP also trains on. ``budget=`` counts game
evaluations per instance, v(∅) and v(N) included.
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.errors import UserError
from simshap.estimators.budget import (
    check_positive,
    evaluate_in_chunks,
    make_result,
    resolve_budget,
    standard_error,
)
from simshap.games.contract import (
    check_game,
    empty_and_full,
    game_device,
)
from simshap.games.sampling import (
    ShapleyKernelSampler,
    sample_marginal_coalitions,
    shapley_kernel_gamma,
)
from simshap.results import ShapleyValues

__all__ = [
    "appro_semivalue",
    "semivalue_mc",
    "sim_semivalue",
    "sim_semivalue_coefficients",
    "sim_semivalue_target",
]


def appro_semivalue(
    game: Any,
    budget: int | None = None,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> ShapleyValues:
    """ApproSemivalue: phi_i = E_{S ⊆ N∖{i}, P(S) = w(|S|)} [v(S ∪ {i}) - v(S)].

    For every player, ``n = (budget - 2) // (2d)`` coalitions S are drawn with the Shapley
    weights (:func:`simshap.games.sampling.sample_marginal_coalitions`); each sample costs two
    evaluations, and v(∅), v(N) two more, so ``n_evals = 2 d n + 2``.

    Args:
        game: any object honoring the game contract.
        budget: game evaluations per instance, v(∅) and v(N) included (at least 2d + 2).
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        ShapleyValues (``method="appro_semivalue"``) with the standard error over samples.
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    budget = resolve_budget("appro_semivalue", budget, 2 * d + 2)
    n = (budget - 2) // (2 * d)
    device = game_device(game)
    v0, _ = empty_and_full(game)
    without = sample_marginal_coalitions(n, d, generator, device, batch_shape=(bsz,))
    with_i = without | torch.eye(d, dtype=torch.bool, device=without.device)
    masks = torch.stack([with_i, without], dim=3).reshape(bsz, n * d * 2, d)
    v = evaluate_in_chunks(game, masks, batch_size).view(bsz, n, d, 2, -1)
    diffs = v[:, :, :, 0] - v[:, :, :, 1]  # (B, n, d, C): per-sample targets
    return make_result(
        game, diffs.mean(1), v0, standard_error(diffs), 2 * d * n + 2, "appro_semivalue"
    )


semivalue_mc = appro_semivalue  # the older name


# --------------------------------------------------------------------------- Sim-Semivalue


def sim_semivalue_coefficients(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The paper's a_S = gamma (d 1_S - |S| 1) for bool masks ``(..., d)``."""
    d = masks.shape[-1]
    z = masks.to(dtype)
    return shapley_kernel_gamma(d) * (d * z - z.sum(-1, keepdim=True))


def sim_semivalue_target(
    masks: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    centered: bool = True,
) -> torch.Tensor:
    """Sim-Semivalue target (Algorithm 1): phi = (1/M) Σ_k a_{S_k} v(S_k) + (v(N) - v(∅))/d · 1.

    With ``centered=True`` v(S) is replaced by v(S) - v(∅), which keeps the target unbiased
    (E[a_S] = 0) and lowers its variance. Every target is efficient (Σ_i a_{S,i} = 0).
    This is the function the SimSHAP trainer calls, so training and estimation share one formula.

    Args:
        masks: bool ``(B, M, d)`` coalitions drawn from the Shapley kernel (paired or not).
        values: ``(B, M, C)`` their values v(S).
        v_empty: ``(B, C)`` v(∅).
        v_full: ``(B, C)`` v(N).
        centered: subtract v(∅) from v(S).

    Returns:
        ``(B, d, C)`` unbiased estimate of the Shapley values.
    """
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be bool, got {masks.dtype}")
    if masks.ndim != 3 or values.ndim != 3 or masks.shape[:2] != values.shape[:2]:
        raise UserError(
            f"masks (B, M, d) and values (B, M, C) must agree on B and M, got "
            f"{tuple(masks.shape)} and {tuple(values.shape)}"
        )
    d, m = masks.shape[-1], masks.shape[1]
    w = values - v_empty.unsqueeze(1) if centered else values
    z = masks.to(w.dtype)
    # Σ_k a_k w_k = gamma (d Σ_k z_k w_k - Σ_k s_k w_k 1) without materialising a_k
    zw = torch.einsum("bmd,bmc->bdc", z, w)
    sw = (z.sum(-1, keepdim=True) * w).sum(1, keepdim=True)  # (B, 1, C)
    mean = shapley_kernel_gamma(d) * (d * zw - sw) / m
    return mean + ((v_full - v_empty) / d).unsqueeze(1)


def sim_semivalue(
    game: Any,
    budget: int | None = None,
    paired: bool = True,
    centered: bool = True,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> ShapleyValues:
    """The paper's Sim-Semivalue estimator with M = ``budget - 2`` Shapley-kernel coalitions.

    Args:
        game: any object honoring the game contract.
        budget: game evaluations per instance, v(∅) and v(N) included (at least 3).
        paired: draw complementary pairs (a pair contributes ½ a_S (v(S) - v(N∖S))).
        centered: use v(S) - v(∅).
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        ShapleyValues (``method="sim_semivalue"``) with the standard error over samples (over
        pairs when paired and M is even).
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    if d < 2:
        raise UserError("sim_semivalue needs at least 2 players")
    budget = resolve_budget("sim_semivalue", budget, 3)
    m = budget - 2
    v0, v1 = empty_and_full(game)
    masks = ShapleyKernelSampler(d, paired).sample(
        m, generator=generator, device=game_device(game), batch_shape=(bsz,)
    )
    values = evaluate_in_chunks(game, masks, batch_size)
    masks = masks.to(values.device)
    phi = sim_semivalue_target(masks, values, v0, v1, centered)
    # standard error from the per-unit terms a_S w(S), without (B, M, d, C) tensors
    w = values - v0.unsqueeze(1) if centered else values
    a = sim_semivalue_coefficients(masks, w.dtype)
    if paired and m % 2 == 0:
        a, w = a[:, 0::2], (w[:, 0::2] - w[:, 1::2]) / 2  # unit = ½ a_S (v(S) - v(N∖S))
    n = a.shape[1]
    std = None
    if n >= 2:
        mean = torch.einsum("bmd,bmc->bdc", a, w) / n
        second = torch.einsum("bmd,bmc->bdc", a**2, w**2) / n
        var = (second - mean**2).clamp_min(0) * n / (n - 1)
        std = (var / n).sqrt()
    return make_result(game, phi, v0, std, m + 2, "sim_semivalue")
