"""Ground truth that is truth: exact enumeration where it is affordable, else converged KernelSHAP.

``ground_truth(game, method="auto")`` enumerates all 2^d coalitions when d <= 16
(``method="exact"``); otherwise it runs paired KernelSHAP until Covert & Lee's criterion holds
*per class* (max over classes of max_i std / (max_i phi - min_i phi) < ``threshold``). The result
records which one was used in ``method`` and carries the estimate's std where estimated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from simshap.errors import UserError
from simshap.estimators.chunks import CHUNK_ROWS, chunked_shapley
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
    engine: str = "local",
    cache_dir: str | Path | None = None,
    key: str | None = None,
) -> ShapleyValues:
    """Ground-truth Shapley values of a game.

    Rows are computed in chunks (:func:`~simshap.estimators.chunks.chunked_shapley`), each
    with its own seed: on Ray (``engine="ray"``) the result equals the local one bitwise, and
    with a ``cache_dir`` a killed computation resumes at the first missing chunk.

    Args:
        game: any object honoring the game contract.
        method: ``"auto"`` (``"exact"`` when d <= 16, else ``"kernel_shap"``), ``"exact"`` or
            ``"kernel_shap"``.
        threshold: the per-class convergence threshold of ``"kernel_shap"``.
        seed: seeds KernelSHAP's sampler (chunk by chunk).
        batch_size: coalitions per KernelSHAP round.
        max_evals: KernelSHAP's safety cap on evaluations per instance.
        engine: ``"local"`` or ``"ray"`` (chunks as Ray tasks).
        cache_dir: where finished chunks are saved; ``None``: nowhere.
        key: what the chunks depend on (required with ``cache_dir``).

    Returns:
        ShapleyValues with ``method`` ``"exact"`` (``std=None``) or ``"kernel_shap"`` (with the
        estimated ``std``).
    """
    if method not in ("auto", "exact", "kernel_shap"):
        raise UserError(f"method must be 'auto', 'exact' or 'kernel_shap', got {method!r}")
    d = getattr(game, "num_players", None)
    if method == "auto":
        method = "exact" if isinstance(d, int) and d <= EXACT_UP_TO else "kernel_shap"
    if method == "exact" and isinstance(d, int) and d > MAX_EXACT_PLAYERS:
        raise UserError(
            f"exact ground truth enumerates 2^d coalitions and d={d} > {MAX_EXACT_PLAYERS}; "
            "use method='kernel_shap' (or 'auto')"
        )
    if not can_select(game):  # a game that cannot be cut: one piece, in this process
        if engine != "local":
            raise UserError(f"engine={engine!r} needs a game with select(); use engine='local'")
        if method == "exact":
            return exact_shapley(game)
        gen = torch.Generator().manual_seed(seed)
        return kernel_shap(
            game,
            paired=True,
            threshold=threshold,
            batch_size=batch_size,
            generator=gen,
            max_evals=max_evals,
        )
    # the d x d normal equations of a chunk dominate its memory
    rows = min(CHUNK_ROWS, instances_per_chunk(d, 1)) if isinstance(d, int) else CHUNK_ROWS
    return chunked_shapley(
        game,
        method,
        threshold=None if method == "exact" else threshold,
        seed=seed,
        chunk_rows=rows,
        batch_size=batch_size,
        max_evals=max_evals,
        engine=engine,
        cache_dir=cache_dir,
        key=key,
    )
