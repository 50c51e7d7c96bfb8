"""The study's former one-model training loop (Lightning), kept as the batched trainer's baseline.

Before :mod:`simshap.studies.causal.trainer`, every zoo model was trained alone by
:func:`train_model`: a Lightning ``Trainer`` over a ``DataLoader``, with dropout from the global
generator. ``benchmarks/causal_throughput.py`` times it against the batched trainer on the same
cores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized.training import quiet_cpu_trainer
from simshap.studies.causal.zoo import SmallCNN, build_model

__all__ = ["ZooModule", "accuracy", "train_model"]


class ZooModule(pl.LightningModule):
    """Lightning module that trains one zoo member with cross-entropy plus an L2 penalty.

    Args:
        model: the CNN.
        hp: hyperparameter values (optimizer, learning_rate, l2).
    """

    def __init__(self, model: SmallCNN, hp: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.hp = dict(hp)

    def training_step(  # noqa: D102
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        penalty = sum((p**2).sum() for n, p in self.model.named_parameters() if "weight" in n)
        return loss + float(self.hp["l2"]) * penalty

    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        lr = float(self.hp["learning_rate"])
        cls = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
        return cls[self.hp["optimizer"]](self.model.parameters(), lr=lr)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Top-1 accuracy of ``model`` in eval mode (NaN outputs count as wrong)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def train_model(
    hp: Mapping[str, Any],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    test: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    batch_size: int,
    stride: int,
    seed: int,
) -> tuple[SmallCNN, float]:
    """Train one model with Lightning; returns the model (eval mode) and its test accuracy.

    The training subset is the first ``train_fraction`` of ``x_train``; init, dropout and
    batch order all come from ``seed``; the accuracy is measured on ``test``.
    """
    torch.manual_seed(seed)  # dropout masks draw from the global generator
    model = build_model(hp, stride, seed)
    n = max(1, int(round(float(hp["train_fraction"]) * len(x_train))))
    loader = DataLoader(
        TensorDataset(x_train[:n], y_train[:n]),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    trainer = quiet_cpu_trainer(epochs)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    trainer.fit(ZooModule(model, hp), loader)
    model.eval()
    return model, accuracy(model, *test)
