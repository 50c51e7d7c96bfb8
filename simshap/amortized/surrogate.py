"""The surrogate s(x, m) ≈ f: a model of masked inputs trained to match the original model.

Training (Covert et al., FastSHAP): for every row a fresh uniform random coalition m (size
uniform on 0..d, then a uniform subset) is drawn each step, and the surrogate on ``[x * m, m]``
is fitted to the original model's output on the full ``x``: a classifier's probabilities with
the KL divergence KL(f(x) || s(x, m)), a regressor's prediction with the squared error (on the
standardized prediction). Validation uses fixed masks, so the validation loss is comparable
across epochs and drives early stopping and the best checkpoint.

The game value :meth:`Surrogate.value` is the explained quantity: class probabilities (or their
log-odds with ``link="logit"``) or the prediction. Dummy players (columns constant in the
training rows) are always present in the surrogate's input, so its game does not depend on them
and their Shapley values are 0.

The surrogate imports the game layer's sampler and player groupings (the same masks the games
use); it never imports games, estimators or explainers.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from simshap.amortized.training import MaskGeneratorState, adamw_cosine
from simshap.data.preprocessing import Preprocessor
from simshap.errors import UserError
from simshap.games.sampling import UniformSampler
from simshap.models.mlp import MLP, MaskedInput
from simshap.models.resnet import cifar_resnet18
from simshap.models.user_image import ImputedInput, MaskChannelInput, load_image_model
from simshap.players import Players

__all__ = [
    "Surrogate",
    "build_grouping",
    "build_surrogate_net",
    "dummy_columns",
    "log_odds",
    "players_spec",
    "surrogate_spec",
]

_VAL_SEED_STRIDE = 1_000_003


def build_surrogate_net(spec: dict[str, Any]) -> nn.Module:
    """Build the masked-input network from a spec.

    ``{"kind": "mlp", "in_features", "num_classes", "hidden", "layers"}`` (ELU MLP on
    ``[x*m, m]``) or ``{"kind": "resnet18", "in_channels", "num_classes", "width"}`` (the CIFAR
    ResNet-18 with ``in_channels + 1`` input channels) or ``{"kind": "user", "model",
    "in_channels", "num_classes", "mask_channel"}`` (the user's image classifier on ``x * m``,
    and with ``mask_channel`` the mask as one more input channel).
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
    if kind == "user":  # a copy of the user's image classifier on x * m (and m)
        user = load_image_model(spec["model"])
        return MaskChannelInput(user) if spec.get("mask_channel") else ImputedInput(user)
    raise ValueError(f"unknown surrogate kind {kind!r}; expected 'mlp', 'resnet18' or 'user'")


def build_grouping(spec: dict[str, Any]) -> Players:
    """Players from a spec (``Players.to_dict()``: identity, groups or superpixels).

    Older surrogate files wrote the same ``{"kind": "identity", "num_features"}`` and
    ``{"kind": "superpixels", "image_size", "superpixel_size"}`` forms, so they still load.
    """
    return Players.from_dict(spec)


def _grouping_spec(groups: Players) -> dict[str, Any]:
    return groups.to_dict()


class Surrogate(MaskGeneratorState, pl.LightningModule):
    """LightningModule training s(x, m) under uniform random masks.

    Batches are ``(x, t, y)`` (``t``: the original model's output, precomputed: probabilities
    for a classifier, predictions for a regressor) or ``(x, y)`` together with ``original`` (an
    ``nn.Module`` whose softmax gives ``t`` on the fly, e.g. under image augmentation).

    Args:
        net_spec: spec for :func:`build_surrogate_net`.
        grouping_spec: spec for :func:`build_grouping` (players -> input features).
        original: optional original classifier (logits), frozen, for ``(x, y)`` batches.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        masks_per_row: masks drawn per row and step (the row is repeated).
        max_epochs_hint: epochs for the cosine schedule (0: constant learning rate).
        seed: seed of the mask generators (per DDP rank: seed + a rank offset; the training
            generator's state is kept in Lightning checkpoints).
        preprocessor: fitted raw-row preprocessing (``Preprocessor.to_dict()``), kept with the
            surrogate so explainers trained on it take raw rows.
        task: ``"classification"`` (softmax, KL) or ``"regression"`` (squared error).
        link: ``"identity"`` or ``"logit"`` (a classifier's log-odds are the game's value).
        target_mean: regression: the mean of the model's predictions per output (the network
            learns the standardized prediction).
        target_std: regression: their standard deviation per output.
        always_present: input columns that are always unmasked (the dummy players' columns).
        fidelity: agreement with the original model on held-out rows (:func:`fidelity`).
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
        task: str = "classification",
        link: str = "identity",
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        always_present: list[int] | None = None,
        fidelity: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise UserError(f"task must be 'classification' or 'regression', got {task!r}")
        self.save_hyperparameters(ignore=["original"])
        self.preprocessor = Preprocessor.from_dict(preprocessor) if preprocessor else None
        self.net = build_surrogate_net(net_spec)
        self.groups = build_grouping(grouping_spec)
        self.num_players = self.groups.num_players
        self.sampler = UniformSampler(self.num_players)
        self.original = original
        if original is not None:
            original.eval().requires_grad_(False)
        c = net_spec["num_classes"]
        self.register_buffer("target_mean", torch.tensor(target_mean or [0.0] * c).float())
        self.register_buffer("target_std", torch.tensor(target_std or [1.0] * c).float())
        present = torch.zeros(self.groups.num_features, dtype=torch.bool)
        if always_present and self.groups.owner.ndim == 1:
            present[torch.as_tensor(always_present, dtype=torch.long)] = True
        self.register_buffer("always_present", present, persistent=False)

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return self.hparams.get("task", "classification")

    # ------------------------------------------------------------------ model of (x, m)
    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits (or standardized predictions) ``(N, C)`` of ``x`` under feature masks ``mask``."""
        if bool(self.always_present.any()) and mask.ndim == 2:
            mask = mask | self.always_present.to(mask.device)
        return self.net(x, mask)

    @torch.no_grad()
    def value(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The game's value ``(N, C)``: probabilities (or log-odds) or the prediction."""
        out = self(x, mask).float()
        if self.task == "regression":
            return out * self.target_std.to(out) + self.target_mean.to(out)
        if self.hparams.get("link", "identity") == "logit":
            return log_odds(out)
        return torch.softmax(out, dim=-1)

    # ------------------------------------------------------------------ training
    def _unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        if len(batch) == 3:
            x, t, y = batch
            return x, t, y
        x, y = batch
        if self.original is None:
            raise ValueError(
                "batches of (x, y) need the original model: pass original= to Surrogate, or "
                "feed (x, t, y) batches with the original model's outputs t"
            )
        with torch.no_grad():
            t = torch.softmax(self.original(x).float(), dim=-1)
        return x, t, y

    def _step_masks(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        masks = self.sampler.sample(
            1, generator=generator, device=self.device, batch_shape=(n,)
        ).squeeze(1)
        return self.groups.feature_mask(masks)

    def _loss(self, x: torch.Tensor, t: torch.Tensor, fmask: torch.Tensor) -> torch.Tensor:
        out = self(x, fmask).float()
        if self.task == "regression":
            z = (t.float() - self.target_mean.to(out)) / self.target_std.to(out)
            return F.mse_loss(out, z)
        return F.kl_div(torch.log_softmax(out, dim=-1), t.float(), reduction="batchmean")

    def on_fit_start(self) -> None:  # noqa: D102
        self.init_mask_generator()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        x, t, _ = self._unpack(batch)
        k = self.hparams.masks_per_row
        if k > 1:
            x, t = x.repeat_interleave(k, 0), t.repeat_interleave(k, 0)
        loss = self._loss(x, t, self._step_masks(x.shape[0], self._generator))
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_loss(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Loss of validation batch ``batch_idx`` under its fixed masks (seeded by the index)."""
        x, t, _ = self._unpack(batch)
        gen = torch.Generator().manual_seed(self.hparams.seed + _VAL_SEED_STRIDE * (batch_idx + 1))
        masks = self.sampler.sample(1, generator=gen, batch_shape=(x.shape[0],)).squeeze(1)
        return self._loss(x, t, self.groups.feature_mask(masks.to(self.device)))

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        # sync_dist: under DDP every rank sees a shard; the logged value is the all-reduced mean
        x, t, y = self._unpack(batch)
        loss = self.validation_loss(batch, batch_idx)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        if self.task == "regression":
            return
        self.log("val_kl", loss, sync_dist=True)
        full = torch.ones(x.shape[0], self.num_players, dtype=torch.bool, device=self.device)
        pred = self(x, self.groups.feature_mask(full)).argmax(-1)
        self.log("val_agreement", (pred == t.argmax(-1)).float().mean(), sync_dist=True)
        if y is not None:
            self.log("val_full_acc", (pred == y).float().mean(), prog_bar=True, sync_dist=True)
            self.log("val_original_acc", (t.argmax(-1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self) -> Any:  # noqa: D102
        hp = self.hparams
        return adamw_cosine(self.net.parameters(), hp.lr, hp.weight_decay, hp.max_epochs_hint)


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """Each class's log-odds log(p_c / (1 - p_c)) of softmax logits, without rounding p.

    log p_c - log(1 - p_c) = z_c - logsumexp_{j != c} z_j: exact where p_c rounds to 1.
    """
    c = logits.shape[-1]
    others = logits.unsqueeze(-2).expand(*logits.shape[:-1], c, c)
    eye = torch.eye(c, dtype=torch.bool, device=logits.device)
    rest = torch.logsumexp(others.masked_fill(eye, float("-inf")), dim=-1)
    return logits - rest


def surrogate_spec(prep: Preprocessor, outputs: int, hidden: int, layers: int) -> dict[str, Any]:
    """The MLP surrogate's spec for a preprocessing's network inputs."""
    return {
        "kind": "mlp",
        "in_features": prep.num_inputs,
        "num_classes": outputs,
        "hidden": hidden,
        "layers": layers,
    }


def players_spec(prep: Preprocessor) -> dict[str, Any]:
    """Players of a table: one per column, each owning its missing indicator too."""
    owner = prep.owner()
    if owner == list(range(prep.num_features)):
        return Players.identity(prep.num_features).to_dict()
    return Players(owner).to_dict()


def dummy_columns(prep: Preprocessor) -> list[int]:
    """Network-input columns of the dummy players (constant in training), always present."""
    dummy = prep.dummy_mask().tolist()
    return [j for j, player in enumerate(prep.owner()) if dummy[player]]
