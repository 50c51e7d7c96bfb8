"""The game layer: samplers, games built from models, exact and stochastic Shapley estimators."""

from simshap.games.estimators import (
    MAX_EXACT_PLAYERS,
    ShapleyEstimate,
    exact_shapley,
    kernel_shap,
    permutation_shapley,
    semivalue_mc,
    sim_semivalue,
    sim_semivalue_target,
)
from simshap.games.sampling import (
    ShapleyKernelSampler,
    UniformSampler,
    random_permutations,
)
from simshap.games.values import (
    BaselineGame,
    FeatureGrouping,
    FunctionGame,
    Game,
    MarginalGame,
    MaskedModelGame,
    SklearnModel,
    SuperpixelGrouping,
    TableGame,
)

__all__ = [
    "MAX_EXACT_PLAYERS",
    "BaselineGame",
    "FeatureGrouping",
    "FunctionGame",
    "Game",
    "MarginalGame",
    "MaskedModelGame",
    "ShapleyEstimate",
    "ShapleyKernelSampler",
    "SklearnModel",
    "SuperpixelGrouping",
    "TableGame",
    "UniformSampler",
    "exact_shapley",
    "kernel_shap",
    "permutation_shapley",
    "random_permutations",
    "semivalue_mc",
    "sim_semivalue",
    "sim_semivalue_target",
]
