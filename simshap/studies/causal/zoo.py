"""The model zoo's definition: the paper's small CNN, its hyperparameter grid and initializers.

Each model's hyperparameters are drawn independently from the grid with a generator seeded by
(zoo seed, model index), so model ``k`` is the same whatever the zoo size. Training lives in
:mod:`simshap.studies.causal.trainer` (batched) and storage in :mod:`simshap.studies.causal.chunks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from simshap.errors import UserError

__all__ = [
    "GRID",
    "SmallCNN",
    "build_model",
    "check_grid",
    "init_weights",
    "sample_hyperparameters",
]

# the zoo's grid (Unterthiner et al. 2020, as used by Karimi et al.); continuous values are the
# paper's binning markers
GRID: dict[str, list[Any]] = {
    "optimizer": ["adam", "rmsprop", "sgd"],
    "activation": ["relu", "tanh", "elu"],
    "w_init": ["he_normal", "glorot_uniform", "orthogonal", "normal"],
    "init_std": [1e-3, 1e-2, 1e-1, 0.5],
    "b_init": ["zeros", "ones"],
    "learning_rate": [5e-4, 5e-3, 5e-2],
    "l2": [1e-8, 1e-6, 1e-4, 1e-2],
    "dropout": [0.0, 0.2, 0.45, 0.7],
    "train_fraction": [0.1, 0.25, 0.5, 1.0],
}
_ALLOWED_CATEGORIES = {k: set(v) for k, v in GRID.items() if isinstance(v[0], str)}
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Validate a hyperparameter grid (a subset of :data:`GRID`'s keys, non-empty value lists).

    Args:
        grid: hyperparameter name -> list of values.

    Returns:
        The grid with every key of :data:`GRID` (missing keys take the default values).

    Raises:
        UserError: unknown hyperparameter, empty list, unknown categorical value, bad number.
    """
    out = {k: list(v) for k, v in GRID.items()}
    for key, values in grid.items():
        if key not in GRID:
            raise UserError(f"unknown hyperparameter {key!r} in grid; allowed: {', '.join(GRID)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise UserError(f"grid.{key} must be a list of values, e.g. {GRID[key]}")
        if len(values) == 0:
            raise UserError(
                f"grid.{key} is empty: give at least one value (e.g. {GRID[key]}) or drop the key"
            )
        if key in _ALLOWED_CATEGORIES:
            bad = [v for v in values if v not in _ALLOWED_CATEGORIES[key]]
            if bad:
                allowed = sorted(_ALLOWED_CATEGORIES[key])
                raise UserError(f"grid.{key} has unknown values {bad}; allowed: {allowed}")
        else:
            try:
                values = [float(v) for v in values]
            except (TypeError, ValueError):
                raise UserError(f"grid.{key} must hold numbers, got {list(values)}") from None
            lo = 0.0 if key in ("dropout", "l2") else 1e-12
            hi = 1.0 if key == "train_fraction" else (0.99 if key == "dropout" else math.inf)
            if any(not lo <= v <= hi for v in values):
                raise UserError(f"grid.{key} values must lie in [{lo}, {hi}], got {values}")
        if len(set(values)) != len(values):
            raise UserError(f"grid.{key} repeats a value: {list(values)}")
        out[key] = list(values)
    return out


def sample_hyperparameters(
    grid: Mapping[str, Sequence[Any]], index: int, seed: int
) -> dict[str, int]:
    """Grid positions of model ``index``'s hyperparameters, each drawn uniformly and independently.

    Args:
        grid: validated grid.
        index: model index in the zoo.
        seed: zoo seed.

    Returns:
        hyperparameter name -> index into ``grid[name]``.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return {k: int(torch.randint(len(v), (1,), generator=gen)) for k, v in grid.items()}


class SmallCNN(nn.Module):
    """3 convolutions of 16 3x3 filters, global average pooling, a dense layer to the classes.

    With one input channel and 10 classes it has 4,970 parameters, as the paper's zoo.

    Args:
        activation: ``"relu"``, ``"tanh"`` or ``"elu"``.
        dropout: dropout rate after each convolution block.
        stride: stride of the convolutions (2 as in the zoo for 28x28; 1 for 8x8 digits).
        in_channels: image channels.
        num_classes: outputs.
    """

    def __init__(
        self,
        activation: str = "relu",
        dropout: float = 0.0,
        stride: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=stride, padding=1)
        self.act = _ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        h = self.drop(self.act(self.conv1(x)))
        h = self.drop(self.act(self.conv2(h)))
        h = self.drop(self.act(self.conv3(h)))
        return self.fc(h.mean(dim=(2, 3)))


def init_weights(model: nn.Module, hp: Mapping[str, Any], gen: torch.Generator) -> None:
    """Weight and bias initialization; ``init_std`` scales the ``normal`` initializer only.

    As in the original zoo (Keras initializers), he_normal, glorot_uniform and orthogonal carry
    their own scale, so the std hyperparameter only acts through ``w_init = normal``.
    """
    for mod in model.modules():
        if not isinstance(mod, (nn.Conv2d, nn.Linear)):
            continue
        w = mod.weight
        kind = hp["w_init"]
        if kind == "he_normal":
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
        elif kind == "glorot_uniform":
            nn.init.xavier_uniform_(w, generator=gen)
        elif kind == "orthogonal":
            nn.init.orthogonal_(w, generator=gen)
        else:
            nn.init.normal_(w, 0.0, float(hp["init_std"]), generator=gen)
        nn.init.constant_(mod.bias, 1.0 if hp["b_init"] == "ones" else 0.0)


def build_model(hp: Mapping[str, Any], stride: int, seed: int | torch.Generator) -> SmallCNN:
    """The CNN of hyperparameters ``hp`` (values, not positions), initialized from ``seed``.

    Args:
        hp: hyperparameter values.
        stride: convolution stride.
        seed: an int seed, or the generator to draw the initial weights from.
    """
    model = SmallCNN(hp["activation"], float(hp["dropout"]), stride)
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    init_weights(model, hp, gen)
    return model
