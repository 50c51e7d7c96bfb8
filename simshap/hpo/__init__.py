"""Hyperparameter importance with Shapley values and interactions (HyperSHAP games).

The games in :mod:`simshap.hpo.games` follow the simshap game contract, so the exact and
sampled interaction routines of :mod:`simshap.games.interactions` explain them directly.
"""

from simshap.hpo.games import (
    AblationGame,
    MultiDataTunabilityGame,
    OneAtATimeSearch,
    OptimizerBiasGame,
    RandomSearch,
    SubsetSearch,
    TunabilityGame,
)
from simshap.hpo.objectives import LightGBMObjective, SurrogateObjective
from simshap.hpo.space import Categorical, ConfigSpace, Float, Integer

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
