"""The random order value: Shapley values from sampled permutations (antithetic or not).

``budget=`` counts game evaluations per instance, v(∅) and v(N) included; randomness comes from an
optional ``torch.Generator`` (the same seed gives the same result).
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.estimators.budget import (
    check_positive,
    make_result,
    resolve_budget,
    standard_error,
)
from simshap.games.contract import (
    call_game,
    check_game,
    empty_and_full,
    game_device,
)
from simshap.games.sampling import (
    random_permutations,
)
from simshap.results import ShapleyValues

__all__ = ["permutation_shapley"]


def permutation_shapley(
    game: Any,
    budget: int | None = None,
    antithetic: bool = True,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> ShapleyValues:
    """Random order value: average marginal contributions along random permutations.

    Each permutation costs d - 1 new coalitions (v(∅) and v(N) are shared), so a budget buys
    ``P = (budget - 2) // (d - 1)`` permutations and ``n_evals = P (d - 1) + 2``.

    Args:
        game: any object honoring the game contract.
        budget: game evaluations per instance, v(∅) and v(N) included (at least d + 1).
        antithetic: each permutation followed by its reverse.
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        ShapleyValues (``method="permutation"``) with the standard error over permutations (over
        antithetic pairs when P is even).
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    budget = resolve_budget("permutation_shapley", budget, d + 1)
    v0, v1 = empty_and_full(game)
    if d == 1:
        return make_result(game, (v1 - v0).unsqueeze(1), v0, None, 2, "permutation")
    n_perm = (budget - 2) // (d - 1)
    device = game_device(game)
    perms = random_permutations(
        n_perm, d, generator, device, batch_shape=(bsz,), antithetic=antithetic
    )
    rank = perms.argsort(dim=-1)  # position of each player in each permutation
    prefix = torch.arange(1, d, device=device)
    per_call = max(1, batch_size // max(d - 1, 1))
    contribs = []
    for i in range(0, n_perm, per_call):
        r = rank[:, i : i + per_call]  # (B, p, d)
        p = r.shape[1]
        masks = r.unsqueeze(-2) < prefix.view(-1, 1)  # (B, p, d-1, d)
        v = call_game(game, masks.reshape(bsz, p * (d - 1), d)).view(bsz, p, d - 1, -1)
        c = v.shape[-1]
        chain = torch.cat(
            [v0[:, None, None].expand(bsz, p, 1, c), v, v1[:, None, None].expand(bsz, p, 1, c)],
            dim=2,
        )
        step = chain[:, :, 1:] - chain[:, :, :-1]  # contribution of the player at position j
        idx = r.to(step.device).unsqueeze(-1).expand(-1, -1, -1, c)
        contribs.append(torch.gather(step, 2, idx))
    contrib = torch.cat(contribs, dim=1)  # (B, P, d, C)
    if antithetic and n_perm % 2 == 0:
        units = contrib.view(bsz, n_perm // 2, 2, d, -1).mean(2)
    else:
        units = contrib
    return make_result(
        game, contrib.mean(1), v0, standard_error(units), n_perm * (d - 1) + 2, "permutation"
    )
