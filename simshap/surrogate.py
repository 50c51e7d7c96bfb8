"""The surrogate s(x, m) ≈ f: a model of masked inputs trained to match the original model.

Training (Covert et al., FastSHAP): for every row a fresh uniform random coalition m (size
uniform on 0..d, then a uniform subset) is drawn each step, and the surrogate's softmax on
``[x * m, m]`` is fitted to the original model's probabilities on the full ``x`` with the KL
divergence KL(f(x) || s(x, m)). Validation uses fixed masks, so the validation KL is comparable
across epochs and drives early stopping and the best checkpoint.

The surrogate imports the game layer's sampler and player groupings (the same masks the games
use); it never imports games, estimators or explainers.
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from simshap.data.preprocessing import Preprocessor
from simshap.games.sampling import UniformSampler
from simshap.models.mlp import MLP, MaskedInput
from simshap.models.resnet import cifar_resnet18
from simshap.players import Players
from simshap.training import MaskGeneratorState, adamw_cosine

__all__ = ["Surrogate", "build_surrogate_net", "build_grouping"]

_VAL_SEED_STRIDE = 1_000_003


def build_surrogate_net(spec: dict[str, Any]) -> MaskedInput:
    """Build the masked-input network from a spec.

    ``{"kind": "mlp", "in_features", "num_classes", "hidden", "layers"}`` (ELU MLP on
    ``[x*m, m]``) or ``{"kind": "resnet18", "in_channels", "num_classes", "width"}`` (the CIFAR
    ResNet-18 with ``in_channels + 1`` input channels).
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind == "mlp":
        f = spec["in_features"]
        return MaskedInput(
            MLP(2 * f, spec["num_classes"], spec.get("hidden", 512), spec.get("layers", 4), "elu")
        )
    if kind == "resnet18":
        return MaskedInput(
            cifar_resnet18(
                spec["num_classes"], spec.get("in_channels", 3) + 1, spec.get("width", 64)
            )
        )
    raise ValueError(f"unknown surrogate kind {kind!r}; expected 'mlp' or 'resnet18'")


def build_grouping(spec: dict[str, Any]) -> Players:
    """Players from a spec (``Players.to_dict()``: identity, groups or superpixels).

    Older surrogate files wrote the same ``{"kind": "identity", "num_features"}`` and
    ``{"kind": "superpixels", "image_size", "superpixel_size"}`` forms, so they still load.
    """
    return Players.from_dict(spec)


def _grouping_spec(groups: Players) -> dict[str, Any]:
    return groups.to_dict()


class Surrogate(MaskGeneratorState, pl.LightningModule):
    """LightningModule training s(x, m) with the KL divergence under uniform random masks.

    Batches are ``(x, p, y)`` (``p``: the original model's probabilities, precomputed) or
    ``(x, y)`` together with ``original`` (an ``nn.Module`` whose softmax gives ``p`` on the fly,
    e.g. under image augmentation).

    Args:
        net_spec: spec for :func:`build_surrogate_net`.
        grouping_spec: spec for :func:`build_grouping` (players -> input features).
        original: optional original classifier (logits), frozen, for ``(x, y)`` batches.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        masks_per_row: masks drawn per row and step (the row is repeated).
        max_epochs_hint: epochs for the cosine schedule (0: constant learning rate).
        preprocessor: fitted raw-row preprocessing (``Preprocessor.to_dict()``), kept with the
            surrogate so explainers trained on it take raw rows.
        seed: seed of the mask generators (per DDP rank: seed + a rank offset; the training
            generator's state is kept in Lightning checkpoints).
    """

    def __init__(
        self,
        net_spec: dict[str, Any],
        grouping_spec: dict[str, Any],
        original: nn.Module | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        masks_per_row: int = 1,
        max_epochs_hint: int = 0,
        seed: int = 0,
        preprocessor: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["original"])
        self.preprocessor = Preprocessor.from_dict(preprocessor) if preprocessor else None
        self.net = build_surrogate_net(net_spec)
        self.groups = build_grouping(grouping_spec)
        self.num_players = self.groups.num_players
        self.sampler = UniformSampler(self.num_players)
        self.original = original
        if original is not None:
            original.eval().requires_grad_(False)

    # ------------------------------------------------------------------ model of (x, m)
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of inputs ``x`` under feature masks ``mask`` (broadcastable)."""
        return self.net(x, mask)

    @torch.no_grad()
    def masked_probs(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, C)``: the value function the games use."""
        return torch.softmax(self.net(x, mask).float(), dim=-1)

    # ------------------------------------------------------------------ training
    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if len(batch) == 3:
            x, p, y = batch
            return x, p, y
        x, y = batch
        if self.original is None:
            raise ValueError(
                "batches of (x, y) need the original model: pass original= to Surrogate, or "
                "feed (x, p, y) batches with the original model's probabilities p"
            )
        with torch.no_grad():
            p = torch.softmax(self.original(x).float(), dim=-1)
        return x, p, y

    def _step_masks(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        masks = self.sampler.sample(
            1, generator=generator, device=self.device, batch_shape=(n,)
        ).squeeze(1)
        return self.groups.feature_mask(masks)

    def _kl(self, x: torch.Tensor, p: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
        log_q = torch.log_softmax(self.net(x, fmask).float(), dim=-1)
        return F.kl_div(log_q, p.float(), reduction="batchmean")

    def on_fit_start(self) -> None:  # noqa: D102
        self.init_mask_generator()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        x, p, _ = self._unpack(batch)
        k = self.hparams.masks_per_row
        if k > 1:
            x, p = x.repeat_interleave(k, 0), p.repeat_interleave(k, 0)
        loss = self._kl(x, p, self._step_masks(x.shape[0], self._generator))
        self.log("train_kl", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_kl(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """KL of validation batch ``batch_idx`` under its fixed masks (seeded by the index)."""
        x, p, _ = self._unpack(batch)
        gen = torch.Generator().manual_seed(self.hparams.seed + _VAL_SEED_STRIDE * (batch_idx + 1))
        masks = self.sampler.sample(1, generator=gen, batch_shape=(x.shape[0],)).squeeze(1)
        return self._kl(x, p, self.groups.feature_mask(masks.to(self.device)))

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        # sync_dist: under DDP every rank sees a shard; the logged value is the all-reduced mean
        x, p, y = self._unpack(batch)
        self.log("val_kl", self.validation_kl(batch, batch_idx), prog_bar=True, sync_dist=True)
        full = torch.ones(x.shape[0], self.num_players, dtype=torch.bool, device=self.device)
        pred = self.net(x, self.groups.feature_mask(full)).argmax(-1)
        self.log("val_agreement", (pred == p.argmax(-1)).float().mean(), sync_dist=True)
        if y is not None:
            self.log("val_full_acc", (pred == y).float().mean(), prog_bar=True, sync_dist=True)
            self.log("val_original_acc", (p.argmax(-1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self) -> Any:  # noqa: D102
        hp = self.hparams
        return adamw_cosine(self.net.parameters(), hp.lr, hp.weight_decay, hp.max_epochs_hint)

    # ------------------------------------------------------------------ bring your own model
    @classmethod
    def fit(
        cls,
        model: Any,
        x_train: Any,
        x_val: Any,
        hidden: int = 512,
        layers: int = 4,
        masks_per_row: int = 4,
        batch_size: int = 128,
        lr: float = 1e-3,
        max_epochs: int = 100,
        patience: int = 10,
        seed: int = 0,
        out_dir: str | os.PathLike[str] | None = None,
        **trainer: Any,
    ) -> Surrogate:
        """Train a surrogate of your own model on your own raw rows.

        The preprocessing (column order, category codes, standardization) is fitted on
        ``x_train`` and kept inside the surrogate, and so inside every explainer trained on it.

        Args:
            model: any model :func:`~simshap.original.predict_probabilities` reads (scikit-learn,
                LightGBM, torch, a callable returning probabilities); it sees the raw rows.
            x_train: raw training rows (DataFrame, array).
            x_val: raw validation rows (early stopping).
            hidden: MLP width.
            layers: MLP depth.
            masks_per_row: random coalitions per row and step.
            batch_size: rows per step.
            lr: AdamW learning rate.
            max_epochs: epoch limit.
            patience: early-stopping patience (validation KL).
            seed: seed of the masks, the shuffling and the initialization.
            out_dir: folder for Lightning checkpoints (resumable); default a temporary one.
            **trainer: more :func:`~simshap.training.fit_module` options (``accelerator``...).

        Returns:
            The trained surrogate, in eval mode.
        """
        from torch.utils.data import DataLoader, TensorDataset

        from simshap.original import predict_probabilities
        from simshap.training import EpochSampler, fit_module

        prep = Preprocessor.fit(x_train)
        x_tr, x_va = prep.transform(x_train), prep.transform(x_val)
        p_tr = torch.as_tensor(predict_probabilities(model, x_train), dtype=torch.float32)
        p_va = torch.as_tensor(predict_probabilities(model, x_val), dtype=torch.float32)
        if p_tr.shape[1] != p_va.shape[1]:
            raise ValueError("the model gave different class counts on train and validation")
        d, c = prep.num_features, p_tr.shape[1]
        torch.manual_seed(seed)
        module = cls({"kind": "mlp", "in_features": d, "num_classes": c, "hidden": hidden,
                      "layers": layers}, Players.identity(d).to_dict(), lr=lr,
                     masks_per_row=masks_per_row, seed=seed,
                     preprocessor=prep.to_dict())  # fmt: skip
        y_tr, y_va = p_tr.argmax(1), p_va.argmax(1)
        train = DataLoader(TensorDataset(x_tr, p_tr, y_tr), batch_size=batch_size,
                           sampler=EpochSampler(len(x_tr), seed))  # fmt: skip
        val = DataLoader(TensorDataset(x_va, p_va, y_va), batch_size=1024)
        trainer.setdefault("progress_bar", False)
        fit_module(module, train, val, monitor="val_kl", max_epochs=max_epochs,
                   patience=patience, out_dir=out_dir, **trainer)  # fmt: skip
        return module.eval()
