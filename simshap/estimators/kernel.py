"""KernelSHAP: the Shapley-kernel weighted least-squares value with exact efficiency.

Two ways to spend a budget (``sampling=``):

- ``"kernel"``: whole subset sizes the budget covers are enumerated (shap's rule), the rest is
  drawn from the Shapley kernel with replacement (paired or not).
- ``"leverage"``: Leverage SHAP's size law (Musco & Witter, ICLR 2025). The leverage score of a
  coalition is ``1 / C(d, s)``, so the budget is spread *uniformly over sizes*: each size pair
  ``{s, d-s}`` receives an equal share of complementary pairs (water-filled, so sizes whose share
  covers all their subsets are enumerated), drawn *without replacement*. Each row is reweighted
  by ``P_kernel(size) / (rows drawn of that size)`` (Horvitz-Thompson within the size stratum), so
  the regression is still the Shapley-kernel objective.

With ``threshold`` the estimate runs to Covert & Lee's convergence criterion, applied per
class: max over classes of ``max_i std / (max_i phi - min_i phi)`` within that class.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from simshap.errors import UserError
from simshap.estimators.budget import (
    check_positive,
    evaluate_in_chunks,
    float_dtype,
    make_result,
    resolve_budget,
)
from simshap.estimators.leverage import leverage_allocation, leverage_designs
from simshap.estimators.regression import (
    constrained_least_squares,
    gram,
    moment,
    subsets_of_sizes,
)
from simshap.estimators.tree_adjusted import tree_adjusted_values
from simshap.games.contract import (
    call_game,
    can_select,
    check_game,
    empty_and_full,
    game_device,
)
from simshap.games.sampling import (
    ShapleyKernelSampler,
    sample_by_size,
    shapley_kernel_size_probs,
    shapley_kernel_subset_prob,
)
from simshap.results import ShapleyValues

__all__ = [
    "kernel_shap",
    "kernel_shap_budget_plan",
    "kernel_designs",
    "leverage_allocation",
    "convergence_ratio",
    "constrained_least_squares",
    "subsets_of_sizes",
]


def kernel_shap_budget_plan(d: int, n_samples: int) -> tuple[list[int], int]:
    """Which subset sizes ``n_samples`` sampled coalitions (besides ∅ and N) enumerate fully.

    Follows shap's rule: going from the outside in (sizes 1 and d-1, then 2 and d-2, ...), a
    size pair is enumerated when the samples it would receive in expectation cover all of its
    subsets; the rest of the budget is sampled from the remaining sizes.

    Returns:
        (sorted list of enumerated sizes, number of coalitions left to sample).
    """
    n_sizes = math.ceil((d - 1) / 2)
    n_paired_sizes = (d - 1) // 2
    weights = [(d - 1) / (s * (d - s)) for s in range(1, n_sizes + 1)]
    weights = [w * 2 if i < n_paired_sizes else w for i, w in enumerate(weights)]
    total = sum(weights)
    remaining = [w / total for w in weights]
    left = n_samples
    sizes: list[int] = []
    for s in range(1, n_sizes + 1):
        n_subsets = math.comb(d, s) * (2 if s <= n_paired_sizes else 1)
        if left * remaining[s - 1] / n_subsets >= 1.0 - 1e-8:
            sizes += [s, d - s] if s <= n_paired_sizes else [s]
            left -= n_subsets
            if remaining[s - 1] < 1.0:
                remaining = [w / (1.0 - remaining[s - 1]) for w in remaining]
        else:
            break
    return sorted(sizes), max(left, 0)


def convergence_ratio(values: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Covert & Lee's per-class criterion: max_c [max_i std / (max_i phi - min_i phi)], ``(B,)``.

    Each class is judged against its own spread (not the spread pooled over classes, which in a
    binary probability game is twice as wide and so about 2x looser).
    """
    spread = (values.amax(1) - values.amin(1)).clamp_min(1e-300)  # (B, C)
    return (std.amax(1) / spread).amax(-1)


def kernel_shap(
    game: Any,
    budget: int | None = None,
    paired: bool = True,
    threshold: float | None = None,
    *,
    sampling: str = "kernel",
    batch_size: int = 512,
    generator: torch.Generator | None = None,
    enumerate_sizes: bool = True,
    min_rounds: int = 16,
    max_evals: int = 1_000_000,
    adjust: str | None = None,
    tree_options: dict[str, Any] | None = None,
) -> ShapleyValues:
    """KernelSHAP: the Shapley-kernel weighted least-squares value with exact efficiency.

    phi = A⁻¹(b - 1 nu), nu chosen so that 1ᵀphi = v(N) - v(∅), with A = E[z zᵀ] and
    b = E[z (v(S) - v(∅))] over coalitions S ~ p(S) (the Shapley kernel). One batched solve covers
    all instances and outputs. A budget of ``2^d`` gives the exact Shapley values.

    Args:
        game: any object honoring the game contract.
        budget: game evaluations per instance, v(∅) and v(N) included (default, as in shap,
            ``2d + 2048`` coalitions + 2). Ignored with ``threshold``.
        paired: sample complementary pairs.
        threshold: run to convergence instead (Covert & Lee, per class; see
            :func:`convergence_ratio`): rounds of ``batch_size`` coalitions until every instance
            has ratio < ``threshold`` (after at least ``min_rounds`` rounds).
        sampling: ``"kernel"`` (Shapley-kernel sizes, with replacement) or ``"leverage"``
            (Leverage SHAP's uniform size law, paired, without replacement).
        batch_size: coalitions per instance per game call (and per round, at least 4d).
        generator: optional ``torch.Generator``.
        enumerate_sizes: enumerate the sizes the budget covers (``sampling="kernel"``).
        min_rounds: fewest rounds before convergence is tested.
        max_evals: safety cap on evaluations per instance in convergence mode (a warning says
            when it stops the run early).
        adjust: ``"tree"``: regression adjustment (:mod:`simshap.estimators.tree_adjusted`): a
            model of the sampled values (the linear fit plus LightGBM trees) contributes its exact
            Shapley values and KernelSHAP estimates only the residual (5-fold cross-fitted; budget
            mode, at least 6; needs ``lightgbm``, and ``shap`` above 14 players). It spends no extra
            game evaluations but fits 5 tree models per instance and output, so it pays off
            where the game is expensive. Best with ``sampling="leverage"``.
        tree_options: LightGBM options for ``adjust="tree"``.

    Returns:
        ShapleyValues (``method="kernel_shap"``); ``std`` is set in convergence mode, ``n_evals``
        is the evaluations per instance (in convergence mode, the largest over instances).
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    if sampling not in ("kernel", "leverage"):
        raise UserError(f"sampling must be 'kernel' or 'leverage', got {sampling!r}")
    if adjust not in (None, "tree"):
        raise UserError(f"adjust must be None or 'tree', got {adjust!r}")
    if adjust is not None and threshold is not None:
        raise UserError("adjust='tree' works with a budget, not with threshold=")
    d = game.num_players
    budget = resolve_budget("kernel_shap", budget, 2 if d == 1 else 3, default=2 * d + 2048 + 2)
    v0, v1 = empty_and_full(game)
    total = (v1 - v0).to(torch.float64)
    if d == 1:
        return make_result(game, (v1 - v0).unsqueeze(1), v0, None, 2, "kernel_shap")
    if threshold is not None:
        if not threshold > 0:
            raise UserError(f"threshold must be positive, got {threshold!r}")
        return _converge(
            game, v0, total, paired, threshold, batch_size, generator, min_rounds, max_evals
        )
    n_left = budget - 2
    if d <= 60:
        n_left = min(n_left, 2**d - 2)  # a full budget enumerates every coalition
    if sampling == "leverage":
        if not paired:
            raise UserError("sampling='leverage' draws complementary pairs; use paired=True")
        designs = leverage_designs(d, n_left, game.num_instances, generator, game_device(game))
    else:
        designs = kernel_designs(
            d, n_left, paired, enumerate_sizes, game.num_instances, generator, game_device(game)
        )
    a = b = None
    n_evals = 2
    v0d = v0.to(torch.float64)
    evaluated = []
    for masks, w in designs:
        v_raw = evaluate_in_chunks(game, masks, batch_size).to(torch.float64)
        v = v_raw - v0d.unsqueeze(1)
        a_part, b_part = gram(masks, w), moment(masks, w, v)
        a = a_part if a is None else a + a_part
        b = b_part if b is None else b + b_part
        n_evals += masks.shape[-2]
        evaluated.append((masks, w, v_raw))
    if adjust == "tree" and evaluated and n_left < 2**d - 2:  # a full budget is exact already
        bsz = game.num_instances
        m_all = torch.cat([m.expand(bsz, -1, -1) if m.ndim == 2 else m for m, _, _ in evaluated], 1)
        w_all = torch.cat([w.expand(bsz, -1) if w.ndim == 1 else w for _, w, _ in evaluated], 1)
        v_all = torch.cat([v for _, _, v in evaluated], 1)
        phi = tree_adjusted_values(m_all, w_all, v_all, v0, v1, generator, tree_options)
        return make_result(
            game,
            phi.to(device=v0.device, dtype=float_dtype(v0)),
            v0,
            None,
            n_evals,
            "kernel_shap_tree_adjusted",
        )
    if a is None:
        a = torch.zeros(d, d, dtype=torch.float64, device=v0.device)
        b = torch.zeros(game.num_instances, d, v0.shape[-1], dtype=torch.float64, device=v0.device)
    phi = constrained_least_squares(a, b, total)
    return make_result(game, phi.to(float_dtype(v0)), v0, None, n_evals, "kernel_shap")


def kernel_designs(
    d: int,
    n_left: int,
    paired: bool,
    enumerate_sizes: bool,
    bsz: int,
    generator: torch.Generator | None,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(masks, weights) blocks: enumerated sizes (shared masks) and Shapley-kernel samples."""
    sizes, n_sample = kernel_shap_budget_plan(d, n_left) if enumerate_sizes else ([], n_left)
    out = []
    if sizes:
        enum = subsets_of_sizes(d, sizes, device)
        out.append((enum, shapley_kernel_subset_prob(d, enum.sum(-1)).to(device)))
    if n_sample > 0 and len(sizes) < d - 1:
        probs = shapley_kernel_size_probs(d).clone()
        if sizes:
            probs[torch.tensor(sizes) - 1] = 0.0
        mass_left = float(probs.sum())
        masks = sample_by_size(
            probs,
            n_sample,
            d,
            paired=paired,
            generator=generator,
            device=device,
            batch_shape=(bsz,),
        )
        w = torch.full((bsz, n_sample), mass_left / n_sample, dtype=torch.float64, device=device)
        out.append((masks, w))
    return out


def _converge(
    game: Any,
    v0: torch.Tensor,
    total: torch.Tensor,
    paired: bool,
    threshold: float,
    round_size: int,
    generator: torch.Generator | None,
    min_rounds: int,
    max_evals: int,
) -> ShapleyValues:
    d, bsz, c = game.num_players, game.num_instances, v0.shape[-1]
    device = game_device(game)
    sampler = ShapleyKernelSampler(d, paired=paired)
    round_size = max(round_size, 4 * d) + (max(round_size, 4 * d) % 2 if paired else 0)
    f64 = {"dtype": torch.float64, "device": v0.device}
    a_sum, b_sum = torch.zeros(bsz, d, d, **f64), torch.zeros(bsz, d, c, **f64)
    mean_r, m2_r = torch.zeros(bsz, d, c, **f64), torch.zeros(bsz, d, c, **f64)  # Welford
    values = torch.zeros(bsz, d, c, **f64)
    std = torch.full((bsz, d, c), float("inf"), **f64)
    evals = torch.full((bsz,), 2, dtype=torch.long, device=v0.device)
    live = torch.arange(bsz, device=v0.device)  # instances still sampling
    v0d = v0.to(torch.float64)
    rounds = 0
    while True:
        # converged instances stop costing evaluations when the game can be restricted
        restrict = len(live) < bsz and can_select(game)
        sub = game.select(live) if restrict else game
        masks = sampler.sample(
            round_size, generator=generator, device=device, batch_shape=(sub.num_instances,)
        )
        v = call_game(sub, masks).to(torch.float64).to(v0.device)
        masks = masks.to(v0.device)
        if not restrict and len(live) < bsz:
            masks, v = masks[live], v[live]
        v = v - v0d[live].unsqueeze(1)
        ones = torch.ones(len(live), round_size, **f64)
        a_r, b_r = gram(masks, ones), moment(masks, ones, v)
        a_sum[live] += a_r
        b_sum[live] += b_r
        rounds += 1
        phi_r = constrained_least_squares(a_r, b_r, total[live])
        delta = phi_r - mean_r[live]
        mean_r[live] += delta / rounds
        m2_r[live] += delta * (phi_r - mean_r[live])
        phi = constrained_least_squares(a_sum[live], b_sum[live], total[live])
        values[live] = phi
        evals[live] += round_size
        if rounds >= 2:
            std_now = (m2_r[live] / (rounds - 1) / rounds).sqrt()
            std[live] = std_now
            if rounds >= min_rounds:
                live = live[convergence_ratio(phi, std_now) >= threshold]
        if len(live) == 0:
            break
        if int(evals.max()) + round_size > max_evals:
            warnings.warn(
                f"kernel_shap stopped at max_evals={max_evals} before every instance reached "
                f"threshold={threshold} ({len(live)} of {bsz} did not); raise max_evals",
                RuntimeWarning,
                stacklevel=3,
            )
            break
    dtype = float_dtype(v0)
    return make_result(game, values.to(dtype), v0, std.to(dtype), int(evals.max()), "kernel_shap")
