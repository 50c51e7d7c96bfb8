"""Ground truth that is truth: exact enumeration where it is affordable, else converged KernelSHAP.

``ground_truth(game, method="auto")`` enumerates all 2^d coalitions when d <= 16
(``method="exact"``); otherwise it runs paired KernelSHAP until Covert & Lee's criterion holds
*per class* (max over classes of max_i std / (max_i phi - min_i phi) < ``threshold``). The result
records which one was used in ``method`` and carries the estimate's std where estimated.
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.errors import UserError
from simshap.estimators.exact import MAX_EXACT_PLAYERS, exact_shapley
from simshap.estimators.kernel import kernel_shap
from simshap.evaluation.preflight import instances_per_chunk
from simshap.games.contract import can_select
from simshap.results import ShapleyValues

__all__ = ["ground_truth", "EXACT_UP_TO"]

EXACT_UP_TO = 16  # players up to which "auto" enumerates (2^16 = 65,536 evaluations)


def ground_truth(
    game: Any,
    method: str = "auto",
    threshold: float = 0.01,
    seed: int = 0,
    batch_size: int = 512,
    max_evals: int = 1_000_000,
) -> ShapleyValues:
    """Ground-truth Shapley values of a game.

    Args:
        game: any object honoring the game contract.
        method: ``"auto"`` (``"exact"`` when d <= 16, else ``"kernel_shap"``), ``"exact"`` or
            ``"kernel_shap"``.
        threshold: the per-class convergence threshold of ``"kernel_shap"``.
        seed: seeds KernelSHAP's sampler.
        batch_size: coalitions per KernelSHAP round.
        max_evals: KernelSHAP's safety cap on evaluations per instance.

    Returns:
        ShapleyValues with ``method`` ``"exact"`` (``std=None``) or ``"kernel_shap"`` (with the
        estimated ``std``).
    """
    if method not in ("auto", "exact", "kernel_shap"):
        raise UserError(f"method must be 'auto', 'exact' or 'kernel_shap', got {method!r}")
    d = getattr(game, "num_players", None)
    if method == "auto":
        method = "exact" if isinstance(d, int) and d <= EXACT_UP_TO else "kernel_shap"
    if method == "exact":
        if isinstance(d, int) and d > MAX_EXACT_PLAYERS:
            raise UserError(
                f"exact ground truth enumerates 2^d coalitions and d={d} > {MAX_EXACT_PLAYERS}; "
                "use method='kernel_shap' (or 'auto')"
            )
        return exact_shapley(game)
    gen = torch.Generator().manual_seed(seed)
    n = game.num_instances
    # the d x d normal equations dominate the memory; the outputs' share is small
    chunk = instances_per_chunk(d, 1) if isinstance(d, int) else n
    if chunk >= n or not can_select(game):
        return kernel_shap(
            game,
            paired=True,
            threshold=threshold,
            batch_size=batch_size,
            generator=gen,
            max_evals=max_evals,
        )
    # wide tables: instances in chunks, so the d x d normal equations stay within memory
    parts = [
        kernel_shap(
            game.select(torch.arange(i, min(n, i + chunk))),
            paired=True,
            threshold=threshold,
            batch_size=batch_size,
            generator=gen,
            max_evals=max_evals,
        )
        for i in range(0, n, chunk)
    ]
    return ShapleyValues(
        values=torch.cat([p.values for p in parts]),
        base_values=torch.cat([p.base_values for p in parts]),
        std=torch.cat([p.std for p in parts]),
        n_evals=max(p.n_evals for p in parts),
        method=parts[0].method,
    )
