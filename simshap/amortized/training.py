"""Lightning glue shared by the surrogate and the explainers: one ``fit`` with callbacks."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader

from simshap.errors import UserError
from simshap.files import fault_point

__all__ = [
    "EpochSampler",
    "FitResult",
    "MaskGeneratorState",
    "adamw_cosine",
    "fit_module",
    "is_rank_zero",
    "quiet_cpu_trainer",
]

# seeds of different DDP ranks lie this far apart, so each rank draws its own coalitions
RANK_SEED_STRIDE = 7_919_000_003


def quiet_cpu_trainer(
    max_epochs: int, callbacks: list[pl.Callback] | None = None, accelerator: str = "cpu"
) -> pl.Trainer:
    """A Lightning Trainer for small models trained many times over (zoos, teachers).

    One device (the CPU by default), no logger, no checkpoints, no progress bar or model
    summary, no sanity validation: what a loop that trains hundreds of tiny models wants.
    """
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (always true outside distributed training).

    Under DDP every rank runs the same stage; only rank 0 writes the run folder.
    """
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


class EpochSampler(torch.utils.data.Sampler[int]):
    """Shuffles ``n`` indices with a permutation that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every training epoch, so the order of epoch k is the
    same whether training ran straight through or resumed from a checkpoint after a crash (a
    ``DataLoader(shuffle=True, generator=g)`` would restart ``g`` and repeat epoch 0's order).

    Args:
        n: dataset length.
        seed: base seed.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of ``epoch``."""
        self.epoch = int(epoch)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=gen).tolist())

    def __len__(self) -> int:
        return self.n


class MaskGeneratorState:
    """Mixin for LightningModules that draw coalitions from ``self._generator``.

    The generator is seeded with ``hparams.seed`` plus a per-rank offset (under DDP every rank
    draws different coalitions), and its state travels in Lightning checkpoints, so a run
    resumed after a crash draws exactly the coalitions an uninterrupted run would have drawn.
    """

    _generator: torch.Generator | None = None
    _pending_generator_state: torch.Tensor | None = None

    def init_mask_generator(self) -> torch.Generator:
        """Create the step generator on the module's device (restoring a checkpointed state)."""
        seed = int(self.hparams.seed) + RANK_SEED_STRIDE * int(self.global_rank)  # type: ignore[attr-defined]
        self._generator = torch.Generator(device=self.device).manual_seed(seed)  # type: ignore[attr-defined]
        if self._pending_generator_state is not None:
            self._generator.set_state(self._pending_generator_state)
            self._pending_generator_state = None
        return self._generator

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        if self._generator is not None:
            checkpoint["simshap_mask_generator"] = self._generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        self._pending_generator_state = checkpoint.get("simshap_mask_generator")


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


class RunCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose restored paths always lie in its own folder.

    Lightning keeps absolute paths (``best_model_path``...) in a checkpoint's callback state and
    restores them on resume. Read back from a file, those paths are untrusted: a crafted
    ``last.ckpt`` could point at any file, and a moved run folder points at the old folder.
    Here every restored path is replaced by the file of the same name in this callback's own
    ``dirpath``, and only the names this project writes (``best.ckpt``, ``last.ckpt``) are
    accepted.
    """

    ALLOWED = ("best.ckpt", "last.ckpt")

    def _inside(self, path: str) -> str:
        if not path:
            return path
        name = Path(str(path)).name
        if name not in self.ALLOWED:
            raise UserError(
                f"the checkpoint names the file {path!r}, which this project never writes; the "
                "run folder was altered: rerun with --overwrite to train this stage afresh"
            )
        return str(Path(str(self.dirpath)) / name)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        state = dict(state_dict)
        for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
            if key in state:
                state[key] = self._inside(state[key])
        if "best_k_models" in state:
            state["best_k_models"] = {self._inside(k): v for k, v in state["best_k_models"].items()}
        state["dirpath"] = self.dirpath  # the folder may have moved: it is this one
        super().load_state_dict(state)


class EpochTimer(pl.Callback):
    """Logs ``epoch_s``, the wall seconds of each epoch (its training and validation).

    Epochs of one run need not cost the same (SimSHAP's memory epochs call no surrogate), so
    time-to-accuracy figures add these up instead of dividing the total by the epochs.
    """

    def __init__(self) -> None:
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        pl_module.log("epoch_s", time.perf_counter() - self._start, on_step=False, on_epoch=True)


class _FaultPoints(pl.Callback):
    """Fault-injection points after each epoch's checkpoint (:func:`simshap.files.fault_point`)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        fault_point("train.epoch")


def _readable_checkpoint(path: Path) -> bool:
    """Whether a checkpoint loads weights-only (a truncated or crafted one does not)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, bit-flipped, or holding code
        return False
    return isinstance(blob, dict) and "state_dict" in blob


#: Lightning's messages that say nothing a user can act on (hardware summary, tips, log cadence)
_LIGHTNING_NOISE = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*smaller than the logging interval.*",
    r".*module\(s\) in eval mode at the start of training.*",
    r".*does not have many workers which may be a bottleneck.*",
    r".*Checkpoint directory .* exists and is not empty.*",
)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning without its banner, tips and the warnings a user cannot act on.

    Errors and the warnings that matter (a diverging loss, a bad checkpoint) still show.
    """
    loggers = [
        logging.getLogger(n)
        for n in (
            "lightning.pytorch.utilities.rank_zero",
            "lightning.fabric.utilities.rank_zero",
            "lightning.pytorch.accelerators.cuda",
        )
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


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
    max_time: str | timedelta | None = None,
    strategy: str = "auto",
    num_nodes: int = 1,
    resume: bool = True,
    callbacks: list[pl.Callback] | None = None,
) -> FitResult:
    """Train ``module`` with Lightning's Trainer, early stopping and the best checkpoint restored.

    With ``out_dir``, Lightning keeps ``out_dir/checkpoints/last.ckpt`` (written after every
    epoch) and ``best.ckpt``. When ``last.ckpt`` exists and ``resume`` is true, training resumes
    from it: weights, optimizer, scheduler, early-stopping and checkpoint state, and the mask
    generator (:class:`MaskGeneratorState`). ``resume=False`` deletes old checkpoints first.

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
        max_time: optional wall-clock limit, ``"DD:HH:MM:SS"`` or a ``timedelta``.
        strategy: Lightning strategy (``"ddp"`` for several GPUs or CPU processes).
        num_nodes: machines for multi-node DDP.
        resume: continue from ``out_dir/checkpoints/last.ckpt`` when it exists.
        callbacks: extra Lightning callbacks.

    Returns:
        A :class:`FitResult`; the module holds the best checkpoint's weights on return.
    """
    logged = out_dir is not None
    root = Path(out_dir) if logged else Path(tempfile.mkdtemp(prefix="simshap-fit-"))
    last = root / "checkpoints" / "last.ckpt"
    if not resume and (root / "checkpoints").exists():
        shutil.rmtree(root / "checkpoints")
    if logged and resume and last.is_file() and not _readable_checkpoint(last):
        print(
            f"[simshap] {last} is unreadable (truncated or altered); training this stage afresh",
            flush=True,
        )
        shutil.rmtree(root / "checkpoints")
    ckpt_path = str(last) if logged and resume and last.is_file() else None
    if ckpt_path is not None:
        print(f"[simshap] resuming from {last}", flush=True)
    ckpt = RunCheckpoint(
        dirpath=root / "checkpoints",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        filename="best",
        enable_version_counter=False,
    )
    # last.ckpt after every epoch (ModelCheckpoint(save_last=True) writes it only in epochs
    # that improve the monitored metric); listed after `ckpt` so it holds ckpt's latest state
    keep_last = (
        [
            RunCheckpoint(
                dirpath=root / "checkpoints",
                filename="last",
                monitor=None,
                save_top_k=1,
                enable_version_counter=False,
            )
        ]
        if logged
        else []
    )
    with quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            strategy=strategy,
            num_nodes=num_nodes,
            precision=precision,
            callbacks=[
                EarlyStopping(monitor=monitor, mode="min", patience=patience),
                ckpt,
                *keep_last,
                EpochTimer(),
                _FaultPoints(),
                *(callbacks or []),
            ],
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            logger=pl.loggers.CSVLogger(str(root), name="logs") if logged else False,
            default_root_dir=str(root),
            num_sanity_val_steps=0,
            max_time=max_time,
            deterministic=False,
        )
    start = time.perf_counter()
    with quiet_lightning():
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
    seconds = time.perf_counter() - start
    best = ckpt.best_model_path
    if best:
        # the file of that name in this run's own folder, never a path read from a file
        best = str(root / "checkpoints" / Path(best).name)
        try:
            state = torch.load(best, map_location=module.device, weights_only=True)["state_dict"]
        except Exception as err:  # truncated, or holding code: nothing is unpickled
            raise UserError(
                f"{best} is unreadable ({type(err).__name__}); the run folder was "
                "altered: rerun with --overwrite to train this stage afresh"
            ) from None
        module.load_state_dict(state)
    score = ckpt.best_model_score
    return FitResult(
        train_seconds=seconds,
        best_score=float(score) if score is not None else float("nan"),
        best_checkpoint=best,
        epochs=trainer.current_epoch,
    )
