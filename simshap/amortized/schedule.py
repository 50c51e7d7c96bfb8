"""Training on a wall-clock budget, and the time it took to reach the best validation score.

Two Lightning callbacks for :func:`~simshap.amortized.training.fit_module`, which also passes
the budget to Lightning's own ``Trainer(max_time=...)`` (the hard stop) and keeps
``EarlyStopping`` and the best checkpoint (restored on return):

* :class:`ValidationCurve` records ``(seconds of training, monitored score)`` at every
  validation, and from it the **time to accuracy**: the seconds until the best score.
* :class:`BudgetSchedule` sizes the cosine learning-rate schedule to the budget: after the
  first epoch it estimates how many epochs fit in the time left, sets the trainer's
  ``max_epochs`` and the scheduler's ``T_max`` to that count (recorded as
  ``schedule_epochs``), so the learning rate reaches its minimum when the time runs out.

The count depends on the machine's speed; everything else (data order, coalitions,
augmentation) follows the seed. A run is repeated exactly on any machine with no time budget and
``max_epochs = schedule_epochs``: the first epoch runs at the base learning rate either way, and
from then on the schedule is the same.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, Timer

__all__ = ["BudgetSchedule", "ValidationCurve", "budget_callbacks", "max_time"]


def max_time(minutes: float | None) -> timedelta | None:
    """Lightning's ``max_time`` for a budget in minutes (``None``: no limit)."""
    if minutes is None:
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
        raise ValueError(f"a time budget must be a positive number of minutes, got {minutes!r}")
    return timedelta(seconds=60.0 * float(minutes))


class ValidationCurve(pl.Callback):
    """``(seconds, score)`` at every validation of a fit, and the time to the best score.

    Seconds count from the start of training (Lightning's ``on_train_start``, as its ``Timer``
    does), so they include the validations themselves.

    Args:
        monitor: the logged metric (minimized).
    """

    def __init__(self, monitor: str = "val_l2") -> None:
        self.monitor = monitor
        self.start: float | None = None
        self.points: list[tuple[float, int, float]] = []  # (seconds, epoch, score)
        self.end_s = float("nan")
        self.stopped_by = "max_epochs"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if trainer.sanity_checking or self.start is None:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None:
            seconds = time.perf_counter() - self.start
            self.points.append((seconds, int(trainer.current_epoch), float(score)))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self.start is not None:
            self.end_s = time.perf_counter() - self.start
        stopped = [c for c in trainer.callbacks if isinstance(c, EarlyStopping) and c.stopped_epoch]
        timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
        remaining = timers[0].time_remaining() if timers else None
        if stopped:
            self.stopped_by = "early_stopping"
        elif remaining is not None and remaining <= 0:
            self.stopped_by = "max_time"

    def summary(self) -> dict[str, Any]:
        """``best_val``, ``time_to_best_s``, ``train_s``, ``stopped_by``, ``val_curve``.

        ``val_curve`` lists ``[seconds, epoch, score]`` per validation; NaN scores never count
        as the best.
        """
        finite = [p for p in self.points if math.isfinite(p[2])]
        best = min(finite, key=lambda p: p[2]) if finite else None
        return {
            "best_val": best[2] if best else float("nan"),
            "time_to_best_s": round(best[0], 3) if best else float("nan"),
            "best_epoch": best[1] if best else None,
            "train_s": self.end_s,
            "stopped_by": self.stopped_by,
            "validations": len(self.points),
            "val_curve": [[round(s, 3), e, v] for s, e, v in self.points],
        }


class BudgetSchedule(pl.Callback):
    """Fit the epochs (and the cosine schedule) into a time budget, estimated after epoch 0.

    Args:
        seconds: the budget (the same as the trainer's ``max_time``).
        safety: the fraction of the time left that the estimate may plan for (the rest absorbs
            slower epochs, so Lightning's ``max_time`` rarely has to cut an epoch short).
    """

    def __init__(self, seconds: float, safety: float = 0.95) -> None:
        self.seconds = float(seconds)
        self.safety = float(safety)
        self.start = 0.0
        self.epoch_start = 0.0
        self.train_part_s = float("nan")
        self.schedule_epochs: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.start = time.perf_counter()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.epoch_start = time.perf_counter()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if trainer.current_epoch == 0 and not math.isfinite(self.train_part_s):
            self.train_part_s = time.perf_counter() - self.epoch_start

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self.schedule_epochs is not None:
            return
        now = time.perf_counter()
        epoch_s = self.train_part_s if math.isfinite(self.train_part_s) else now - self.epoch_start
        left = self.seconds - (now - self.start)
        # a later epoch costs its training part (epoch 0's validation paid one-time costs)
        extra = max(0, math.floor(self.safety * left / max(epoch_s * 1.02, 1e-6)))
        total = 1 + extra
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            total = min(total, int(trainer.max_epochs))
        self.schedule_epochs = total
        trainer.fit_loop.max_epochs = total
        for config in trainer.lr_scheduler_configs:  # the cosine decay ends with the budget
            if hasattr(config.scheduler, "T_max"):
                config.scheduler.T_max = total

    def summary(self) -> dict[str, Any]:
        """``budget_s``, ``schedule_epochs`` and the first epoch's training seconds."""
        return {
            "budget_s": self.seconds,
            "schedule_epochs": self.schedule_epochs,
            "first_epoch_train_s": self.train_part_s,
        }


def budget_callbacks(
    minutes: float | None, monitor: str
) -> tuple[ValidationCurve, BudgetSchedule | None]:
    """The curve recorder, and the budget schedule when ``minutes`` is set."""
    curve = ValidationCurve(monitor)
    return curve, (BudgetSchedule(60.0 * minutes) if minutes is not None else None)
