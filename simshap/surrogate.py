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

from simshap.games.sampling import UniformSampler
from simshap.games.values import IdentityGrouping, PlayerGrouping, SuperpixelGrouping
from simshap.models.mlp import MLP, MaskedInput
from simshap.models.resnet import cifar_resnet18
from simshap.training import adamw_cosine

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


def build_grouping(spec: dict[str, Any]) -> PlayerGrouping:
    """Player grouping from a spec: ``{"kind": "identity", "num_features"}`` or superpixels."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind == "identity":
        return IdentityGrouping(spec["num_features"])
    if kind == "superpixels":
        return SuperpixelGrouping(tuple(spec["image_size"]), spec["superpixel_size"])
    raise ValueError(f"unknown grouping kind {kind!r}; expected 'identity' or 'superpixels'")


def _grouping_spec(groups: PlayerGrouping) -> dict[str, Any]:
    if isinstance(groups, SuperpixelGrouping):
        return {
            "kind": "superpixels",
            "image_size": list(groups.image_size),
            "superpixel_size": groups.superpixel_size,
        }
    if isinstance(groups, IdentityGrouping):
        return {"kind": "identity", "num_features": groups.num_players}
    raise TypeError(f"cannot serialise grouping {type(groups).__name__}")


class Surrogate(pl.LightningModule):
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
        seed: seed of the mask generators.
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["original"])
        self.net = build_surrogate_net(net_spec)
        self.groups = build_grouping(grouping_spec)
        self.num_players = self.groups.num_players
        self.sampler = UniformSampler(self.num_players)
        self.original = original
        if original is not None:
            original.eval().requires_grad_(False)
        self._generator: torch.Generator | None = None

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
        self._generator = torch.Generator(device=self.device).manual_seed(self.hparams.seed)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        x, p, _ = self._unpack(batch)
        k = self.hparams.masks_per_row
        if k > 1:
            x, p = x.repeat_interleave(k, 0), p.repeat_interleave(k, 0)
        loss = self._kl(x, p, self._step_masks(x.shape[0], self._generator))
        self.log("train_kl", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        x, p, y = self._unpack(batch)
        gen = torch.Generator().manual_seed(self.hparams.seed + _VAL_SEED_STRIDE * (batch_idx + 1))
        masks = self.sampler.sample(1, generator=gen, batch_shape=(x.shape[0],)).squeeze(1)
        fmask = self.groups.feature_mask(masks.to(self.device))
        self.log("val_kl", self._kl(x, p, fmask), prog_bar=True)
        full = torch.ones(x.shape[0], self.num_players, dtype=torch.bool, device=self.device)
        pred = self.net(x, self.groups.feature_mask(full)).argmax(-1)
        self.log("val_agreement", (pred == p.argmax(-1)).float().mean())
        if y is not None:
            self.log("val_full_acc", (pred == y).float().mean(), prog_bar=True)
            self.log("val_original_acc", (p.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> Any:  # noqa: D102
        hp = self.hparams
        return adamw_cosine(self.net.parameters(), hp.lr, hp.weight_decay, hp.max_epochs_hint)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the specs and weights (loadable with ``torch.load(weights_only=True)``)."""
        torch.save(
            {
                "net_spec": dict(self.hparams.net_spec),
                "grouping_spec": _grouping_spec(self.groups),
                "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()},
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: str = "cpu") -> Surrogate:
        """Load a surrogate written by :meth:`save` (weights only), in eval mode."""
        blob = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(blob["net_spec"], blob["grouping_spec"])
        model.net.load_state_dict(blob["state_dict"])
        return model.eval()
