"""Lightning training of the teacher and of ParaACE: Adam, L2 loss, best-on-validation weights.

Inputs and targets are standardized on the training split; the returned model is wrapped in
:class:`~simshap.studies.paraace.paraace.Standardized`, so it takes and returns raw values. The
weights kept are those of the epoch with the lowest validation loss (never the test fold).
``lr_schedule="cosine"`` anneals the learning rate per step from ``lr`` to 0 over ``max_epochs``;
``accelerator="gpu"`` trains on the first CUDA device and returns the model there.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any

import lightning as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from simshap.amortized.training import quiet_cpu_trainer
from simshap.errors import UserError
from simshap.studies.paraace.paraace import Standardized

__all__ = ["FitResult", "RegressionTask", "fit_regressor", "nrmse"]


class RegressionTask(pl.LightningModule):
    """Mean-squared-error regression of ``net`` with Adam.

    Args:
        net: the network ``(N, p) -> (N, 1)``.
        lr: Adam learning rate (paper: MXNet's default, 1e-3).
        cosine_steps: anneal the learning rate to 0 over this many optimizer steps (cosine);
            0 keeps it constant.
    """

    def __init__(self, net: nn.Module, lr: float = 1e-3, cosine_steps: int = 0) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.cosine_steps = int(cosine_steps)
        self.best_val = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = -1
        self._val_sum = 0.0
        self._val_n = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:  # noqa: D102
        x, y = batch
        return nn.functional.mse_loss(self.net(x).squeeze(-1), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:  # noqa: D102
        x, y = batch
        err = (self.net(x).squeeze(-1) - y).pow(2).sum()
        self._val_sum += float(err)
        self._val_n += len(y)

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        if self._val_n == 0 or self.trainer.sanity_checking:
            self._val_sum, self._val_n = 0.0, 0
            return
        loss = self._val_sum / self._val_n
        self._val_sum, self._val_n = 0.0, 0
        self.log("val_loss", loss, prog_bar=False)
        if loss < self.best_val:
            self.best_val = loss
            self.best_epoch = self.current_epoch
            self.best_state = copy.deepcopy(self.net.state_dict())

    def configure_optimizers(self) -> Any:  # noqa: D102
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        if self.cosine_steps <= 0:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.cosine_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class _Passes(Sampler[int]):
    """Row order of ``passes`` shuffled passes over ``n`` rows (one Lightning epoch)."""

    def __init__(self, n: int, passes: int, generator: torch.Generator) -> None:
        self.n, self.passes, self.generator = n, passes, generator

    def __iter__(self):
        for _ in range(self.passes):
            yield from torch.randperm(self.n, generator=self.generator).tolist()

    def __len__(self) -> int:
        return self.n * self.passes


@dataclass
class FitResult:
    """A trained model and its training record.

    Attributes:
        model: the raw-scale model (:class:`Standardized`) with the best validation weights.
        best_epoch: epoch of those weights.
        val_mse: their validation MSE on the standardized target.
        epochs: epochs run (one epoch is ``passes_per_epoch`` passes over the data).
        seconds: training wall time.
    """

    model: Standardized
    best_epoch: int
    val_mse: float
    epochs: int
    seconds: float


def fit_regressor(
    net: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    val_fraction: float = 0.2,
    max_epochs: int = 200,
    patience: int = 30,
    batch_size: int = 500,
    lr: float = 1e-3,
    seed: int = 0,
    passes_per_epoch: int = 1,
    lr_schedule: str = "constant",
    accelerator: str = "cpu",
) -> FitResult:
    """Trains ``net`` on ``(X, y)`` with a random validation split for model selection.

    Args:
        net: network on standardized inputs, ``(N, p) -> (N, 1)``.
        X: ``(N, p)`` training inputs (raw).
        y: ``(N,)`` targets (raw).
        val_fraction: share of the rows held out for model selection.
        max_epochs: epoch limit.
        patience: stop after this many epochs without a better validation loss.
        batch_size: minibatch size (paper: 500).
        lr: Adam learning rate.
        seed: seeds the split, initialization order and shuffling.
        passes_per_epoch: data passes between two validations (the early-stopping and
            model-selection unit; >1 saves per-epoch overhead on tiny data sets).
        lr_schedule: ``"constant"`` or ``"cosine"`` (per step, from ``lr`` to 0 over
            ``max_epochs``).
        accelerator: ``"cpu"`` or ``"gpu"`` (Lightning's accelerator; the model stays there).

    Returns:
        :class:`FitResult`.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or len(X) != len(y):
        raise UserError(f"X must be (N, p) and y (N,), got {X.shape} and {y.shape}")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise UserError("training data contain NaN or infinite values; drop or impute them")
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if lr_schedule not in ("constant", "cosine"):
        raise UserError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
    if accelerator not in ("cpu", "gpu"):
        raise UserError(f"accelerator must be 'cpu' or 'gpu', got {accelerator!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_val = max(1, int(round(val_fraction * len(X))))
    val, train = order[:n_val], order[n_val:]
    x_mean, x_std = X[train].mean(0), X[train].std(0)
    x_std = np.where(x_std > 0, x_std, 1.0)
    y_mean, y_std = float(y[train].mean()), float(y[train].std() or 1.0)

    def tensors(idx: np.ndarray) -> TensorDataset:
        xs = torch.as_tensor((X[idx] - x_mean) / x_std, dtype=torch.float32)
        ys = torch.as_tensor((y[idx] - y_mean) / y_std, dtype=torch.float32)
        return TensorDataset(xs, ys)

    gen = torch.Generator().manual_seed(seed)
    sampler = _Passes(len(train), max(1, int(passes_per_epoch)), gen)
    train_dl = DataLoader(tensors(train), batch_size=batch_size, sampler=sampler)
    val_dl = DataLoader(tensors(val), batch_size=max(batch_size, 4096))
    steps = max_epochs * len(train_dl) if lr_schedule == "cosine" else 0
    task = RegressionTask(net, lr, steps)
    stop = pl.pytorch.callbacks.EarlyStopping("val_loss", patience=patience, mode="min")
    trainer = quiet_cpu_trainer(max_epochs, callbacks=[stop], accelerator=accelerator)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        trainer.fit(task, train_dl, val_dl)
    seconds = time.perf_counter() - start
    if task.best_state is not None:
        net.load_state_dict(task.best_state)
    net.eval()
    model = Standardized(net, torch.as_tensor(x_mean), torch.as_tensor(x_std), y_mean, y_std)
    model = model.to(next(net.parameters()).device)
    return FitResult(model, task.best_epoch, task.best_val, trainer.current_epoch, seconds)


def nrmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """RMSE / (max y − min y) of the evaluated targets."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    span = float(y_true.max() - y_true.min())
    rmse = float(np.sqrt(np.mean((y_true - y_pred) ** 2)))
    return rmse / span if span > 0 else float("nan")
