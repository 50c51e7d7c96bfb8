"""Lightning glue shared by the surrogate and the explainers: one ``fit`` with callbacks."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

__all__ = ["FitResult", "adamw_cosine", "fit_module"]


def adamw_cosine(
    params: Any, lr: float, weight_decay: float = 0.0, epochs: int = 0
) -> torch.optim.Optimizer | dict[str, Any]:
    """AdamW, with cosine learning-rate decay over ``epochs`` when ``epochs > 0``.

    Returns what Lightning's ``configure_optimizers`` expects.
    """
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if epochs > 0:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        return {"optimizer": opt, "lr_scheduler": sched}
    return opt


@dataclass
class FitResult:
    """What :func:`fit_module` reports.

    Attributes:
        train_seconds: wall time of ``trainer.fit``.
        best_score: best value of the monitored metric.
        best_checkpoint: path of the best checkpoint ('' when checkpointing is off).
        epochs: epochs run.
    """

    train_seconds: float
    best_score: float
    best_checkpoint: str
    epochs: int


def fit_module(
    module: pl.LightningModule,
    train_loader: DataLoader,
    val_loader: DataLoader,
    monitor: str,
    max_epochs: int = 100,
    patience: int = 10,
    out_dir: str | os.PathLike[str] | None = None,
    accelerator: str = "auto",
    devices: int | str = "auto",
    precision: str | int = "32-true",
    progress_bar: bool = True,
    max_time: str | None = None,
    strategy: str = "auto",
) -> FitResult:
    """Train ``module`` with Lightning's Trainer, early stopping and the best checkpoint restored.

    Args:
        module: the LightningModule (logs ``monitor`` in its validation step).
        train_loader: training batches.
        val_loader: validation batches (fixed order).
        monitor: metric to minimise (early stopping and checkpoint).
        max_epochs: epoch limit.
        patience: epochs without improvement before stopping.
        out_dir: folder for checkpoints and logs (default: a temporary Lightning folder).
        accelerator: Lightning accelerator (``"auto"`` picks the GPU when there is one).
        devices: Lightning devices (e.g. ``4`` with ``strategy="ddp"`` for multi-GPU).
        precision: Lightning precision (``"bf16-mixed"`` on recent GPUs).
        progress_bar: show Lightning's progress bar.
        max_time: optional wall-clock limit, ``"DD:HH:MM:SS"``.
        strategy: Lightning strategy (``"ddp"`` for several GPUs).

    Returns:
        A :class:`FitResult`; the module holds the best checkpoint's weights on return.
    """
    logged = out_dir is not None
    root = Path(out_dir) if logged else Path(tempfile.mkdtemp(prefix="simshap-fit-"))
    ckpt = ModelCheckpoint(
        dirpath=root / "checkpoints",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        filename="best",
        enable_version_counter=False,
    )
    trainer = pl.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        precision=precision,
        callbacks=[EarlyStopping(monitor=monitor, mode="min", patience=patience), ckpt],
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        logger=pl.loggers.CSVLogger(str(root), name="logs") if logged else False,
        default_root_dir=str(root),
        num_sanity_val_steps=0,
        max_time=max_time,
        deterministic=False,
    )
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - start
    best = ckpt.best_model_path
    if best:
        # our own checkpoint, written a moment ago by this process
        state = torch.load(best, map_location=module.device, weights_only=False)["state_dict"]
        module.load_state_dict(state)
    score = ckpt.best_model_score
    return FitResult(
        train_seconds=seconds,
        best_score=float(score) if score is not None else float("nan"),
        best_checkpoint=best,
        epochs=trainer.current_epoch,
    )
