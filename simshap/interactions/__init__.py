"""Interaction detection and compression: ParaACE's UCB detector and the ParaACE model."""

from simshap.interactions.detect import (
    InteractionDetection,
    all_pairs,
    detect_interactions,
    naive_interactions,
)
from simshap.interactions.finite_differences import (
    as_batch_function,
    interaction_strength,
    mixed_difference,
)
from simshap.interactions.ucb import UCBResult, ucb_best_k_arms

__all__ = [
    "InteractionDetection",
    "UCBResult",
    "all_pairs",
    "as_batch_function",
    "detect_interactions",
    "interaction_strength",
    "mixed_difference",
    "naive_interactions",
    "ucb_best_k_arms",
]
