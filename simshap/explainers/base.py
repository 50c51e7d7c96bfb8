"""What SimSHAP, FastSHAP and the labels regression share.

An explainer network g(x) -> (B, d, C) trained on a game (the surrogate's, or the model's own
marginal game; :mod:`~simshap.explainers.sources`), validated on fixed KernelSHAP targets, and
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

from simshap.data.preprocessing import Preprocessor
from simshap.errors import UserError
from simshap.explainers.sources import GAMES, RowsSource, SurrogateSource
from simshap.explainers.validation import PRIOR_QUANTILES, FixedTargetValidation
from simshap.games.prior import kernel_shap_with_prior
from simshap.games.sampling import ShapleyKernelSampler
from simshap.models.explainer_nets import build_explainer_net
from simshap.shapley_values import ShapleyValues
from simshap.surrogate import Surrogate
from simshap.training import MaskGeneratorState, adamw_cosine

__all__ = ["AmortizedExplainer", "efficient_normalization"]


def efficient_normalization(
    phi: torch.Tensor, total: torch.Tensor, players: torch.Tensor | None = None
) -> torch.Tensor:
    """φ ← φ + (total − Σφ) / d' on the ``players`` (default all), per instance and output.

    Args:
        phi: ``(B, d, C)`` attributions.
        total: ``(B, C)`` v(N) − v(∅).
        players: bool ``(d,)``: the players that share the gap (the others keep their value).

    Returns:
        ``(B, d, C)`` attributions that sum to ``total`` over the players.
    """
    gap = total - phi.sum(1)
    if players is None:
        return phi + gap.unsqueeze(1) / phi.shape[1]
    share = players.to(phi).view(1, -1, 1)
    return phi + share * (gap.unsqueeze(1) / share.sum().clamp_min(1.0))


class AmortizedExplainer(FixedTargetValidation, MaskGeneratorState, pl.LightningModule):
    """Base LightningModule of the amortized explainers.

    Each training step draws ``n_masks`` Shapley-kernel coalitions per input (paired), evaluates
    them in one no-grad call of the game (with v(∅) and v(N)), and hands them to :meth:`loss`.
    Training batches are ``(x, row index)`` (tabular) or ``(x, label)`` (augmented images).

    Args:
        net_spec: spec of the explainer network (``build_explainer_net``).
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
    """

    def __init__(
        self,
        net_spec: dict[str, Any],
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
    ) -> None:
        super().__init__()
        if isinstance(n_masks, bool) or not isinstance(n_masks, int) or n_masks < 1:
            raise UserError(f"n_masks must be an integer >= 1, got {n_masks!r}")
        if isinstance(input_noise, bool) or not isinstance(input_noise, (int, float)) \
                or not 0.0 <= input_noise < float("inf"):
            raise UserError(f"input_noise must be a finite number >= 0, got {input_noise!r}")
        if game not in GAMES:
            raise UserError(f"game must be one of {GAMES}, got {game!r}")
        if game != "surrogate" and (preprocessor is None or background is None):
            raise UserError(f"game={game!r} explains a model of raw rows: it needs the fitted "
                            "preprocessing and the background rows (use simshap.fit)")  # fmt: skip
        self.save_hyperparameters(ignore=["surrogate"])
        self.net = build_explainer_net(net_spec)
        self.preprocessor = Preprocessor.from_dict(preprocessor) if preprocessor else None
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
        self.register_buffer("base_value", torch.zeros(num_classes))
        # the explainer's validation mean squared error per player and class (at its best
        # epoch): the prior variance of ``explainer(x, budget=k)``; NaN until validated
        self.register_buffer("prior_var", torch.full((num_classes,), float("nan")))
        # quantiles of the per-instance validation errors at that epoch: the prior's spread
        self.register_buffer("prior_var_quantiles",
                             torch.full((PRIOR_QUANTILES, num_classes), float("nan")))  # fmt: skip
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
        if spec["kind"] == "mlp":
            return torch.zeros(1, spec["in_features"])
        h, w = self.surrogate.groups.image_size
        return torch.zeros(1, spec["in_channels"], h, w)

    # ------------------------------------------------------------------ the model
    @property
    def game_name(self) -> str:
        """``"surrogate"``, ``"marginal"`` or ``"baseline"``."""
        return self.hparams.get("game", "surrogate")

    def attach_model(self, model: Any) -> AmortizedExplainer:
        """Attach the user's model (a :class:`~simshap.adapter.ModelAdapter`); returns self.

        The marginal and baseline games need it for v(N) = f(x); with the surrogate game it adds
        the model's own output to the answers.
        """
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

    def raw_attributions(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output g(x) ``(B, d, C)``, dummy players set to 0."""
        out = self.net(x).float()
        if bool(self.dummy.any()):
            out = out.masked_fill(self.dummy.to(out.device).view(1, -1, 1), 0.0)
        return out

    def efficient(self, phi: torch.Tensor, v_full: torch.Tensor) -> torch.Tensor:
        """Additive efficient normalization: base + Σφ = v(N), dummies kept at 0."""
        players = ~self.dummy.to(phi.device) if bool(self.dummy.any()) else None
        return efficient_normalization(phi, v_full.to(phi) - self.base_value.to(phi), players)

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
            raise UserError(f"{type(self).__name__} explains the {self.game_name} game, which "
                            "has no surrogate")  # fmt: skip
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
            return masks, values, v0, source.v_full(x, raw)

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

    # ------------------------------------------------------------------ public API
    def _inputs(self, x: Any) -> tuple[torch.Tensor, Any]:
        """Raw rows -> (network inputs, raw rows for a model's game); images pass through."""
        if self.preprocessor is not None:  # raw rows in, standardized features out
            raw = self.preprocessor.raw_array(x) if self.model is not None or \
                isinstance(self.source, RowsSource) else None  # fmt: skip
            return self.preprocessor.transform(x).to(self.device), raw
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        x = x.to(device=self.device, dtype=torch.float32)
        spec = self.net.spec
        if spec["kind"] == "mlp":
            f = spec["in_features"]
            if x.ndim == 1 and x.shape[0] == f:
                x = x[None]
            if x.ndim != 2 or x.shape[1] != f:
                raise UserError(
                    f"expected inputs of shape (B, {f}) ({f} features), got {tuple(x.shape)}; "
                    "pass the same features the explainer was trained on"
                )
        elif x.ndim != 4 or x.shape[1] != spec["in_channels"]:
            raise UserError(
                f"expected images of shape (B, {spec['in_channels']}, H, W), got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise UserError("inputs contain NaN or infinite values; impute or drop them first")
        return x, None

    @torch.no_grad()
    def _explain(
        self, x: Any, batch_size: int, efficient: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, Any]:
        """(values, v(N) or None, network inputs, raw rows) of raw inputs."""
        x, raw = self._inputs(x)
        was_training = self.training
        self.eval()
        try:
            out = [self.raw_attributions(x[i : i + batch_size])
                   for i in range(0, len(x), batch_size)]  # fmt: skip
            phi = torch.cat(out)
            v_full = None
            if efficient:
                v_full = torch.cat([self._require_source().v_full(
                    x[i : i + batch_size], None if raw is None else raw[i : i + batch_size])
                    for i in range(0, len(x), batch_size)])  # fmt: skip
                phi = self.efficient(phi, v_full)
        finally:
            self.train(was_training)
        return phi, v_full, x, raw

    def explain(self, x: Any, batch_size: int = 4096, efficient: bool = True) -> torch.Tensor:
        """Shapley values ``(B, d, C)`` of raw inputs (see :meth:`forward` for the result type)."""
        return self._explain(x, batch_size, efficient)[0]

    def forward(
        self,
        x: Any,
        batch_size: int = 4096,
        budget: int | None = None,
        generator: torch.Generator | None = None,
        loss: str = "l2",
        efficient: bool = True,
    ) -> ShapleyValues:
        """Explain raw inputs: ``explainer(x)``, or ``explainer(x, budget=k)`` to refine.

        Without ``budget`` this is one forward pass per chunk, made efficient with v(N) (one
        game evaluation per instance: the surrogate's s(x, 1), or the model's f(x) for the
        marginal and baseline games). With ``budget=k`` the one-pass estimate g(x) is the prior
        of :func:`~simshap.games.prior.kernel_shap_with_prior`, which spends k game evaluations
        per instance (∅ and N included): ``k = 2^d`` gives the exact Shapley values of the game.

        Args:
            x: raw rows ``(B, F)`` (arrays in feature order, or a DataFrame matched by column
                name) when the explainer holds its preprocessing; model inputs otherwise (images
                ``(B, C, H, W)``).
            batch_size: inputs per forward pass.
            budget: game evaluations per instance for the refinement.
            generator: ``torch.Generator`` for the refinement's coalitions.
            loss: what the refinement minimizes under its posterior: ``"l2"`` or ``"squared"``.
            efficient: make the values add up to v(N) (``False``: the raw network output).

        Returns:
            :class:`~simshap.ShapleyValues`: values ``(B, d, C)``, ``base_values`` v(∅),
            ``prediction`` (what base + Σφ adds up to), ``n_evals``, names, the raw rows as
            ``data`` (shap's plots colour by it), and ``extras`` saying which game and which
            quantity are explained (and the model's own output when it is attached).
        """
        values, v_full, x_net, raw = self._explain(x, batch_size, efficient)
        n_evals, method = (1 if efficient else 0), type(self).__name__
        if budget is not None:
            if not bool(torch.isfinite(self.prior_var).all()):
                raise UserError(
                    f"{method} has no validation error recorded (trained without validation "
                    "data, or saved by an older release), which explainer(x, budget=k) uses as "
                    "the prior's weight; retrain with validation data"
                )
            game = self.game(x_net, raw)
            with torch.no_grad():
                refined = kernel_shap_with_prior(game, values, self.prior_variances(), budget,
                                                 generator=generator, loss=loss)  # fmt: skip
            values, n_evals = refined.values.float(), refined.n_evals
            v_full = values.sum(1) + self.base_value.to(values)
            method = f"{method}+kernel_shap@{budget}"
        return self._result(values, v_full, n_evals, method, x, raw)

    def _result(self, values: torch.Tensor, v_full: torch.Tensor | None, n_evals: int,
                method: str, x: Any, raw: Any) -> ShapleyValues:  # fmt: skip
        b, d, c = values.shape
        grid = None
        if self.net.spec["kind"] != "mlp":
            side = int(round(d**0.5))
            grid = (side, d // side)
        names = self.preprocessor.feature_names if self.preprocessor else self.hparams.feature_names
        info = dict(self.hparams.get("model_info") or {})
        extras: dict[str, Any] = {"game": self.game_name, **info}
        if self.model is not None and raw is not None and self.game_name == "surrogate":
            extras["model_output"] = torch.from_numpy(self.model.on_array(raw)).float()
        data = None
        if self.preprocessor is not None:
            data = x if raw is None else raw
        return ShapleyValues(
            values=values,
            base_values=self.base_value.to(values).expand(b, c).clone(),
            n_evals=n_evals,
            method=method,
            player_names=list(names) if names else None,
            class_names=self.hparams.class_names,
            grid=grid,
            prediction=v_full,
            data=data,
            extras=extras,
        )

    def export(self, path: Any, format: str = "onnx", overwrite: bool = False) -> Any:  # noqa: A002
        """Export as one ONNX or TorchScript graph: raw rows in, values out (:mod:`simshap.export`).

        Args:
            path: the file to write.
            format: ``"onnx"`` or ``"torchscript"``.
            overwrite: replace an existing file.

        Returns:
            The path written.
        """
        from simshap.export import export_explainer  # the layer above; imported when used

        return export_explainer(self, path, format, overwrite)
