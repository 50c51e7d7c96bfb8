"""What SimSHAP and FastSHAP share.

An explainer network g(x) -> (B, d, C) trained against a surrogate's masked game, validated on
fixed KernelSHAP targets, with ``explain``, ``save``, :func:`load_explainer` and
``to_shap_explanation``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from simshap.games.estimators import kernel_shap
from simshap.games.sampling import ShapleyKernelSampler
from simshap.games.values import MaskedModelGame
from simshap.models.explainer_nets import build_explainer_net
from simshap.surrogate import Surrogate
from simshap.training import adamw_cosine

__all__ = ["AmortizedExplainer", "load_explainer", "FORMAT"]

FORMAT = "simshap-explainer-v1"
_VAL_SEED_STRIDE = 1_000_003


class AmortizedExplainer(pl.LightningModule):
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
        val_budget: KernelSHAP coalitions per validation instance for the fixed targets.
        max_epochs_hint: epochs of the cosine learning-rate schedule (0: constant).
        surrogate_batch_size: rows per surrogate call (``None``: all of a step in one call).
        seed: seed of the mask generators.
        feature_names: optional names of the players (tabular).
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
    ) -> None:
        super().__init__()
        if n_masks < 1:
            raise ValueError(f"n_masks must be >= 1, got {n_masks}")
        self.save_hyperparameters(ignore=["surrogate"])
        self.net = build_explainer_net(net_spec)
        self.surrogate = surrogate
        if surrogate is not None:
            surrogate.eval().requires_grad_(False)
        num_classes = net_spec["num_classes"]
        self.register_buffer("base_value", torch.zeros(num_classes))
        self._generator: torch.Generator | None = None
        self._val_targets: dict[int, torch.Tensor] = {}

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
        self._generator = torch.Generator(device=self.device).manual_seed(self.hparams.seed)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        masks, values, v0, v1 = self.sample_values(x)
        self.base_value.copy_(v0.mean(0))
        loss = self.loss(x, masks, values, v0, v1)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def validation_targets(self, x: torch.Tensor, batch_idx: int) -> torch.Tensor:
        """Fixed KernelSHAP targets of validation batch ``batch_idx`` (computed once)."""
        if batch_idx not in self._val_targets:
            gen = torch.Generator().manual_seed(
                self.hparams.seed + _VAL_SEED_STRIDE * (batch_idx + 1)
            )
            with torch.autocast(self.device.type, enabled=False):
                est = kernel_shap(
                    self.game(x.float()), n_samples=self.hparams.val_budget, paired=True,
                    generator=gen,
                )
            self._val_targets[batch_idx] = est.values.float()
        return self._val_targets[batch_idx]

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        target = self.validation_targets(x, batch_idx)
        pred = self.attributions(x)
        self.log("val_l2", (pred - target).norm(dim=1).mean(), prog_bar=True)

    def configure_optimizers(self) -> Any:  # noqa: D102
        hp = self.hparams
        return adamw_cosine(self.net.parameters(), hp.lr, hp.weight_decay, hp.max_epochs_hint)

    # ------------------------------------------------------------------ public API
    def _check_inputs(self, x: Any) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        x = x.to(device=self.device, dtype=torch.float32)
        spec = self.net.spec
        if spec["kind"] == "mlp":
            f = spec["in_features"]
            if x.ndim == 1 and x.shape[0] == f:
                x = x[None]
            if x.ndim != 2 or x.shape[1] != f:
                raise ValueError(
                    f"expected inputs of shape (B, {f}) ({f} features), got {tuple(x.shape)}; "
                    "pass the same (standardized) features the explainer was trained on"
                )
        elif x.ndim != 4 or x.shape[1] != spec["in_channels"]:
            raise ValueError(
                f"expected images of shape (B, {spec['in_channels']}, H, W), got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError("inputs contain NaN or infinite values; impute or drop them first")
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
            data = self._check_inputs(x).cpu().numpy()
        names = feature_names or self.hparams.feature_names
        return shap.Explanation(
            values=phi, base_values=np.array(base), data=data, feature_names=names
        )

    def save(self, path: str | os.PathLike[str], overwrite: bool = False,
             include_surrogate: bool = True) -> None:
        """Save weights and specs (loadable with ``torch.load(weights_only=True)``).

        Args:
            path: file to write.
            overwrite: replace an existing file (otherwise ``FileExistsError``).
            include_surrogate: also store the surrogate (FastSHAP's normalization needs it).
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        hparams = {
            k: v for k, v in dict(self.hparams).items() if k not in ("net_spec",)
        }
        blob: dict[str, Any] = {
            "format": FORMAT,
            "class": type(self).__name__,
            "net_spec": dict(self.net.spec),
            "hparams": hparams,
            "state_dict": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "base_value": self.base_value.cpu(),
            "surrogate": None,
        }
        if include_surrogate and self.surrogate is not None:
            s = self.surrogate
            blob["surrogate"] = {
                "net_spec": dict(s.hparams.net_spec),
                "grouping_spec": dict(s.hparams.grouping_spec),
                "state_dict": {k: v.cpu() for k, v in s.net.state_dict().items()},
            }
        torch.save(blob, path)


def load_explainer(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> AmortizedExplainer:
    """Load an explainer written by ``save`` (weights-only ``torch.load``), in eval mode.

    Args:
        path: file written by :meth:`AmortizedExplainer.save`.
        map_location: device to load onto.

    Returns:
        A :class:`~simshap.explainers.SimSHAP` or :class:`~simshap.explainers.FastSHAP`.
    """
    from simshap.explainers.fastshap import FastSHAP
    from simshap.explainers.simshap import SimSHAP

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no explainer file at {path}")
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a simshap explainer file (format {FORMAT})")
    classes = {"SimSHAP": SimSHAP, "FastSHAP": FastSHAP}
    cls = classes[blob["class"]]
    surrogate = None
    if blob["surrogate"] is not None:
        s = blob["surrogate"]
        surrogate = Surrogate(s["net_spec"], s["grouping_spec"])
        surrogate.net.load_state_dict(s["state_dict"])
    model = cls(blob["net_spec"], surrogate=surrogate, **blob["hparams"])
    model.net.load_state_dict(blob["state_dict"])
    model.base_value.copy_(blob["base_value"])
    return model.to(map_location).eval()
