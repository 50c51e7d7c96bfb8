"""How accurate a trained explainer is, said in the unit users compare against: KernelSHAP calls.

On held-out rows, the explainer's values and paired KernelSHAP at 32 ... 512 game evaluations
are each compared with a converged reference (paired KernelSHAP at ``reference_budget``
evaluations, a different seed) of the same game. The explainer is "about as accurate as
KernelSHAP at k evaluations" for the largest k whose KernelSHAP error it matches. When it is
less accurate than KernelSHAP at 512, :func:`warn_accuracy` says so and names the remedies:
``explainer(x, budget=k)`` (with the smallest measured k that makes it as accurate as KernelSHAP
at 512), more training rows, input noise.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from simshap.estimators.kernel import kernel_shap

__all__ = ["BUDGETS", "accuracy_report", "warn_accuracy"]

BUDGETS = (32, 64, 128, 256, 512)
_SEED = 7_654_321


def _l2(values: torch.Tensor, reference: torch.Tensor) -> float:
    """Mean over rows and outputs of the l2 distance over the players."""
    return float((values.double() - reference.double()).norm(dim=1).mean())


@torch.no_grad()
def accuracy_report(
    explainer: Any, rows: Any, seed: int = 0, max_rows: int = 64, reference_budget: int = 4096
) -> dict[str, Any]:
    """The explainer's error on held-out rows next to KernelSHAP's at 32 ... 512 evaluations.

    Args:
        explainer: a trained explainer (with its game: surrogate, or model attached).
        rows: held-out raw rows (the first ``max_rows`` are used; fewer for a model's game,
            where every evaluation costs a background's worth of model calls).
        seed: seed of the KernelSHAP draws.
        max_rows: rows at most.
        reference_budget: evaluations per row of the reference.

    Returns:
        ``{"rows", "l2", "kernel_shap_l2": {k: l2}, "equivalent_budget", "refined_l2":
        {k: l2}, "recommended_budget", "exact_budget"}``. ``equivalent_budget``: the largest k
        whose KernelSHAP the explainer matches, 0 below 32. ``recommended_budget``, when the
        explainer is less accurate than KernelSHAP at 512: the smallest k at which
        ``explainer(x, budget=k)`` is as accurate, ``None`` if none is. ``exact_budget``: 2^d
        when it is at most 512, where ``explainer(x, budget=k)`` gives the exact values.
    """
    model_game = explainer.game_name != "surrogate"
    n = min(len(rows), max_rows if not model_game else min(max_rows, 16))
    rows = rows[:n]
    d = explainer.net.spec["num_players"]
    ref_budget = max(reference_budget, 2 * d + 2) if not model_game else max(1024, 2 * d + 2)
    sv = explainer(rows)
    x, raw = explainer._inputs(rows)
    game = explainer.game(x, raw)
    gen = torch.Generator().manual_seed(seed + _SEED)
    reference = kernel_shap(game, budget=ref_budget, paired=True, generator=gen).values
    out: dict[str, Any] = {
        "rows": n,
        "reference_budget": ref_budget,
        "l2": _l2(sv.values, reference),
        # all 2^d coalitions within the largest budget: explainer(x, budget=2^d) is exact
        "exact_budget": 2**d if 2**d <= max(BUDGETS) else None,
    }
    ks, refined = {}, {}
    usable = [k for k in BUDGETS if k >= d + 2]
    for k in usable:
        g = torch.Generator().manual_seed(seed + k)
        ks[k] = _l2(kernel_shap(game, budget=k, paired=True, generator=g).values, reference)
    out["kernel_shap_l2"] = ks
    matched = [k for k in usable if ks[k] >= out["l2"]]
    out["equivalent_budget"] = max(matched) if matched else 0
    prior_ok = bool(torch.isfinite(explainer.prior_var).all())
    if ks and prior_ok and out["l2"] > ks[max(ks)]:
        goal = ks[max(ks)]
        for k in usable:
            g = torch.Generator().manual_seed(seed + 31 * k)
            refined[k] = _l2(explainer(rows, budget=k, generator=g).values, reference)
        # float noise, not a difference: exact values (k >= 2^d) count as reaching an exact goal
        tol = 1e-6 * float(reference.flatten(1).norm(dim=1).mean()) + 1e-12
        good = [k for k in usable if refined[k] <= goal + tol]
        out["recommended_budget"] = min(good) if good else None
    out["refined_l2"] = refined
    return out


def warn_accuracy(report: dict[str, Any]) -> None:
    """Warn when the explainer is less accurate than KernelSHAP at 512 evaluations."""
    ks = report.get("kernel_shap_l2") or {}
    if not ks:
        return
    top = max(ks)
    if report["l2"] <= ks[top]:
        return
    k, exact = report.get("recommended_budget"), report.get("exact_budget")
    if exact and (not k or exact <= k):  # every coalition costs no more than the remedy
        how = (
            f"explainer(x, budget={exact}) gives the game's exact Shapley values "
            f"(all {exact} coalitions of its {exact.bit_length() - 1} players)"
        )
    elif k:
        how = f"explainer(x, budget={k}) makes it as accurate as KernelSHAP at {top}"
    else:
        how = "explainer(x, budget=k) with k up to 512 did not reach it on these rows"
    matches = report["equivalent_budget"]
    matches = f"at {matches}" if matches else f"at fewer than {min(ks)}"
    warnings.warn(
        f"the explainer is less accurate than KernelSHAP at {top} evaluations on "
        f"{report['rows']} held-out rows (l2 {report['l2']:.3g} against {ks[top]:.3g}; it "
        f"matches KernelSHAP {matches} evaluations). Remedies: {how}; "
        "train on more rows; set explainer={'input_noise': 0.3} for small tables",
        UserWarning,
        stacklevel=3,
    )
