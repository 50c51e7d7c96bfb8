"""Regression-adjusted KernelSHAP: a fitted model's exact Shapley values + KernelSHAP of the rest.

After Witter, Liu & Musco (2025), "Regression-adjusted Monte Carlo estimators for Shapley values":
fit a model h(z) of the sampled values on the binary coalition vectors z, take h's *exact*
Shapley values, and add KernelSHAP's estimate for the residual game v - h.

Here h is the plain KernelSHAP fit L (an additive game) plus LightGBM trees t fitted to what L
leaves, v - L. KernelSHAP is exact on additive games and linear in the values, so L costs
nothing; it takes the main effects out of the trees' target, which matters when d is large and
the coalitions few (on news, d = 58, trees fitted to v itself learn little from ~1,000 rows).
Paired KernelSHAP is already exact for interactions up to order 2, so the gain comes from the
higher-order structure the trees capture. The trees' Shapley values are exact (all 2^d
coalitions for d <= 14, else interventional TreeSHAP with the all-absent background).

Cross-fitting keeps each residual independent of the trees it is taken from: the complementary
pairs are split into ``folds`` folds, each fold's trees are fitted on the other folds, every
coalition's residual comes from the trees that did not see it, and one KernelSHAP regression
over all coalitions estimates the residual game. The estimate is L, plus the mean of the folds'
exact tree values, plus that regression; it is exactly efficient, and exact on additive games.
(L itself is fitted on every coalition, so the trees' target depends on a held-out coalition
only through L, by O(1/K) for K coalitions.)
Games whose outputs sum to a constant over coalitions (probabilities) fit C - 1 outputs and
derive the last one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simshap.errors import UserError
from simshap.estimators.regression import constrained_least_squares, gram
from simshap.games.contract import all_coalitions
from simshap.games.sampling import shapley_weight

__all__ = ["tree_adjusted_values", "TREE_DEFAULTS", "FOLDS"]

TREE_DEFAULTS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 16,
    "min_child_samples": 3,
    "subsample": 1.0,
    "verbose": -1,
    "n_jobs": 1,
}
FOLDS = 5


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


def _folds_of_pairs(k: int, folds: int, generator: torch.Generator | None) -> np.ndarray:
    """Fold (0 .. folds-1) of each row, complementary pairs (rows 2j, 2j+1) kept together."""
    n_pairs = (k + 1) // 2
    cpu_gen = generator if generator is not None and generator.device.type == "cpu" else None
    order = torch.randperm(n_pairs, generator=cpu_gen)
    return (order.numpy() % folds).repeat(2)[:k]


def _solve(
    masks: torch.Tensor, weights: torch.Tensor, rel: torch.Tensor, total: float
) -> torch.Tensor:
    """Efficient weighted least squares of values relative to ∅ on coalitions: ``(d,)``."""
    d = masks.shape[-1]
    rhs = torch.einsum("md,m,m->d", masks.double(), weights, rel).view(1, d, 1)
    goal = torch.tensor([[total]], dtype=torch.float64)
    return constrained_least_squares(gram(masks, weights).unsqueeze(0), rhs, goal)[0, :, 0]


def _adjusted_one(
    masks: torch.Tensor,
    weights: torch.Tensor,
    y: np.ndarray,
    y0: float,
    y1: float,
    fold: np.ndarray,
    folds: int,
    opts: dict[str, Any],
) -> torch.Tensor:
    """One instance and output: linear fit + the trees' exact values + KernelSHAP of the rest."""
    from lightgbm import LGBMRegressor

    d = masks.shape[-1]
    x = masks.numpy().astype(np.float32)
    ends = np.stack([np.zeros(d), np.ones(d)]).astype(np.float32)
    lin = _solve(masks, weights, torch.from_numpy(y - y0), y1 - y0).numpy()  # plain KernelSHAP
    rest = y - (y0 + x @ lin)  # what the linear fit leaves; it is exact at ∅ and N
    pred = np.zeros(len(y))
    phi_t = np.zeros(d)
    t0 = t1 = 0.0  # the trees' mean value at ∅ and N
    for f in range(folds):
        train = fold != f
        h = LGBMRegressor(**opts).fit(
            np.vstack([x[train], ends]), np.concatenate([rest[train], [0.0, 0.0]])
        )
        phi_f, h0, h1 = _exact_tree_shapley(h, d)
        phi_t += phi_f / folds
        t0, t1 = t0 + h0 / folds, t1 + h1 / folds
        pred[~train] = h.predict(x[~train])
    # the residual game: rest - trees, r(∅) = -t0, r(N) = -t1
    residual = torch.from_numpy(rest - pred + t0)
    return torch.from_numpy(lin + phi_t) + _solve(masks, weights, residual, t0 - t1)


def tree_adjusted_values(
    masks: torch.Tensor,
    weights: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    generator: torch.Generator | None = None,
    tree_options: dict[str, Any] | None = None,
    folds: int = FOLDS,
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
        folds: cross-fitting folds (at most the number of complementary pairs).

    Returns:
        ``(B, d, C)`` float64 efficient estimates.

    Raises:
        UserError: fewer than two complementary pairs, or ``folds`` below 2.
    """
    bsz, k, d = masks.shape
    if not (isinstance(folds, int) and folds >= 2):
        raise UserError(f"folds must be an integer >= 2, got {folds!r}")
    if k < 4:
        raise UserError(
            f"adjust='tree' cross-fits over complementary pairs and needs at least 4 sampled "
            f"coalitions; got {k}. Raise the budget to at least 6."
        )
    folds = min(folds, (k + 1) // 2)
    opts = {**TREE_DEFAULTS, **(tree_options or {})}
    c = values.shape[-1]
    vals = values.double().cpu()
    v0, v1 = v_empty.double().cpu(), v_full.double().cpu()
    sums = torch.cat([vals.sum(-1), v0.sum(-1, keepdim=True), v1.sum(-1, keepdim=True)], 1)
    constant_sum = c > 1 and bool(((sums - sums[:, :1]).abs() < 1e-9).all())
    fitted = c - 1 if constant_sum else c
    masks_c, weights_c = masks.cpu(), weights.double().cpu()
    phi = torch.zeros(bsz, d, c, dtype=torch.float64)
    for b in range(bsz):
        fold = _folds_of_pairs(k, folds, generator)
        for out in range(fitted):
            phi[b, :, out] = _adjusted_one(
                masks_c[b],
                weights_c[b],
                vals[b, :, out].numpy(),
                float(v0[b, out]),
                float(v1[b, out]),
                fold,
                folds,
                opts,
            )
        if constant_sum:
            phi[b, :, -1] = -phi[b, :, :-1].sum(-1)
    return phi
