"""Tabular evaluation: KernelSHAP ground truth and stochastic estimators at matched budgets."""

from __future__ import annotations

import torch

from simshap.evaluation.metrics import attribution_errors
from simshap.evaluation.timing import timed
from simshap.games.estimators import ShapleyEstimate, kernel_shap, permutation_shapley
from simshap.games.values import Game

__all__ = ["ground_truth", "estimators_at_budgets", "budget_methods"]


def ground_truth(
    game: Game, threshold: float = 0.01, seed: int = 0, batch_size: int = 512
) -> tuple[ShapleyEstimate, float]:
    """Ground truth: paired ``kernel_shap`` run to convergence (Covert & Lee's threshold).

    Returns:
        (the estimate, seconds per instance).
    """
    gen = torch.Generator().manual_seed(seed)
    est, seconds = timed(
        lambda: kernel_shap(game, paired=True, threshold=threshold, batch_size=batch_size,
                            generator=gen)
    )
    return est, seconds / game.num_instances


def budget_methods(d: int, budget: int) -> dict[str, dict]:
    """Each baseline's own parameters for a budget of ``budget`` evaluations per instance."""
    n_perm = max(1, (budget - 2) // max(1, d - 1))
    return {
        f"kernelshap@{budget}": {"fn": kernel_shap, "n_samples": budget - 2, "paired": False},
        f"kernelshap_paired@{budget}": {"fn": kernel_shap, "n_samples": budget - 2,
                                        "paired": True},
        f"permutation@{budget}": {"fn": permutation_shapley, "n_permutations": n_perm,
                                  "antithetic": False},
        f"permutation_antithetic@{budget}": {"fn": permutation_shapley,
                                             "n_permutations": n_perm, "antithetic": True},
    }


def estimators_at_budgets(
    game: Game,
    truth: torch.Tensor,
    classes: torch.Tensor,
    budgets: list[int],
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """l1 / l2 of KernelSHAP and permutation sampling at matched budgets.

    KernelSHAP (paired or not) and permutation sampling (antithetic or not) are run at each
    budget of game evaluations per instance and compared with the ground truth.

    Returns:
        ``{"kernelshap@512": {"l1", "l2", "n_evals", "inference_s_per_instance"}, ...}``.
    """
    out: dict[str, dict[str, float]] = {}
    for budget in budgets:
        if budget < 4:
            raise ValueError(f"budgets must be >= 4 evaluations, got {budget}")
        for i, (name, spec) in enumerate(budget_methods(game.num_players, budget).items()):
            spec = dict(spec)
            fn = spec.pop("fn")
            gen = torch.Generator().manual_seed(seed + 7919 * budget + i)
            est, seconds = timed(lambda fn=fn, spec=spec, gen=gen: fn(game, generator=gen, **spec))
            out[name] = {
                **attribution_errors(est.values, truth, classes),
                "n_evals": int(est.n_evals),
                "inference_s_per_instance": seconds / game.num_instances,
            }
    return out
