"""What is explained: the game contract, games built from models and tables, the samplers.

A game is bound to a batch of B instances and answers many coalitions at once
(``game(masks (B, M, d)) -> (B, M, C)``); the estimators (:mod:`simshap.estimators`) and the
amortized explainers (:mod:`simshap.amortized`) take any object that honors it.
"""

from simshap.games.contract import Game, GameProtocol, empty_and_full, game_device
from simshap.games.rows import RowsGame
from simshap.games.sampling import ShapleyKernelSampler, UniformSampler, random_permutations
from simshap.games.values import (
    BaselineGame,
    FunctionGame,
    MarginalGame,
    MaskedModelGame,
    SklearnModel,
    TableGame,
)

__all__ = [
    "BaselineGame",
    "FunctionGame",
    "Game",
    "GameProtocol",
    "MarginalGame",
    "MaskedModelGame",
    "RowsGame",
    "ShapleyKernelSampler",
    "SklearnModel",
    "TableGame",
    "UniformSampler",
    "empty_and_full",
    "game_device",
    "random_permutations",
]
