"""Pair scores to compare the detector with: exact Shapley interactions and NID.

* Exact Shapley interactions (simshap's game layer): the baseline game
  v_x(S) = F(x_S, b_{N∖S}) at the training mean b, STII or FSII of order 2 computed exactly
  from all 2^p coalitions; the score of a pair is the mean of |index| over the explained rows.
* NID (Tsang et al., 2018) from an MLP's weights: with z the aggregated influence of the
  first hidden layer's units on the output (|W_L| ⋯ |W_2| products, summed), a pair's score is
  Σ_u z_u · min(|W1_ui|, |W1_uj|).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from simshap.errors import UserError
from simshap.games import BaselineGame
from simshap.interactions.exact import ExactInteractionComputer
from simshap.studies.paraace.detect import all_pairs
from simshap.studies.paraace.finite_differences import as_batch_function, check_data

__all__ = ["exact_interaction_scores", "nid_scores"]


def exact_interaction_scores(
    model: Any,
    X: Any,
    explain: Any,
    index: str = "STII",
    output: int | None = None,
) -> tuple[np.ndarray, float]:
    """Mean |order-2 STII/FSII| of every pair on the baseline game at the mean of ``X``.

    Args:
        model: torch module, estimator or callable.
        X: ``(N, p)`` training rows (their mean is the baseline).
        explain: ``(B, p)`` rows to explain (their |values| are averaged).
        index: ``"STII"`` or ``"FSII"``.
        output: output column for multi-output models.

    Returns:
        ``(scores (p(p-1)/2,) in :func:`all_pairs` order, seconds)``.
    """
    if index not in ("STII", "FSII"):
        raise UserError(f"index must be 'STII' or 'FSII', got {index!r}")
    x = check_data(X)
    rows = check_data(explain)
    F = as_batch_function(model, output)

    def game_model(z: torch.Tensor) -> torch.Tensor:
        return F(z.to(torch.float64)).unsqueeze(-1)

    start = time.perf_counter()
    game = BaselineGame(game_model, rows, x.mean(dim=0))
    iv = ExactInteractionComputer(game)(index, 2)
    scores = np.array(
        [float(iv[pair][:, 0].abs().mean()) for pair in all_pairs(x.shape[1])], dtype=np.float64
    )
    return scores, time.perf_counter() - start


def _linear_layers(net: nn.Module) -> list[nn.Linear]:
    layers = [mod for mod in net.modules() if isinstance(mod, nn.Linear)]
    if len(layers) < 2:
        raise UserError("NID needs an MLP with at least one hidden layer of nn.Linear modules")
    return layers


def nid_scores(net: nn.Module) -> np.ndarray:
    """NID pair scores of an MLP from its weights (in :func:`all_pairs` order).

    Args:
        net: an ``nn.Module`` whose ``nn.Linear`` layers, in order of definition, form the MLP.

    Returns:
        ``(p(p-1)/2,)`` scores.
    """
    layers = _linear_layers(net)
    with torch.no_grad():
        w1 = layers[0].weight.abs().double()  # (H1, p)
        z = layers[-1].weight.abs().double()  # (1, H_last)
        for layer in reversed(layers[1:-1]):
            z = z @ layer.weight.abs().double()
        z = z.sum(dim=0)  # (H1,) aggregated influence of each first-layer unit
        p = w1.shape[1]
        scores = [float((z * torch.minimum(w1[:, i], w1[:, j])).sum()) for i, j in all_pairs(p)]
    return np.asarray(scores)
