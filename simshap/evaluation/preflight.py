"""What a ground truth will cost, estimated before it runs; refused when it is out of reach.

Exact enumeration costs 2^d game evaluations per instance. Converged KernelSHAP costs its
evaluations (at least two rounds of max(512, 4d) coalitions; the runs measured here needed
8,000 to 18,000 at threshold 0.01, so :data:`KERNEL_TYPICAL_EVALS` is taken as the typical
count) plus one weighted least-squares fit per round, whose d x d normal equations dominate for
wide tables: memory grows as d² per instance and time as round · d² per round. The game is timed
on a few coalitions of one instance, the fit from its flop count at this machine's measured
matrix-multiply rate. For KernelSHAP the estimate is a lower bound: wide games need more than the
typical evaluations to converge. Memory is kept bounded by
computing the truth in chunks of instances (:func:`instances_per_chunk`); time above the run's
``evaluation.max_minutes`` is refused with the options that bring it down.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch

from simshap.errors import UserError
from simshap.games.contract import call_game, game_device
from simshap.games.sampling import ShapleyKernelSampler

__all__ = [
    "KERNEL_TYPICAL_EVALS",
    "MEMORY_BUDGET_BYTES",
    "check_ground_truth_cost",
    "estimate_ground_truth",
    "instances_per_chunk",
    "kernel_round_size",
]

KERNEL_TYPICAL_EVALS = 8192
MEMORY_BUDGET_BYTES = 1 << 30  # per chunk of instances
EXACT_UP_TO = 16  # as simshap.evaluation.truth's "auto"


def kernel_round_size(d: int) -> int:
    """Coalitions per round of converged KernelSHAP (as in :func:`~simshap.games.kernel_shap`)."""
    r = max(512, 4 * d)
    return r + r % 2


def kernel_bytes_per_instance(d: int, classes: int) -> int:
    """Peak bytes one instance holds in converged KernelSHAP: the normal equations and a round."""
    r = kernel_round_size(d)
    return 8 * (3 * d * d + 2 * r * d + 6 * d * classes + r * classes) + r * d


def instances_per_chunk(d: int, classes: int, budget: int = MEMORY_BUDGET_BYTES) -> int:
    """How many instances one chunk of converged KernelSHAP may hold within ``budget`` bytes."""
    return max(1, budget // kernel_bytes_per_instance(d, classes))


def _seconds_per_evaluation(game: Any, coalitions: int = 256) -> float:
    sampler = ShapleyKernelSampler(game.num_players, paired=True)
    masks = sampler.sample(
        coalitions,
        generator=torch.Generator().manual_seed(0),
        device=game_device(game),
        batch_shape=(game.num_instances,),
    )
    with torch.no_grad():
        call_game(game, masks)  # warm-up
        start = time.perf_counter()
        call_game(game, masks)
    return (time.perf_counter() - start) / (coalitions * game.num_instances)


def _flops_per_second() -> float:
    """This machine's float64 matrix-multiply rate (the best of three 512 x 512 products)."""
    a = torch.rand(512, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * 512**3 / max(best, 1e-9)


def _seconds_per_fit(d: int, classes: int) -> float:
    """One round's weighted least-squares fit, at this machine's measured rate.

    The d x d normal equations of a round cost 2 r d² flops, their solve about d³.
    """
    r = kernel_round_size(d)
    return (2.0 * r * d * d + 2.0 * d**3 + 2.0 * r * d * classes) / _flops_per_second()


def estimate_ground_truth(game: Any, n_instances: int, method: str, classes: int) -> dict[str, Any]:
    """Estimated evaluations, minutes and memory of a ground truth of ``n_instances`` rows.

    Args:
        game: the game on (at least) one instance, to time.
        n_instances: the instances the truth will explain.
        method: ``"auto"``, ``"exact"`` or ``"kernel_shap"``.
        classes: the game's outputs.

    Returns:
        ``{"method", "evaluations", "minutes", "bytes_per_instance", "chunk"}``.
    """
    d = game.num_players
    if method == "auto":
        method = "exact" if d <= EXACT_UP_TO else "kernel_shap"
    t_eval = _seconds_per_evaluation(game)
    if method == "exact":
        evals = 2**d
        seconds = n_instances * evals * t_eval
        per = 8 * (8192 * (d + classes)) + 8192 * d
    else:
        r = kernel_round_size(d)
        evals = max(KERNEL_TYPICAL_EVALS, 2 * r)
        seconds = n_instances * (
            evals * t_eval + math.ceil(evals / r) * _seconds_per_fit(d, classes)
        )
        per = kernel_bytes_per_instance(d, classes)
    return {
        "method": method,
        "evaluations": evals,
        "minutes": seconds / 60.0,
        "bytes_per_instance": per,
        "chunk": instances_per_chunk(d, classes),
    }


def pilot_kernel_shap(
    game: Any, n_instances: int, threshold: float, max_minutes: float, seed: int = 0
) -> dict[str, Any]:
    """Run converged KernelSHAP on the game's first instance within its share of the time.

    Each instance may take ``max_minutes / n_instances``; the pilot doubles its evaluations
    until it converges or spends that share. A pilot that does not converge in time means the
    whole ground truth would not either.

    Returns:
        ``{"evaluations", "seconds", "converged"}`` of the pilot.
    """
    from simshap.estimators.kernel import kernel_shap

    one = game.select(torch.arange(1)) if getattr(game, "supports_select", False) else game
    share = max_minutes * 60.0 / max(n_instances, 1)
    evals, spent = 2 * kernel_round_size(game.num_players) + 2, 0.0
    while True:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "stopped at max_evals"
            est = kernel_shap(
                one,
                paired=True,
                threshold=threshold,
                max_evals=evals,
                generator=torch.Generator().manual_seed(seed),
            )
        spent += time.perf_counter() - start
        converged = est.n_evals < evals - kernel_round_size(game.num_players)
        if converged or spent > share:
            return {
                "evaluations": int(est.n_evals),
                "seconds": spent,
                "converged": converged,
                "share_seconds": share,
            }
        evals *= 2


def check_ground_truth_cost(
    game: Any,
    n_instances: int,
    method: str,
    max_minutes: float,
    classes: int,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Estimate the ground truth's cost and refuse it above ``max_minutes``.

    With ``threshold`` (the truth is about to run, on the trained game) converged KernelSHAP is
    also piloted on the first instance (:func:`pilot_kernel_shap`).

    Raises:
        UserError: naming the estimate and the options that bring it down (feature groups,
            ``evaluation.ground_truth: kernel_shap``, a smaller ``evaluation.n_instances``, a
            larger ``evaluation.max_minutes``).
    """
    est = estimate_ground_truth(game, n_instances, method, classes)
    if est["method"] == "kernel_shap" and threshold is not None and est["minutes"] <= max_minutes:
        pilot = pilot_kernel_shap(game, n_instances, threshold, max_minutes)
        if not pilot["converged"]:
            est["minutes"] = max(est["minutes"], pilot["seconds"] * n_instances / 60.0)
            est["evaluations"] = max(est["evaluations"], pilot["evaluations"])
            est["pilot"] = pilot
    if est["minutes"] > max_minutes:
        d = game.num_players
        exact_hint = (
            " use evaluation.ground_truth: kernel_shap (exact needs 2^d coalitions);"
            if est["method"] == "exact"
            else ""
        )
        at_least = "" if est["method"] == "exact" else "at least "
        raise UserError(
            f"the {est['method']} ground truth of {n_instances} instances with {d} players would "
            f"take {at_least}about {est['minutes']:.0f} minutes ({est['evaluations']:,} game "
            f"evaluations per instance), over evaluation.max_minutes={max_minutes:g}:{exact_hint} "
            "lower "
            "evaluation.n_instances, group the features into fewer players, or raise "
            "evaluation.max_minutes"
        )
    return est
