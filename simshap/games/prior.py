"""KernelSHAP with a prior: refine an amortized estimate g(x) with a budget of game evaluations.

The amortized explainer gives a prior guess g for the Shapley values; ``budget`` evaluations of
the game refine it. With g̃ = g made efficient (shifted so that Σ_i g̃_i = v(N) - v(∅)), the
correction δ is KernelSHAP's efficient weighted least squares on the *residual* game
r(S) = v(S) - v(∅) - 1_Sᵀg̃. On its own that is plain KernelSHAP (adding an additive game
changes nothing); the prior enters through shrinkage. δ ~ N(0, τ² I) a priori, τ² the
explainer's mean squared error per player (from its validation error), and the sampled δ̂ has
noise variance σ̂² per player, estimated from two halves of the sampled coalitions
(:func:`split_half_variance`). The posterior mean is g̃ + δ̂ · τ² / (τ² + σ̂²): the prior counts
for much at small budgets and fades as the budget grows. Below 4d sampled coalitions σ̂² cannot
be estimated and the result is g̃ (the prior made efficient); when the budget covers every
coalition size nothing is sampled and the result is the exact Shapley value.
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.errors import UserError
from simshap.games.budget import make_result
from simshap.games.contract import empty_and_full, game_device
from simshap.games.estimators import check_game, evaluate_in_chunks, float_dtype
from simshap.games.kernel import kernel_designs
from simshap.games.regression import constrained_least_squares, gram, moment
from simshap.shapley_values import ShapleyValues

__all__ = ["kernel_shap_with_prior", "split_half_variance"]


def kernel_shap_with_prior(
    game: Any,
    prior: torch.Tensor,
    prior_var: torch.Tensor | float,
    budget: int,
    paired: bool = True,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
) -> ShapleyValues:
    """Shapley values from a prior ``(B, d, C)`` and ``budget`` game evaluations.

    Args:
        game: any object honoring the game contract.
        prior: the amortized estimate g(x), ``(B, d, C)``.
        prior_var: τ², the prior's mean squared error per player: a float or ``(C,)``.
        budget: game evaluations per instance, v(∅) and v(N) included (at least 2). With 2 the
            answer is the prior made efficient; with ``2^d`` it is exact.
        paired: sample complementary pairs (KernelSHAP's sampling, with the sizes the budget
            covers enumerated).
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        :class:`~simshap.ShapleyValues` with ``method="kernel_shap_with_prior"`` and
        ``n_evals`` = the evaluations spent per instance.
    """
    check_game(game)
    d, bsz = game.num_players, game.num_instances
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 2:
        raise UserError(f"budget must be an integer >= 2 evaluations (∅ and N), got {budget!r}")
    v0, v1 = empty_and_full(game)
    dtype, device = float_dtype(v0), v0.device
    f64 = {"dtype": torch.float64, "device": device}
    c = v0.shape[-1]
    prior = torch.as_tensor(prior).to(**f64)
    if prior.shape != (bsz, d, c):
        raise UserError(f"prior must have shape (B, d, C) = {(bsz, d, c)}, got "
                        f"{tuple(prior.shape)}")  # fmt: skip
    tau2 = torch.as_tensor(prior_var, **f64).expand(c)
    if not (torch.isfinite(tau2).all() and (tau2 > 0).all()):
        raise UserError(f"prior_var must be positive and finite, got {tau2.tolist()}")
    total = (v1 - v0).to(torch.float64)
    g = prior + ((total - prior.sum(1)) / d).unsqueeze(1)  # efficient prior
    n_left = budget - 2
    if d <= 60:
        n_left = min(n_left, 2**d - 2)
    designs = kernel_designs(d, n_left, paired, True, bsz, generator, game_device(game))
    if not designs:
        return _result(game, g, v0, dtype, 2)
    a = torch.zeros(bsz, d, d, **f64)
    b = torch.zeros(bsz, d, c, **f64)
    n_evals, sampled = 2, None
    for masks, w in designs:
        v = evaluate_in_chunks(game, masks, batch_size).to(**f64) - v0.to(**f64).unsqueeze(1)
        z = masks.to(**f64)
        r = v - (torch.einsum("md,bdc->bmc", z, g) if z.ndim == 2 else z @ g)
        a = a + gram(masks, w).to(**f64)
        b = b + moment(masks, w, r).to(**f64)
        n_evals += masks.shape[-2]
        if masks.ndim == 3:  # the sampled (random) block; enumerated blocks are shared (2-D)
            sampled = (z, w, r)
    zero = torch.zeros(bsz, c, **f64)
    if sampled is None:  # every size enumerated: exact, no prior needed
        return _result(game, g + constrained_least_squares(a, b, zero), v0, dtype, n_evals)
    z, w, r = sampled
    n = z.shape[1]
    delta = constrained_least_squares(a, b, zero)  # KernelSHAP of the residual game
    if n >= 4 * d:  # two halves (pairs kept together), 2d+ rows each: the estimate's variance
        a_fixed, b_fixed = a - gram(z, w).to(**f64), b - moment(z, w, r).to(**f64)
        first = (torch.arange(n, device=z.device) // 2) % 2 == 0
        halves = [
            constrained_least_squares(a_fixed + gram(z[:, h], 2 * w[:, h]).to(**f64),
                                      b_fixed + moment(z[:, h], 2 * w[:, h], r[:, h]).to(**f64),
                                      zero)
            for h in (first, ~first)
        ]  # fmt: skip
        n_fixed = n_evals - 2 - n  # enumerated coalitions, shared by both halves
        var = split_half_variance(halves[0], halves[1], n, d, n_fixed)
    else:  # too few samples to tell the estimate's noise from signal: keep the prior
        var = torch.full((bsz, c), float("inf"), **f64)
    shrink = tau2 / (tau2 + var)  # the posterior weight of the sampled correction
    return _result(game, g + delta * shrink.unsqueeze(1), v0, dtype, n_evals)


def split_half_variance(
    half_a: torch.Tensor, half_b: torch.Tensor, n: int, d: int, n_fixed: int = 0
) -> torch.Tensor:
    """Per-player variance of a least-squares estimate on ``n`` sampled rows, from two halves.

    Each half solves the same regression with ``n / 2`` of the sampled rows (and the same
    ``n_fixed`` enumerated rows), so E[(a - b)²] = 2 Var_half. A regression's variance is not
    simply inversely proportional to its rows: with ``p`` coefficients left to the sampled rows
    it scales as 1 / (n - p) (the mean of an inverse Wishart matrix), so Var_half / Var_full =
    ρ = (n - p) / (n / 2 - p). Efficiency fixes one of the d coefficients, and enumerated rows,
    shared by both halves, pin down up to ``n_fixed`` more: p = max(0, d - 1 - n_fixed). ρ is 2
    for n ≫ p and 3 at n = 4p.

    Measured over 100 seeds on synthetic games (estimate / actual variance): with enumerated
    rows 1.02–1.28 for d = 16 and 58; without them, near n = 4d, the estimate is still high
    (1.5 at d = 16, 2.9 at d = 58, against 1.9 and 3.9 with ρ = 2). A grouped jackknife
    (K = 10) was tried and was worse in 5 of 8 settings.

    Args:
        half_a: the first half's estimate ``(B, d, C)``.
        half_b: the second half's estimate ``(B, d, C)``.
        n: sampled rows of the whole estimate (at least ``2d``).
        d: players.
        n_fixed: enumerated rows in both halves (∅ and N not counted).

    Returns:
        ``(B, C)``: the variance per player of the whole estimate, averaged over players.
    """
    p = max(0, d - 1 - n_fixed)
    rho = max(2.0, (n - p) / max(n / 2 - p, 1.0))
    return (half_a - half_b).pow(2).mean(1) / (2 * rho)


def _result(game: Any, phi: torch.Tensor, v0: torch.Tensor, dtype: torch.dtype,
            n_evals: int) -> ShapleyValues:
    return make_result(game, phi.to(dtype), v0, None, n_evals, "kernel_shap_with_prior")
