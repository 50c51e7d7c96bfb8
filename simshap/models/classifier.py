"""Lightning module that trains the original image classifier (CIFAR ResNet-18 by default)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from simshap.models.resnet import cifar_resnet18
from simshap.models.speedups import apply_speedups

__all__ = ["ImageClassifier"]

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULERS = ("onecycle", "cosine", "none")


class ImageClassifier(L.LightningModule):
    """Trains an image classifier with cross-entropy; logs loss and label accuracy.

    Batches are ``(images, labels)`` pairs (as from the CIFAR DataModule). The learning-rate
    schedule is stepped every optimizer step and sized from the trainer's
    ``estimated_stepping_batches``, so it fits any number of epochs or devices.

    Args:
        model: the network (default: :func:`simshap.models.cifar_resnet18` with ``num_classes``
            and ``width``, rebuilt from the hyperparameters when a checkpoint is loaded; a
            custom model must be passed again to ``load_from_checkpoint``).
        num_classes: classes (used to build the default model).
        width: first-stage width of the default ResNet-18 (64 = torchvision's).
        optimizer: ``"sgd"`` (Nesterov momentum) or ``"adamw"``.
        lr: (peak) learning rate.
        weight_decay: weight decay (not applied to BatchNorm and bias parameters).
        momentum: SGD momentum.
        scheduler: ``"onecycle"``, ``"cosine"`` (to 0 over training) or ``"none"``.
        label_smoothing: label smoothing of the cross-entropy.
        channels_last: keep the model and inputs in ``torch.channels_last`` (GPU only; ignored
            on the CPU).

    """

    def __init__(
        self,
        model: nn.Module | None = None,
        num_classes: int = 10,
        width: int = 64,
        optimizer: str = "sgd",
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        momentum: float = 0.9,
        scheduler: str = "onecycle",
        label_smoothing: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
        if scheduler not in _SCHEDULERS:
            raise ValueError(f"scheduler must be one of {_SCHEDULERS}, got {scheduler!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        self.save_hyperparameters(ignore=["model"])
        self.model = (
            model if model is not None else cifar_resnet18(num_classes=num_classes, width=width)
        )
        if channels_last:
            # applied on CUDA only (on the CPU a channels_last backward pass can hang)
            apply_speedups(self.model, "cuda" if torch.cuda.is_available() else "cpu", True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        if self.hparams.channels_last and x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    @torch.no_grad()
    def predict_logits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Logits of a batch of (normalized) images in eval mode, in chunks of ``batch_size``.

        Args:
            images: ``(N, C, H, W)`` model inputs; moved to the module's device.
            batch_size: images per forward pass.

        Returns:
            ``(N, num_classes)`` logits on the module's device.

        """
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        was_training = self.training
        self.eval()
        try:
            outs = [
                self(images[i : i + batch_size].to(self.device))
                for i in range(0, images.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(outs)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        acc = (logits.argmax(dim=1) == y).float().mean()
        on_step = stage == "train"
        sync = stage != "train"  # validation metrics are all-reduced over DDP ranks
        self.log(
            f"{stage}_loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=sync
        )
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=sync)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Cross-entropy on one batch of ``(images, labels)``."""
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Validation loss and accuracy."""
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Test loss and accuracy."""
        self._step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Logits of a batch (``images`` or ``(images, labels)``)."""
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self(x)

    def configure_optimizers(self) -> Any:
        """Optimizer (no weight decay on norms and biases) and a per-step LR schedule."""
        hp = self.hparams
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [
            {"params": decay, "weight_decay": hp.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if hp.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0
            )
        else:
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        if hp.scheduler == "none":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if hp.scheduler == "onecycle" and total >= 2:
            # a quarter of training to warm up (at least ~1.5 steps, so short runs stay valid)
            pct = min(0.75, max(0.25, 1.5 / total))
            sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=hp.lr, total_steps=total, pct_start=pct
            )
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
