"""Hyperparameter importance with Shapley values and interactions (HyperSHAP games).

The games in :mod:`simshap.studies.hpo.games` follow the simshap game contract, so the exact and
sampled interaction routines of :mod:`simshap.interactions.exact` explain them directly.
"""

from simshap.studies.hpo.games import (
    AblationGame,
    MultiDataTunabilityGame,
    OneAtATimeSearch,
    OptimizerBiasGame,
    RandomSearch,
    SubsetSearch,
    TunabilityGame,
)
from simshap.studies.hpo.objectives import LightGBMObjective, SurrogateObjective
from simshap.studies.hpo.space import Categorical, ConfigSpace, Float, Integer

__all__ = [
    "AblationGame",
    "Categorical",
    "ConfigSpace",
    "Float",
    "Integer",
    "LightGBMObjective",
    "MultiDataTunabilityGame",
    "OneAtATimeSearch",
    "OptimizerBiasGame",
    "RandomSearch",
    "SubsetSearch",
    "SurrogateObjective",
    "TunabilityGame",
]
