"""Sampled FSII: the Shapley-kernel regression over interactions on a coalition budget.

The estimator counterpart of the exact FSII in :mod:`simshap.interactions.exact`: the same
least-squares problem (Faith-Shap), solved on the coalitions a budget buys, with the sizes it
covers enumerated as in :func:`~simshap.estimators.kernel.kernel_shap`.
"""

from __future__ import annotations

import torch

from simshap.estimators.budget import check_positive, float_dtype
from simshap.estimators.kernel import kernel_shap_budget_plan
from simshap.estimators.regression import constrained_least_squares, subsets_of_sizes
from simshap.games.contract import Game, check_game, empty_and_full, game_device
from simshap.games.sampling import (
    sample_by_size,
    shapley_kernel_size_probs,
    shapley_kernel_subset_prob,
)
from simshap.interactions.transforms import _make_basis
from simshap.interactions.values import InteractionValues

__all__ = ["approx_fsii"]


def approx_fsii(
    game: Game,
    order: int,
    budget: int,
    paired: bool = True,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> InteractionValues:
    """Regression estimate of FSII from ``budget`` game evaluations (KernelSHAP-IQ style).

    The FSII least-squares problem with the Shapley kernel is solved on a sample: whole subset
    sizes that the budget covers are enumerated with their exact kernel weights (same rule as
    :func:`~simshap.estimators.kernel_shap`), the rest is drawn from the kernel restricted
    to the remaining sizes (complementary pairs with ``paired=True``); v(∅) and v(N) are kept
    as exact constraints. A budget of ``2^n`` reproduces the exact FSII.

    Args:
        game: the game.
        order: interaction order k (1 <= k < n).
        budget: game evaluations per instance, ∅ and N included (the project's one budget
            unit); at least 2 + the number of interactions of size 1..k is needed for a unique
            solution.
        paired: sample complementary pairs.
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        InteractionValues with ``estimated=True`` and ``n_evals`` = evaluations per instance.
    """
    check_game(game)
    check_positive(budget, "budget")
    check_positive(batch_size, "batch_size")
    n, bsz = game.num_players, game.num_instances
    if n < 2 or not isinstance(order, int) or not 1 <= order < n:
        raise ValueError(f"order must be an integer in 1..{n - 1} for {n} players, got {order!r}")
    device = game_device(game)
    basis = _make_basis(n, order, 1, device)
    p = len(basis.tuples)
    if budget < p + 2:
        raise ValueError(
            f"budget={budget} evaluations (∅ and N included) leave fewer coalitions than the {p} "
            f"interactions of size 1..{order}: the regression would be underdetermined; use "
            f"budget >= {p + 2} (a few times more for accuracy)"
        )
    v0, v1 = empty_and_full(game)
    dtype = float_dtype(v0)
    v0, v1 = v0.to(torch.float64), v1.to(torch.float64)
    sampled = min(budget, 2**n) - 2 if n <= 60 else budget - 2
    sizes, n_left = kernel_shap_budget_plan(n, sampled)
    members = basis.members.to(torch.float64)
    gram = torch.zeros(bsz, p, p, dtype=torch.float64, device=device)
    rhs = torch.zeros(bsz, p, v0.shape[-1], dtype=torch.float64, device=device)

    def accumulate(masks: torch.Tensor, w: torch.Tensor, values: torch.Tensor) -> None:
        # design row of S: 1{T ⊆ S} for every interaction T
        z = ((masks.to(torch.float64) @ members.T) == basis.sizes.to(torch.float64)).double()
        if z.ndim == 2:
            z = z.expand(bsz, -1, -1)
            w = w.expand(bsz, -1)
        gram.add_(torch.einsum("bmp,bm,bmq->bpq", z, w, z))
        rhs.add_(torch.einsum("bmp,bm,bmc->bpc", z, w, values - v0[:, None]))

    n_evals = 2
    if sizes:
        enum = subsets_of_sizes(n, sizes, device)
        w = shapley_kernel_subset_prob(n, enum.sum(-1)).to(device)
        for i in range(0, enum.shape[0], batch_size):
            part = enum[i : i + batch_size]
            accumulate(part, w[i : i + batch_size][None], game(part).to(torch.float64))
        n_evals += enum.shape[0]
    if n_left > 0 and len(sizes) < n - 1:
        probs = shapley_kernel_size_probs(n).clone()
        if sizes:
            probs[torch.tensor(sizes) - 1] = 0.0
        mass = float(probs.sum())
        masks = sample_by_size(probs, n_left, n, paired, generator, device, batch_shape=(bsz,))
        w = torch.full((bsz, n_left), mass / n_left, dtype=torch.float64, device=device)
        for i in range(0, n_left, batch_size):
            part = masks[:, i : i + batch_size]
            accumulate(part, w[:, i : i + batch_size], game(part).to(torch.float64))
        n_evals += n_left
    beta = constrained_least_squares(gram, rhs, v1 - v0)
    full = _make_basis(n, order, 0, device)
    vals = torch.cat([v0[:, None], beta], dim=1).to(dtype)
    return InteractionValues(
        values=vals,
        interactions=list(full.tuples),
        index="FSII",
        order=order,
        n_players=n,
        baseline_value=v0.to(dtype),
        estimated=True,
        n_evals=n_evals,
    )
