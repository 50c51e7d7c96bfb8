"""What SimSHAP and FastSHAP share.

An explainer network g(x) -> (B, d, C) trained against a surrogate's masked game, validated on
fixed KernelSHAP targets, with ``explain``, ``explainer(x)`` (a ``ShapleyValues``) and
``to_shap_explanation``. Saving and loading live in :mod:`simshap.io`.
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from simshap.data.preprocessing import Preprocessor
from simshap.errors import UserError
from simshap.explainers.validation import PRIOR_QUANTILES, FixedTargetValidation
from simshap.games.prior import kernel_shap_with_prior
from simshap.games.sampling import ShapleyKernelSampler
from simshap.games.values import MaskedModelGame
from simshap.models.explainer_nets import build_explainer_net
from simshap.shapley_values import ShapleyValues
from simshap.surrogate import Surrogate
from simshap.training import MaskGeneratorState, adamw_cosine

__all__ = ["AmortizedExplainer"]



class AmortizedExplainer(FixedTargetValidation, MaskGeneratorState, pl.LightningModule):
    """Base LightningModule of the amortized explainers.

    Each training step draws ``n_masks`` Shapley-kernel coalitions per input (paired), evaluates
    the frozen surrogate on all ``B * (n_masks + 2)`` masked inputs (with ∅ and N) in one no-grad
    call of the game layer's ``MaskedModelGame``, and hands them to :meth:`loss`.

    Validation: the held-out l2 distance ``||g(x) - phi(x)||_2`` over the d players (mean over
    instances and classes) to fixed targets phi = paired ``kernel_shap`` on the surrogate game
    with ``val_budget`` coalitions, computed once per validation batch and cached.

    Args:
        net_spec: spec of the explainer network (``build_explainer_net``).
        surrogate: the trained surrogate (frozen); may be ``None`` for inference only.
        n_masks: coalitions per input and step (M).
        paired: draw complementary pairs.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        val_budget: KernelSHAP game evaluations per validation instance (∅ and N included)
            for the fixed targets.
        max_epochs_hint: epochs of the cosine learning-rate schedule (0: constant).
        surrogate_batch_size: rows per surrogate call (``None``: all of a step in one call).
        seed: seed of the mask generators.
        input_noise: standard deviation of Gaussian noise added to the standardized training
            inputs at every step, drawn from the step generator; the targets are computed at
            the noisy inputs, so they stay unbiased for them. It trains g on a smoothed input
            distribution (training with noise acts as a smoothness penalty), which helps when
            training rows are few. 0 turns it off. The labels regression, which trains on
            fixed labelled rows, ignores it.
        feature_names: optional names of the players (tabular).
        preprocessor: the fitted raw-row preprocessing (``Preprocessor.to_dict()``); with it,
            every call takes raw rows (arrays in feature order, or DataFrames matched by column
            name) and it is saved with the explainer.
        class_names: optional names of the outputs.
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
    ) -> None:
        super().__init__()
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        if isinstance(input_noise, bool) or not isinstance(input_noise, (int, float)) \
                or not 0.0 <= input_noise < float("inf"):
            raise ValueError(f"input_noise must be a finite number >= 0, got {input_noise!r}")
        self.save_hyperparameters(ignore=["surrogate"])
        self.net = build_explainer_net(net_spec)
        self.preprocessor = Preprocessor.from_dict(preprocessor) if preprocessor else None
        self.surrogate = surrogate
        if surrogate is not None:
            surrogate.eval().requires_grad_(False)
        num_classes = net_spec["num_classes"]
        self.register_buffer("base_value", torch.zeros(num_classes))
        # the explainer's validation mean squared error per player and class (at its best
        # epoch): the prior variance of ``explainer(x, budget=k)``; NaN until validated
        self.register_buffer("prior_var", torch.full((num_classes,), float("nan")))
        # quantiles of the per-instance validation errors at that epoch: the prior's spread
        self.register_buffer("prior_var_quantiles",
                             torch.full((PRIOR_QUANTILES, num_classes), float("nan")))  # fmt: skip
        self.register_buffer("_best_val", torch.tensor(float("inf")))
        self._val_targets: dict[int, torch.Tensor] = {}
        self._val_sq: list[torch.Tensor] = []
        self._val_inst: list[torch.Tensor] = []

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

    def attributions(self, x: torch.Tensor) -> torch.Tensor:
        """The explanation of a batch (subclasses add normalization): ``(B, d, C)``."""
        return self.net(x).float()

    def training_dataset(self, x: torch.Tensor) -> torch.utils.data.Dataset:
        """What :meth:`fit` trains on, from the preprocessed training rows (default: the rows)."""
        return torch.utils.data.TensorDataset(torch.as_tensor(x, dtype=torch.float32))

    # ------------------------------------------------------------------ the game
    def _require_surrogate(self) -> Surrogate:
        if self.surrogate is None:
            raise RuntimeError(
                f"{type(self).__name__} has no surrogate: pass surrogate= to train it (a "
                "loaded explainer keeps its surrogate only if it was saved with one)"
            )
        return self.surrogate

    def game(self, x: torch.Tensor, check_finite: bool = True) -> MaskedModelGame:
        """The surrogate's game v_x(S) = s(x, m_S) (probabilities) on a batch ``x``."""
        surrogate = self._require_surrogate()
        return MaskedModelGame(
            surrogate.masked_probs,
            x,
            groups=surrogate.groups,
            batch_size=self.hparams.surrogate_batch_size or 1 << 62,
            check_finite=check_finite,
        )

    def sample_values(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Coalitions and their surrogate values for one step, in one no-grad game call.

        Returns:
            masks ``(B, M, d)``, values ``(B, M, C)``, v(∅) ``(B, C)``, v(N) ``(B, C)``.
        """
        game = self.game(x, check_finite=False)
        d, b = game.num_players, x.shape[0]
        sampler = ShapleyKernelSampler(d, paired=self.hparams.paired)
        masks = sampler.sample(
            self.hparams.n_masks, generator=self._generator, device=self.device, batch_shape=(b,)
        )
        ends = torch.zeros(b, 2, d, dtype=torch.bool, device=self.device)
        ends[:, 1] = True
        with torch.no_grad():
            v = game(torch.cat([ends, masks], dim=1)).float()
        return masks, v[:, 2:], v[:, 0], v[:, 1]

    # ------------------------------------------------------------------ Lightning
    def on_fit_start(self) -> None:  # noqa: D102
        self._require_surrogate()
        self.init_mask_generator()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        sigma = float(self.hparams.get("input_noise", 0.0))  # older checkpoints lack it
        if sigma > 0:
            noise = torch.randn(x.shape, generator=self._generator, device=x.device)
            x = x + sigma * noise.to(x.dtype)
        masks, values, v0, v1 = self.sample_values(x)
        self.base_value.copy_(v0.mean(0))
        loss = self.loss(x, masks, values, v0, v1)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> Any:  # noqa: D102
        hp = self.hparams
        return adamw_cosine(self.net.parameters(), hp.lr, hp.weight_decay, hp.max_epochs_hint)

    # ------------------------------------------------------------------ public API
    def _check_inputs(self, x: Any) -> torch.Tensor:
        if self.preprocessor is not None:  # raw rows in, standardized features out
            return self.preprocessor.transform(x).to(self.device)
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
        return x

    @torch.no_grad()
    def explain(self, x: Any, batch_size: int = 4096) -> torch.Tensor:
        """Shapley values of every input in one forward pass per chunk.

        Args:
            x: inputs ``(B, F)`` or images ``(B, C, H, W)`` (tensor or array).
            batch_size: inputs per forward pass.

        Returns:
            ``(B, d, C)`` float tensor on the model's device.
        """
        x = self._check_inputs(x)
        was_training = self.training
        self.eval()
        try:
            out = [self.attributions(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out)

    def forward(
        self,
        x: Any,
        batch_size: int = 4096,
        budget: int | None = None,
        generator: torch.Generator | None = None,
        loss: str = "l2",
    ) -> ShapleyValues:
        """Explain raw inputs: ``explainer(x)``, or ``explainer(x, budget=k)`` to refine.

        Without ``budget`` this is one forward pass per chunk. With ``budget=k`` the one-pass
        estimate g(x) is the prior of :func:`~simshap.games.prior.kernel_shap_with_prior`,
        which spends k game evaluations per instance (∅ and N included) on the surrogate's game:
        ``k = 2`` makes g(x) efficient, and ``k = 2^d`` gives the exact Shapley values of the
        surrogate's game. The prior's weight comes from the explainer's validation errors
        (:meth:`prior_variances`).

        Args:
            x: raw rows ``(B, F)`` (arrays in feature order, or a DataFrame matched by column
                name) when the explainer holds its preprocessing; model inputs otherwise (images
                ``(B, C, H, W)``).
            batch_size: inputs per forward pass.
            budget: game evaluations per instance for the refinement (needs the surrogate).
            generator: ``torch.Generator`` for the refinement's coalitions.
            loss: what the refinement minimizes under its posterior: ``"l2"`` (the expected l2
                distance to the Shapley values) or ``"squared"`` (the squared one).

        Returns:
            :class:`~simshap.ShapleyValues` with values ``(B, d, C)``, ``base_values`` v(∅),
            ``n_evals`` (0 for SimSHAP's one pass, 2 for FastSHAP's, whose normalization calls
            the surrogate on ∅ and N; ``budget`` when refined) and the player and class names.
        """
        values = self.explain(x, batch_size)
        n_evals, method = self.inference_evals, type(self).__name__
        if budget is not None:
            if not bool(torch.isfinite(self.prior_var).all()):
                raise UserError(
                    f"{method} has no validation error recorded (trained without validation "
                    "data, or saved by an older release), which explainer(x, budget=k) uses as "
                    "the prior's weight; retrain with validation data"
                )
            game = self.game(self._check_inputs(x))
            with torch.no_grad():
                refined = kernel_shap_with_prior(game, values, self.prior_variances(), budget,
                                                 generator=generator, loss=loss)  # fmt: skip
            values, n_evals = refined.values.float(), refined.n_evals
            method = f"{method}+kernel_shap@{budget}"
        b, d, c = values.shape
        spec = self.net.spec
        grid = None
        if spec["kind"] != "mlp":
            side = int(round(d**0.5))
            grid = (side, d // side)
        names = self.preprocessor.feature_names if self.preprocessor else self.hparams.feature_names
        return ShapleyValues(
            values=values,
            base_values=self.base_value.to(values).expand(b, c).clone(),
            n_evals=n_evals,
            method=method,
            player_names=list(names) if names else None,
            class_names=self.hparams.class_names,
            grid=grid,
        )

    #: game evaluations per instance at inference (FastSHAP's normalization needs v(N), v(∅))
    inference_evals: int = 0

    def to_shap_explanation(
        self,
        x: Any,
        output: int | None = None,
        feature_names: list[str] | None = None,
        data: Any = None,
    ) -> Any:
        """A ``shap.Explanation`` of ``x`` (so ``shap.plots.bar`` / ``beeswarm`` work).

        Args:
            x: inputs ``(B, F)``.
            output: class to keep (values ``(B, d)``); ``None`` keeps all (``(B, d, C)``).
            feature_names: names of the players (default: those given at construction).
            data: feature values to show in the plots (default: ``x``).

        Returns:
            ``shap.Explanation`` with ``base_values`` = v(∅) of the surrogate, so that
            ``base_values + values.sum(players) = v(N)`` in expectation.
        """
        import shap

        phi = self.explain(x).cpu().numpy()
        base = np.broadcast_to(self.base_value.cpu().numpy(), (phi.shape[0], phi.shape[2]))
        if output is not None:
            phi, base = phi[..., output], base[:, output]
        if data is None:
            # raw units (category codes for string columns), so the plots' colours mean something
            data = (self.preprocessor.encode(x) if self.preprocessor is not None
                    else self._check_inputs(x).cpu().numpy())
        names = feature_names or (self.preprocessor.feature_names if self.preprocessor
                                  else self.hparams.feature_names)
        return shap.Explanation(
            values=phi, base_values=np.array(base), data=data, feature_names=names
        )

    def export(self, path: str | os.PathLike[str], format: str = "onnx",  # noqa: A002
               overwrite: bool = False) -> Any:
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

    # ------------------------------------------------------------------ bring your own data
    @classmethod
    def fit(
        cls,
        surrogate: Surrogate,
        x_train: Any,
        x_val: Any,
        hidden: int = 512,
        layers: int = 3,
        n_masks: int = 32,
        batch_size: int = 32,
        lr: float = 1e-3,
        max_epochs: int = 100,
        patience: int = 10,
        val_budget: int = 2048,
        seed: int = 0,
        out_dir: str | os.PathLike[str] | None = None,
        trainer: dict[str, Any] | None = None,
        **options: Any,
    ) -> AmortizedExplainer:
        """Train this explainer on your own raw rows against a trained surrogate.

        Args:
            surrogate: from :meth:`Surrogate.fit` (its preprocessing is reused, so the explainer
                takes the same raw rows).
            x_train: raw training rows (DataFrame, array).
            x_val: raw validation rows (fixed KernelSHAP targets; early stopping).
            hidden: MLP width.
            layers: MLP depth.
            n_masks: coalitions per row and step (paired).
            batch_size: rows per step.
            lr: AdamW learning rate (cosine decay over ``max_epochs``).
            max_epochs: epoch limit.
            patience: early-stopping patience (validation l2).
            val_budget: KernelSHAP evaluations per validation row for the fixed targets.
            seed: seed of the masks, the shuffling and the initialization.
            out_dir: folder for Lightning checkpoints (resumable); default a temporary one.
            trainer: more :func:`~simshap.training.fit_module` options (``accelerator``...).
            **options: options of the explainer class (SimSHAP's ``target`` or
                ``sampling_epochs``, below ``max_epochs``; FastSHAP's ``normalize``...).

        Returns:
            The trained explainer, in eval mode; ``explainer(rows)`` explains raw rows.
        """
        from torch.utils.data import DataLoader, TensorDataset

        from simshap.training import EpochSampler, fit_module

        prep = surrogate.preprocessor
        if prep is None:
            raise UserError("the surrogate has no preprocessing: train it with Surrogate.fit")
        x_tr, x_va = prep.transform(x_train), prep.transform(x_val)
        d, c = prep.num_features, surrogate.hparams.net_spec["num_classes"]
        torch.manual_seed(seed)
        module = cls({"kind": "mlp", "in_features": d, "num_players": d, "num_classes": c,
                      "hidden": hidden, "layers": layers}, surrogate.eval(), n_masks=n_masks,
                     lr=lr, val_budget=val_budget, max_epochs_hint=max_epochs, seed=seed,
                     preprocessor=prep.to_dict(), **options)  # fmt: skip
        train = DataLoader(module.training_dataset(x_tr), batch_size=batch_size,
                           sampler=EpochSampler(len(x_tr), seed))  # fmt: skip
        val = DataLoader(TensorDataset(x_va), batch_size=256)
        fit_module(module, train, val, monitor="val_l2", max_epochs=max_epochs,
                   patience=patience, out_dir=out_dir,
                   **{"progress_bar": False, **(trainer or {})})  # fmt: skip
        return module.eval()
