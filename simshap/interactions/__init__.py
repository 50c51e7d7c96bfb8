"""Shapley interactions: Möbius, SII, k-SII, STII and FSII (exact), and sampled FSII."""

from simshap.interactions.exact import (
    INDICES,
    ExactInteractionComputer,
    exact_interactions,
    faithfulness_r2,
)
from simshap.interactions.fsii import approx_fsii
from simshap.interactions.values import InteractionValues

__all__ = [
    "INDICES",
    "ExactInteractionComputer",
    "InteractionValues",
    "approx_fsii",
    "exact_interactions",
    "faithfulness_r2",
]
