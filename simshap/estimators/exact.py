"""Exact Shapley values: every one of the 2^d coalitions evaluated once (chunked).

Estimators take a game (any object honoring :class:`simshap.games.contract.GameProtocol`), work
on every instance and output at once, and return :class:`~simshap.ShapleyValues` with values
``(B, d, C)`` and ``base_values`` v(∅); ``n_evals`` counts game evaluations per instance, v(∅) and
v(N) included (:mod:`simshap.estimators.budget`).
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.errors import UserError
from simshap.estimators.budget import (
    check_positive,
    float_dtype,
    make_result,
)
from simshap.games.contract import (
    call_game,
    check_game,
    coalitions_range,
    game_device,
)
from simshap.games.sampling import (
    shapley_weight,
)
from simshap.results import ShapleyValues

__all__ = ["MAX_EXACT_PLAYERS", "exact_shapley"]

MAX_EXACT_PLAYERS = 20


# --------------------------------------------------------------------------- exact


def exact_shapley(game: Any, batch_size: int = 8192) -> ShapleyValues:
    """Exact Shapley values by evaluating all 2^d coalitions once (chunked).

    phi_i = sum_S v(S) [1{i in S} w(|S|-1) - 1{i not in S} w(|S|)] with w(s) = s!(d-s-1)!/d!.

    Args:
        game: any object honoring the game contract (d <= ``MAX_EXACT_PLAYERS`` players).
        batch_size: coalitions per game call.

    Returns:
        ShapleyValues with ``method="exact"``, ``std=None``, ``n_evals = 2^d`` and
        ``values.sum(1) == v(N) - base_values``.

    Raises:
        UserError: if the game has more than ``MAX_EXACT_PLAYERS`` players.
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    d = game.num_players
    if d > MAX_EXACT_PLAYERS:
        raise UserError(
            f"exact_shapley enumerates 2^d coalitions: d={d} players would need {2**d:,} "
            f"evaluations per instance (limit d <= {MAX_EXACT_PLAYERS}). Use "
            "kernel_shap(game, threshold=0.01) or permutation_shapley(game, budget=...) instead."
        )
    device = game_device(game)
    phi = v_empty = None
    dtype = None
    for start in range(0, 2**d, batch_size):
        masks = coalitions_range(start, min(2**d, start + batch_size), d, device)
        v = call_game(game, masks)
        if v_empty is None:
            v_empty = v[:, 0]
        dtype = float_dtype(v)
        s = masks.sum(-1, keepdim=True)
        w_in = shapley_weight(d, (s - 1).clamp(min=0)).to(device)
        w_out = shapley_weight(d, s.clamp(max=d - 1)).to(device)
        coef = torch.where(masks, w_in, -w_out).to(v.device)  # (m, d) float64
        part = torch.einsum("bmc,md->bdc", v.to(torch.float64), coef)
        phi = part if phi is None else phi + part
    return make_result(game, phi.to(dtype), v_empty, None, 2**d, "exact")
