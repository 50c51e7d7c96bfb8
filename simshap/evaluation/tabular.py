"""Tabular evaluation: stochastic estimators at matched budgets against a ground truth.

Every estimator takes ``budget=`` (game evaluations per instance, v(∅) and v(N) included)
directly; there is no budget-to-parameter table.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from simshap.estimators.kernel import kernel_shap
from simshap.estimators.permutation import permutation_shapley
from simshap.evaluation.metrics import attribution_errors
from simshap.evaluation.timing import timed
from simshap.results import ShapleyValues

__all__ = ["BUDGET_METHODS", "amortized_at_budgets", "estimators_at_budgets"]

# name prefix -> (estimator, its options); each is called with budget=...
BUDGET_METHODS: dict[str, tuple[Callable[..., ShapleyValues], dict[str, Any]]] = {
    "kernelshap": (kernel_shap, {"paired": False}),
    "kernelshap_paired": (kernel_shap, {"paired": True}),
    "kernelshap_leverage": (kernel_shap, {"paired": True, "sampling": "leverage"}),
    "permutation": (permutation_shapley, {"antithetic": False}),
    "permutation_antithetic": (permutation_shapley, {"antithetic": True}),
}


def estimators_at_budgets(
    game: Any,
    truth: torch.Tensor,
    classes: torch.Tensor,
    budgets: list[int],
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """l1 / l2 of KernelSHAP (plain, paired, leverage) and permutation sampling at each budget.

    Permutation sampling needs at least d + 1 evaluations (one permutation); below that it has
    no entry.

    Returns:
        ``{"kernelshap@512": {"l1", "l2", "n_evals", "inference_s_per_instance"}, ...}``.
    """
    out: dict[str, dict[str, float]] = {}
    d = game.num_players
    for budget in budgets:
        for i, (prefix, (fn, opts)) in enumerate(BUDGET_METHODS.items()):
            if fn is permutation_shapley and budget < d + 1:
                continue  # one permutation costs d + 1 evaluations: no entry at this budget
            gen = torch.Generator().manual_seed(seed + 7919 * budget + i)
            est, seconds = timed(partial(fn, game, budget=budget, generator=gen, **opts))
            out[f"{prefix}@{budget}"] = {
                **attribution_errors(est.values, truth, classes),
                "n_evals": int(est.n_evals),
                "inference_s_per_instance": seconds / game.num_instances,
            }
    return out


def amortized_at_budgets(
    explainer: Any,
    rows: Any,
    truth: torch.Tensor,
    classes: torch.Tensor,
    budgets: list[int],
    seed: int = 0,
    n_seeds: int = 3,
    name: str = "simshap",
) -> dict[str, dict[str, float]]:
    """l1 / l2 of ``explainer(rows, budget=k)`` (amortized + budget), mean over ``n_seeds``.

    Returns:
        ``{"simshap+kernelshap@64": {"l1", "l2", "l2_seeds", "n_evals",
        "inference_s_per_instance"}, ...}``.
    """
    out: dict[str, dict[str, float]] = {}
    n = truth.shape[0]
    for budget in budgets:
        errs, secs = [], 0.0
        for k in range(n_seeds):
            gen = torch.Generator().manual_seed(seed + 7919 * budget + 104729 * k)
            est, seconds = timed(partial(explainer, rows, budget=budget, generator=gen))
            errs.append(attribution_errors(est.values.cpu(), truth, classes))
            secs += seconds
        out[f"{name}+kernelshap@{budget}"] = {
            "l1": sum(e["l1"] for e in errs) / n_seeds,
            "l2": sum(e["l2"] for e in errs) / n_seeds,
            "rel_l2": sum(e["rel_l2"] for e in errs) / n_seeds,
            "l2_seeds": [e["l2"] for e in errs],
            "n_evals": int(est.n_evals),
            "inference_s_per_instance": secs / n_seeds / n,
        }
    return out
