"""Interaction detection and compression: ParaACE's UCB detector and the ParaACE model.

Zhang, Yin & Luo, "Fast Generic Interaction Detection for Model Interpretability and
Compression" (ICLR 2022). Layers used: :mod:`simshap.games` (exact STII/FSII baseline) and
:mod:`simshap.errors`.
"""

from simshap.studies.paraace.baselines import exact_interaction_scores, nid_scores
from simshap.studies.paraace.detect import (
    InteractionDetection,
    all_pairs,
    detect_interactions,
    naive_interactions,
)
from simshap.studies.paraace.finite_differences import (
    as_batch_function,
    interaction_strength,
    mixed_difference,
)
from simshap.studies.paraace.higher_order import (
    HigherOrderDetection,
    cliques,
    detect_higher_order,
    refine_candidates,
)
from simshap.studies.paraace.paraace import (
    ParaACE,
    count_parameters,
    paraace_num_parameters,
    teacher_mlp,
    teacher_num_parameters,
)
from simshap.studies.paraace.training import fit_regressor, nrmse
from simshap.studies.paraace.ucb import UCBResult, ucb_best_k_arms

__all__ = [
    "HigherOrderDetection",
    "InteractionDetection",
    "ParaACE",
    "UCBResult",
    "all_pairs",
    "as_batch_function",
    "cliques",
    "count_parameters",
    "detect_higher_order",
    "detect_interactions",
    "exact_interaction_scores",
    "fit_regressor",
    "interaction_strength",
    "mixed_difference",
    "naive_interactions",
    "nid_scores",
    "nrmse",
    "paraace_num_parameters",
    "refine_candidates",
    "teacher_mlp",
    "teacher_num_parameters",
    "ucb_best_k_arms",
]
