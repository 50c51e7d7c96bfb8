"""Honest image accuracy for the user-image job.

Per method (the amortized explainers, IG and DeepSHAP rescaled, KernelSHAP at each budget):

* ``l2_game``: the l2 distance (explained class, mean over images) to a converged KernelSHAP
  ground truth on the image game (the surrogate's masking), with its standard error and the
  paired difference to KernelSHAP at the smallest budget;
* insertion / deletion AUCs with the original classifier on blurred / zeroed pixels (softmax
  probability: ``insertion_prob``, ``deletion_prob``);
* insertion / deletion AUCs under the game's own masking (``insertion_game``,
  ``deletion_game``);
* ``seconds_per_image``.

IG and DeepSHAP (``ig``, ``deepshap``) explain the surrogate at the full mask from the zero
input, summed per superpixel and rescaled to add up to the game's v(N) − v(∅) (each row's
``rescaled`` and ``used`` say how), and get the same scores.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from simshap.estimators.kernel import kernel_shap
from simshap.evaluation.baselines.rescaled import efficient_gradient_attributions
from simshap.evaluation.image_game import game_insertion_deletion
from simshap.evaluation.insertion_deletion import insertion_deletion
from simshap.evaluation.metrics import explained_class_values
from simshap.players import Players

__all__ = ["evaluate_user_image"]


def _mean_se(v: torch.Tensor) -> tuple[float, float]:
    v = v.double()
    se = float(v.std() / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def evaluate_user_image(
    classifier: Any,
    surrogate: Any,
    explainers: dict[str, Any],
    images: torch.Tensor,
    players: Players,
    budgets: list[int],
    threshold: float = 0.02,
    max_evals: int = 100_000,
    seed: int = 0,
    gradient_baselines: bool = True,
) -> dict[str, dict[str, Any]]:
    """Scores of every method on ``images`` (see the module docstring).

    Args:
        classifier: the user's classifier (logits).
        surrogate: the trained surrogate (its game is the image game).
        explainers: name -> trained amortized explainer.
        images: ``(N, C, H, W)`` normalized test images.
        players: the superpixels.
        budgets: KernelSHAP budgets to compare (game evaluations per image).
        threshold: the ground truth's convergence threshold (Covert & Lee).
        max_evals: the ground truth's evaluation cap per image.
        seed: seed of the KernelSHAP samplers.
        gradient_baselines: add IG and DeepSHAP on the surrogate, rescaled for efficiency
            (:mod:`simshap.evaluation.baselines.rescaled`; each row says how).

    Returns:
        method -> scores.
    """
    any_explainer = next(iter(explainers.values()))
    game = any_explainer.game(images)
    with torch.no_grad():
        target = classifier(images).argmax(1)
    gen = torch.Generator().manual_seed(seed + 7)
    t0 = time.perf_counter()
    truth = kernel_shap(game, threshold=threshold, generator=gen, max_evals=max_evals)
    truth_s = time.perf_counter() - t0
    estimates: dict[str, tuple[torch.Tensor, float]] = {}
    for name, explainer in explainers.items():
        with torch.no_grad():
            explainer(images[:1])  # warm-up: first-call costs are not per image
        t0 = time.perf_counter()
        with torch.no_grad():
            values = explainer(images).values
        estimates[name] = (values, (time.perf_counter() - t0) / len(images))
    info: dict[str, dict[str, Any]] = {}
    if gradient_baselines:  # IG and DeepSHAP, rescaled to the game's v(N) - v(∅)
        ends = torch.zeros(len(images), 2, players.num_players, dtype=torch.bool)
        ends[:, 1] = True
        with torch.no_grad():
            v = game(ends.to(images.device)).double().cpu()
        rows = torch.arange(len(images))
        delta = v[rows, 1, target.cpu()] - v[rows, 0, target.cpu()]
        for name in ("ig", "deepshap"):
            t0 = time.perf_counter()
            phi, info[name] = efficient_gradient_attributions(
                name, surrogate.net, images, target, players, delta, seed=seed
            )
            sec = (time.perf_counter() - t0) / len(images)
            full = torch.zeros(len(images), players.num_players, int(v.shape[-1]), dtype=phi.dtype)
            full[rows, :, target.cpu()] = phi.cpu()  # the explained class only
            estimates[name] = (full, sec)
    for b in budgets:
        gen = torch.Generator().manual_seed(seed + b)
        t0 = time.perf_counter()
        values = kernel_shap(game, budget=b, generator=gen).values
        estimates[f"kernelshap_{b}"] = (values, (time.perf_counter() - t0) / len(images))
    want = explained_class_values(truth.values.double(), target)
    k, grid = players.superpixel_size, players.grid
    out: dict[str, dict[str, Any]] = {
        "ground_truth": {
            "method": f"KernelSHAP to convergence (threshold {threshold})",
            "evals_per_image": int(truth.n_evals),
            "seconds_per_image": truth_s / len(images),
        }
    }
    if truth.std is not None:  # the truth's own l2 noise (explained class, mean over images)
        noise = explained_class_values(truth.std.double().cpu(), target.cpu()).pow(2).sum(1)
        out["ground_truth"]["l2_noise"] = float(noise.sqrt().mean())
    per_image: dict[str, torch.Tensor] = {}
    for name, (values, sec) in estimates.items():
        attr = explained_class_values(values.double().cpu(), target.cpu())
        dist = (attr - want).pow(2).sum(1).sqrt()
        per_image[name] = dist
        l2, se = _mean_se(dist)
        prob = insertion_deletion(
            classifier, images, attr.float().view(-1, *grid), target=target,
            superpixel_size=k, normalize="prob",
        )  # fmt: skip
        on_game = game_insertion_deletion(game, attr.float(), target)
        out[name] = {
            "l2_game": l2,
            "l2_game_se": se,
            "insertion_prob": float(prob.insertion_auc.mean()),
            "deletion_prob": float(prob.deletion_auc.mean()),
            "insertion_game": float(on_game["insertion"].mean()),
            "insertion_game_se": _mean_se(on_game["insertion"])[1],
            "deletion_game": float(on_game["deletion"].mean()),
            "seconds_per_image": sec,
        }
        out[name].update(info.get(name, {}))
        per_image[f"{name}/insertion_game"] = on_game["insertion"]
    ref = f"kernelshap_{min(budgets)}"
    for name in [*explainers, *info]:
        diff, diff_se = _mean_se(per_image[name] - per_image[ref])
        ins, ins_se = _mean_se(
            per_image[f"{name}/insertion_game"] - per_image[f"{ref}/insertion_game"]
        )
        out[name][f"l2_game_minus_{ref}"] = diff
        out[name][f"l2_game_minus_{ref}_se"] = diff_se
        out[name][f"insertion_game_minus_{ref}"] = ins
        out[name][f"insertion_game_minus_{ref}_se"] = ins_se
    return out
