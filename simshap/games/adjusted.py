"""Regression-adjusted KernelSHAP: a tree model's exact Shapley values plus KernelSHAP of the rest.

After Witter, Liu & Musco (2025), "Regression-adjusted Monte Carlo estimators for Shapley values":
fit a flexible model h(z) (LightGBM on the binary coalition vectors) to the sampled values, take
h's *exact* Shapley values (all 2^d coalitions of h for d <= 14, else interventional TreeSHAP
with the all-absent background), and add KernelSHAP's estimate for the residual game v - h.
Paired KernelSHAP is already exact for interactions up to order 2, so the gain comes from the
higher-order structure the trees capture.

Cross-fitting keeps h independent of the coalitions it is corrected on: the complementary pairs
are split in two folds; h is fitted on one and the residual estimated on the other, and the two
estimates are averaged. Every estimate stays exactly efficient. Games whose outputs sum to a
constant over coalitions (probabilities) fit C - 1 outputs and derive the last one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simshap.games.contract import all_coalitions
from simshap.games.regression import constrained_least_squares, gram
from simshap.games.sampling import shapley_weight

__all__ = ["tree_adjusted_values", "TREE_DEFAULTS"]

TREE_DEFAULTS: dict[str, Any] = {
    "n_estimators": 300, "learning_rate": 0.05, "num_leaves": 16, "min_child_samples": 3,
    "subsample": 1.0, "verbose": -1, "n_jobs": 1,
}  # fmt: skip


def _exact_tree_shapley(h: Any, d: int, exact_up_to: int = 14) -> tuple[np.ndarray, float, float]:
    """Shapley values of the game S -> h(1_S), with h(∅) and h(N)."""
    empty_full = h.predict(np.stack([np.zeros(d), np.ones(d)]).astype(np.float32))
    if d <= exact_up_to:
        allc = all_coalitions(d).numpy()
        table = h.predict(allc.astype(np.float32)).astype(np.float64)
        s = allc.sum(1, keepdims=True)
        w_in = shapley_weight(d, torch.from_numpy(np.clip(s - 1, 0, None))).numpy()
        w_out = shapley_weight(d, torch.from_numpy(np.clip(s, None, d - 1))).numpy()
        coef = np.where(allc, w_in, -w_out)
        return table @ coef, float(empty_full[0]), float(empty_full[1])
    import shap

    explainer = shap.TreeExplainer(h, data=np.zeros((1, d)), feature_perturbation="interventional")
    phi = np.asarray(explainer.shap_values(np.ones((1, d)), check_additivity=False)).reshape(d)
    return phi.astype(np.float64), float(empty_full[0]), float(empty_full[1])


def _fold_of_pairs(k: int, generator: torch.Generator | None) -> np.ndarray:
    """Fold (0/1) of each row, complementary pairs (rows 2j, 2j+1) kept together."""
    n_pairs = (k + 1) // 2
    cpu_gen = generator if generator is not None and generator.device.type == "cpu" else None
    order = torch.randperm(n_pairs, generator=cpu_gen)
    return (order.numpy() % 2).repeat(2)[:k]


def tree_adjusted_values(
    masks: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    generator: torch.Generator | None = None,
    tree_options: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Regression-adjusted KernelSHAP from evaluated coalitions.

    Args:
        masks: bool ``(B, K, d)`` coalitions (complementary pairs in rows 2j, 2j+1).
        weights: ``(B, K)`` KernelSHAP regression weights (the Shapley-kernel objective).
        values: ``(B, K, C)`` v(S).
        v_empty: ``(B, C)`` v(∅).
        v_full: ``(B, C)`` v(N).
        generator: seeds the fold split.
        tree_options: LightGBM regressor options (defaults :data:`TREE_DEFAULTS`).

    Returns:
        ``(B, d, C)`` float64 efficient estimates.
    """
    from lightgbm import LGBMRegressor

    opts = {**TREE_DEFAULTS, **(tree_options or {})}
    bsz, k, d = masks.shape
    c = values.shape[-1]
    vals = values.double().cpu()
    v0, v1 = v_empty.double().cpu(), v_full.double().cpu()
    sums = torch.cat([vals.sum(-1), v0.sum(-1, keepdim=True), v1.sum(-1, keepdim=True)], 1)
    constant_sum = c > 1 and bool(((sums - sums[:, :1]).abs() < 1e-9).all())
    fitted = c - 1 if constant_sum else c
    masks_c, weights_c = masks.cpu(), weights.double().cpu()
    x_all = masks_c.numpy().astype(np.float32)
    phi = torch.zeros(bsz, d, c, dtype=torch.float64)
    for b in range(bsz):
        fold = _fold_of_pairs(k, generator)
        x_b = np.vstack([x_all[b], np.zeros((1, d), np.float32), np.ones((1, d), np.float32)])
        fold_b = np.concatenate([fold, [0, 1]])
        for out in range(fitted):
            y_b = np.concatenate([vals[b, :, out].numpy(), [float(v0[b, out]), float(v1[b, out])]])
            est = torch.zeros(d, dtype=torch.float64)
            for f in (0, 1):
                h = LGBMRegressor(**opts).fit(x_b[fold_b == f], y_b[fold_b == f])
                phi_h, h0, h1 = _exact_tree_shapley(h, d)
                rest = torch.from_numpy(fold != f)
                m, w = masks_c[b][rest], weights_c[b][rest] * 2.0
                h_rows = torch.from_numpy(h.predict(x_all[b][fold != f]).astype(np.float64))
                r = vals[b, rest, out] - h_rows - (float(v0[b, out]) - h0)
                total = (float(v1[b, out]) - h1) - (float(v0[b, out]) - h0)
                a = gram(m, w).unsqueeze(0)
                rhs = torch.einsum("md,m,m->d", m.double(), w, r).view(1, d, 1)
                goal = torch.tensor([[total]], dtype=torch.float64)
                phi_r = constrained_least_squares(a, rhs, goal)
                est += (torch.from_numpy(phi_h) + phi_r[0, :, 0]) / 2
            phi[b, :, out] = est
        if constant_sum:
            phi[b, :, -1] = -phi[b, :, :-1].sum(-1)
    return phi
