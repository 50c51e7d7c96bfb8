"""What SimSHAP, FastSHAP and the labels regression share.

An explainer network g(x) -> (B, d, C) trained on a game (the surrogate's, or the model's own
marginal game; :mod:`~simshap.amortized.sources`), validated on fixed KernelSHAP targets, and
called as ``explainer(x)`` -> :class:`~simshap.ShapleyValues`. Its output is **efficient** by
default: base + Σφ equals the explained value v(N) (the surrogate's s(x, 1), or the model's f(x)
for the marginal and baseline games) to float precision, by the additive efficient
normalization φ ← g + (v(N) − v(∅) − Σg) / d over the players that are not dummies. The
normalization is the orthogonal projection onto the efficient values, which contain the true
Shapley values, so it never moves g away from them. Dummy players (features constant in the
training rows) get exactly 0.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn

from simshap.amortized.attach import adapter_for
from simshap.amortized.inference import Inference, efficient_normalization
from simshap.amortized.sources import GAMES, RowsSource, SurrogateSource
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.training import MaskGeneratorState, adamw_cosine
from simshap.amortized.validation import PRIOR_QUANTILES, FixedTargetValidation
from simshap.data.preprocessing import Preprocessor
from simshap.errors import UserError
from simshap.games.sampling import ShapleyKernelSampler
from simshap.models.explainer_nets import UserExplainerNet, build_explainer_net

__all__ = ["AmortizedExplainer", "efficient_normalization"]


class AmortizedExplainer(Inference, FixedTargetValidation, MaskGeneratorState, pl.LightningModule):
    """Base LightningModule of the amortized explainers.

    Each training step draws ``n_masks`` Shapley-kernel coalitions per input (paired), evaluates
    them in one no-grad call of the game (with v(∅) and v(N)), and hands them to :meth:`loss`.
    Training batches are ``(x, row index)`` (tabular) or ``(x, label)`` (augmented images).

    Args:
        net_spec: spec of the explainer network (``build_explainer_net``); with ``net``, its
            shape only (optional with a surrogate, which gives it).
        surrogate: the trained surrogate (frozen; ``game="surrogate"``); ``None`` for the
            marginal and baseline games, or for inference only.
        n_masks: coalitions per input and step (M).
        paired: draw complementary pairs.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        val_budget: KernelSHAP game evaluations per validation instance for the fixed targets.
        max_epochs_hint: epochs of the cosine learning-rate schedule (0: constant).
        surrogate_batch_size: rows per surrogate call (``None``: all of a step in one call).
        seed: seed of the mask generators.
        feature_names: optional names of the players (tabular).
        preprocessor: the fitted raw-row preprocessing (``Preprocessor.to_dict()``); with it,
            every call takes raw rows and it is saved with the explainer.
        class_names: optional names of the outputs.
        input_noise: standard deviation of Gaussian noise added to the standardized training
            inputs at every step (0: off). With the surrogate game the targets are computed at
            the noisy inputs; with a model's game the noise only smooths g.
        game: ``"surrogate"``, ``"marginal"`` or ``"baseline"``.
        model_info: what is explained (``ModelAdapter.describe()``) and the surrogate's
            fidelity, kept in saved files, exports and ``/metadata``.
        background: raw background rows (marginal: K rows; baseline: 1 row), kept in the file.
        net: your own explainer network instead of the spec's, e.g.
            ``SimSHAP(net=my_module, surrogate=s)``: a module from the network inputs to
            ``(B, d, C)`` or ``(B, d * C)`` values (:class:`UserExplainerNet`).
    """

    def __init__(
        self,
        net_spec: dict[str, Any] | None = None,
        surrogate: Surrogate | None = None,
        n_masks: int = 32,
        paired: bool = True,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        val_budget: int = 2048,
        max_epochs_hint: int = 0,
        surrogate_batch_size: int | None = None,
        seed: int = 0,
        feature_names: list[str] | None = None,
        preprocessor: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        input_noise: float = 0.0,
        game: str = "surrogate",
        model_info: dict[str, Any] | None = None,
        background: list[list[Any]] | None = None,
        net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if isinstance(n_masks, bool) or not isinstance(n_masks, int) or n_masks < 1:
            raise UserError(f"n_masks must be an integer >= 1, got {n_masks!r}")
        if (
            isinstance(input_noise, bool)
            or not isinstance(input_noise, (int, float))
            or not 0.0 <= input_noise < float("inf")
        ):
            raise UserError(f"input_noise must be a finite number >= 0, got {input_noise!r}")
        if game not in GAMES:
            raise UserError(f"game must be one of {GAMES}, got {game!r}")
        if game != "surrogate" and (preprocessor is None or background is None):
            raise UserError(
                f"game={game!r} explains a model of raw rows: it needs the fitted "
                "preprocessing and the background rows (use simshap.fit)"
            )
        self.save_hyperparameters(ignore=["surrogate", "net"])
        self.preprocessor = Preprocessor.from_dict(preprocessor) if preprocessor else None
        if net is not None:
            net_spec = user_net_spec(net_spec, surrogate)
            self.net = UserExplainerNet(net, net_spec)
        elif net_spec is None:
            raise UserError("pass the explainer network: net=your_module, or a net_spec dict")
        else:
            try:
                self.net = build_explainer_net(net_spec)
            except ValueError as err:
                raise UserError(str(err)) from None
        self.hparams["net_spec"] = dict(self.net.spec)
        net_spec = self.net.spec
        self.surrogate = surrogate
        if surrogate is not None:
            surrogate.eval().requires_grad_(False)
        self.model: Any = None  # the user's model (ModelAdapter), attached, never saved
        self.source: SurrogateSource | RowsSource | None = None
        if game == "surrogate":
            self.source = SurrogateSource(surrogate, surrogate_batch_size) if surrogate else None
        else:
            rows = np.array(background, dtype=object if self.preprocessor.categories else None)
            self.source = RowsSource(None, rows, name=game)
        num_classes = net_spec["num_classes"]
        d = net_spec.get("num_players")
        dummy = self.preprocessor.dummy_mask() if self.preprocessor else None
        if d is None or dummy is None or dummy.numel() != d:
            dummy = torch.zeros(d or 0, dtype=torch.bool)
        self.register_buffer("dummy", dummy, persistent=False)
        # fixed at construction: known without reading the buffer (a device sync per step)
        self.has_dummy = bool(dummy.any())
        self.register_buffer("base_value", torch.zeros(num_classes))
        # the explainer's validation mean squared error per player and class (at its best
        # epoch): the prior variance of ``explainer(x, budget=k)``; NaN until validated
        self.register_buffer("prior_var", torch.full((num_classes,), float("nan")))
        # quantiles of the per-instance validation errors at that epoch: the prior's spread
        self.register_buffer(
            "prior_var_quantiles", torch.full((PRIOR_QUANTILES, num_classes), float("nan"))
        )
        self.register_buffer("_best_val", torch.tensor(float("inf")))
        if isinstance(self.source, SurrogateSource):  # v(∅) = s(0, 0): known without data
            self.base_value.copy_(self.source.v_empty(self._probe()).to(self.base_value))
        self._val_targets: dict[int, torch.Tensor] = {}
        self._val_full: dict[int, torch.Tensor] = {}
        self._val_sq: list[torch.Tensor] = []
        self._val_inst: list[torch.Tensor] = []

    def _probe(self) -> torch.Tensor:
        """One all-zero input of the network's shape (for v(∅), which does not depend on x)."""
        spec = self.net.spec
        if "in_features" in spec:  # a table's network inputs; else images
            return torch.zeros(1, spec["in_features"])
        h, w = self.surrogate.groups.image_size
        return torch.zeros(1, spec["in_channels"], h, w)

    # ------------------------------------------------------------------ the model
    @property
    def game_name(self) -> str:
        """``"surrogate"``, ``"marginal"`` or ``"baseline"``."""
        return self.hparams.get("game", "surrogate")

    def attach_model(self, model: Any) -> AmortizedExplainer:
        """Attach the model it explains; returns self.

        The marginal and baseline games need it for v(N) = f(x); with the surrogate game it adds
        the model's own output to the answers.

        Args:
            model: your model, as given when the explainer was trained (it is wrapped as it was
                then, as ``simshap.load(path, model=...)`` does), or a
                :class:`~simshap.models.adapter.ModelAdapter`.
        """
        model = adapter_for(self, model)
        self.model = model
        if isinstance(self.source, RowsSource):
            self.source.model = model
        return self

    # ------------------------------------------------------------------ subclass hooks
    def loss(
        self,
        x: torch.Tensor,
        masks: torch.Tensor,
        values: torch.Tensor,
        v_empty: torch.Tensor,
        v_full: torch.Tensor,
    ) -> torch.Tensor:
        """Training loss from coalitions ``(B, M, d)``, values ``(B, M, C)``, v(∅), v(N)."""
        raise NotImplementedError

    def training_dataset(self, x: torch.Tensor) -> torch.utils.data.Dataset:
        """What training iterates over: the preprocessed rows and their row indices."""
        x = torch.as_tensor(x, dtype=torch.float32)
        return torch.utils.data.TensorDataset(x, torch.arange(len(x)))

    # ------------------------------------------------------------------ the game
    def _require_source(self) -> SurrogateSource | RowsSource:
        if self.source is None:
            raise UserError(
                f"{type(self).__name__} has no surrogate: pass surrogate= to train it (a "
                "loaded explainer keeps its surrogate only if it was saved with one)"
            )
        return self.source

    def _require_surrogate(self) -> Surrogate:
        if self.surrogate is None:
            self._require_source()
            raise UserError(
                f"{type(self).__name__} explains the {self.game_name} game, which has no surrogate"
            )
        return self.surrogate

    def game(self, x: torch.Tensor, raw: Any = None, check_finite: bool = True) -> Any:
        """The game of a batch: network inputs ``x`` and, for a model's game, its raw rows."""
        return self._require_source().game(x, raw, check_finite)

    def _raw_ref(self, batch: Any, table: str) -> Any:
        """How a batch names its raw rows for a model's game (``(table, indices)``)."""
        if isinstance(self.source, RowsSource):
            return (table, batch[1])
        return None

    def sample_values(
        self, x: torch.Tensor, raw: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coalitions and their values for one step, in one no-grad game call.

        Returns:
            masks ``(B, M, d)``, values ``(B, M, C)``, v(∅) ``(B, C)``, v(N) ``(B, C)``.
        """
        source = self._require_source()
        d, b = self.net.spec.get("num_players") or self.surrogate.num_players, x.shape[0]
        sampler = ShapleyKernelSampler(d, paired=self.hparams.paired)
        masks = sampler.sample(
            self.hparams.n_masks, generator=self._generator, device=self.device, batch_shape=(b,)
        )
        ends = torch.zeros(b, 2, d, dtype=torch.bool, device=self.device)
        ends[:, 1] = True
        with torch.no_grad():
            if isinstance(source, SurrogateSource):
                v = source.draw(x, raw, torch.cat([ends, masks], dim=1), self._generator)
                return masks, v[:, 2:], v[:, 0], v[:, 1]
            values = source.draw(x, raw, masks, self._generator)
            v0 = source.v_empty(x).expand(b, -1)
            return masks, values, v0, source.v_full(x, raw).to(values.dtype)

    # ------------------------------------------------------------------ Lightning
    def on_fit_start(self) -> None:  # noqa: D102
        source = self._require_source()
        self.init_mask_generator()
        if isinstance(source, RowsSource):  # the surrogate's v(∅) was set when it was given
            self.base_value.copy_(source.v_empty().to(self.base_value))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        raw = self._raw_ref(batch, "train")
        sigma = float(self.hparams.get("input_noise", 0.0))  # older checkpoints lack it
        if sigma > 0:
            noise = torch.randn(x.shape, generator=self._generator, device=x.device)
            x = x + sigma * noise.to(x.dtype)
        masks, values, v0, v1 = self.sample_values(x, raw)
        loss = self.loss(x, masks, values, v0, v1)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> Any:  # noqa: D102
        hp = self.hparams
        return adamw_cosine(self.net.parameters(), hp.lr, hp.weight_decay, hp.max_epochs_hint)


def user_net_spec(spec: dict[str, Any] | None, surrogate: Surrogate | None) -> dict[str, Any]:
    """The shape of a user's explainer network: from ``spec``, else from the surrogate."""
    if spec is not None:
        keys = {"num_players", "num_classes"}
        if not keys <= set(spec) or not {"in_features", "in_channels"} & set(spec):
            raise UserError(
                "net_spec for your own net needs num_players, num_classes and in_features "
                f"(tables) or in_channels (images); got {sorted(spec)}"
            )
        return {k: v for k, v in spec.items() if k not in ("kind", "module")}
    if surrogate is None:
        raise UserError(
            "with your own net and no surrogate, say its shape: net_spec={'num_players': d, "
            "'num_classes': C, 'in_features': F}"
        )
    s_spec = dict(surrogate.hparams["net_spec"])
    out = {"num_players": surrogate.num_players, "num_classes": s_spec["num_classes"]}
    if "in_features" in s_spec:
        out["in_features"] = s_spec["in_features"]
    else:
        out["in_channels"] = s_spec.get("in_channels", 3)
    return out
