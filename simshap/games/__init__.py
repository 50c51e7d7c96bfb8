"""The game layer: samplers, games built from models, exact and stochastic Shapley estimators."""

from simshap.games.contract import GameProtocol, empty_and_full, game_device
from simshap.games.estimators import (
    MAX_EXACT_PLAYERS,
    ShapleyEstimate,
    appro_semivalue,
    convergence_ratio,
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
    IdentityGrouping,
    MarginalGame,
    MaskedModelGame,
    SklearnModel,
    SuperpixelGrouping,
    TableGame,
)
from simshap.players import Players
from simshap.shapley_values import ShapleyValues

__all__ = [
    "MAX_EXACT_PLAYERS",
    "BaselineGame",
    "FeatureGrouping",
    "FunctionGame",
    "Game",
    "GameProtocol",
    "IdentityGrouping",
    "MarginalGame",
    "MaskedModelGame",
    "Players",
    "ShapleyEstimate",
    "ShapleyKernelSampler",
    "ShapleyValues",
    "SklearnModel",
    "SuperpixelGrouping",
    "TableGame",
    "UniformSampler",
    "appro_semivalue",
    "convergence_ratio",
    "empty_and_full",
    "exact_shapley",
    "game_device",
    "kernel_shap",
    "permutation_shapley",
    "random_permutations",
    "semivalue_mc",
    "sim_semivalue",
    "sim_semivalue_target",
]
