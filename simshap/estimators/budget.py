"""Shared estimator plumbing: the one budget unit, chunked evaluation, result construction.

``budget`` counts game evaluations (coalitions) per instance, v(∅) and v(N) included, in every
estimator; the result's ``n_evals`` counts exactly what was spent.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from simshap.errors import UserError
from simshap.games.contract import call_game
from simshap.results import ShapleyValues

__all__ = [
    "check_positive",
    "resolve_budget",
    "evaluate_in_chunks",
    "float_dtype",
    "standard_error",
    "make_result",
]


def check_positive(n: Any, name: str) -> None:
    """Raise a :class:`UserError` unless ``n`` is a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"{name} must be a positive integer, got {n!r}")


def resolve_budget(fn: str, budget: Any, minimum: int, default: int | None = None) -> int:
    """The budget in game evaluations per instance (v(∅) and v(N) included), checked.

    Args:
        fn: the estimator's name (for messages).
        budget: the caller's ``budget`` (or ``None``).
        minimum: the smallest budget the estimator can spend usefully.
        default: budget when none is given (``None``: it is required).
    """
    if budget is None:
        if default is None:
            raise UserError(
                f"{fn} needs budget= (game evaluations per instance, v(∅) and v(N) included)"
            )
        budget = default
    if isinstance(budget, float) and budget.is_integer() and math.isfinite(budget):
        budget = int(budget)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < minimum:
        raise UserError(
            f"{fn}: budget must be a positive integer count of game evaluations per instance "
            f"(v(∅) and v(N) included), at least {minimum} here; got {budget!r}"
        )
    return budget


def evaluate_in_chunks(game: Any, masks: torch.Tensor, chunk: int) -> torch.Tensor:
    """Evaluate ``(B, M, d)`` (or shared ``(M, d)``) masks ``chunk`` coalitions at a time."""
    m = masks.shape[-2]
    if m <= chunk:
        return call_game(game, masks)
    parts = [call_game(game, masks[..., i : i + chunk, :]) for i in range(0, m, chunk)]
    return torch.cat(parts, dim=1)


def float_dtype(values: torch.Tensor) -> torch.dtype:
    """The floating dtype to report results in (the values' own, or the default)."""
    return values.dtype if values.is_floating_point() else torch.get_default_dtype()


def standard_error(units: torch.Tensor) -> torch.Tensor | None:
    """Standard error of the mean over axis 1 of iid units ``(B, n, d, C)``."""
    n = units.shape[1]
    if n < 2:
        return None
    return units.std(dim=1) / math.sqrt(n)


def make_result(
    game: Any,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    std: torch.Tensor | None,
    n_evals: int,
    method: str,
) -> ShapleyValues:
    """A :class:`ShapleyValues` with the game's player names and superpixel grid, if any."""
    players = getattr(game, "groups", None)
    dtype = float_dtype(values)
    return ShapleyValues(
        values=values,
        base_values=v_empty.to(dtype),
        std=None if std is None else std.to(dtype),
        n_evals=int(n_evals),
        method=method,
        player_names=getattr(players, "names", None),
        grid=getattr(players, "grid", None),
    )
