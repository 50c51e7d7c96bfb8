"""Explaining with a trained explainer: raw rows in, efficient :class:`~simshap.ShapleyValues` out.

The inference half of :class:`~simshap.amortized.base.AmortizedExplainer`: one forward pass of
g(x), dummy players set to 0, the additive efficient normalization
φ ← g + (v(N) − v(∅) − Σg) / d over the other players (the orthogonal projection onto the
efficient values, which contain the true Shapley values, so it never moves g away from them),
and optionally a refinement with a budget of game evaluations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simshap.amortized.sources import RowsSource
from simshap.errors import UserError
from simshap.estimators.refine import kernel_shap_with_prior
from simshap.results import ShapleyValues

__all__ = ["Inference", "efficient_normalization"]


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


class Inference:
    """Mixin of the amortized explainers: ``explainer(x)``, ``explain``, the normalization.

    Expects the host to provide ``net``, ``preprocessor``, ``source``, ``model``, ``dummy``
    (and ``has_dummy``, whether any player is one), ``base_value``, ``prior_var`` and
    ``hparams`` (the explainer's constructor sets them up).
    """

    def raw_attributions(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output g(x) ``(B, d, C)``, dummy players set to 0."""
        out = self.net(x).float()
        if self.has_dummy:
            out = out.masked_fill(self.dummy.to(out.device).view(1, -1, 1), 0.0)
        return out

    def sharing_players(self, device: torch.device) -> torch.Tensor | None:
        """The players that share the efficiency gap: all but the dummies (``None``: all)."""
        return ~self.dummy.to(device) if self.has_dummy else None

    def efficient(self, phi: torch.Tensor, v_full: torch.Tensor) -> torch.Tensor:
        """Additive efficient normalization: base + Σφ = v(N), dummies kept at 0.

        The step runs in float64 and returns float64 values: a regressor's predictions of
        order 100 are float32 only to about 1e-5, and the values must add up to 1e-5 or better.
        """
        if phi.device.type == "mps":  # no float64 there: the step runs on the CPU
            phi, v_full = phi.cpu(), v_full.cpu()
        players = self.sharing_players(phi.device)
        total = v_full.to(phi.device).double() - self.base_value.to(phi.device).double()
        return efficient_normalization(phi.double(), total, players)

    def _inputs(self, x: Any) -> tuple[torch.Tensor, Any]:
        """Raw rows -> (network inputs, raw rows for a model's game); images pass through."""
        if self.preprocessor is not None:  # raw rows in, standardized features out
            raw = (
                self.preprocessor.raw_array(x)
                if self.model is not None or isinstance(self.source, RowsSource)
                else None
            )
            return self.preprocessor.transform(x).to(self.device), raw
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        x = x.to(device=self.device, dtype=torch.float32)
        spec = self.net.spec
        if "in_features" in spec:  # a table's network inputs; else images
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
            out = [
                self.raw_attributions(x[i : i + batch_size]) for i in range(0, len(x), batch_size)
            ]
            phi = torch.cat(out)
            v_full = None
            if efficient:
                v_full = torch.cat(
                    [
                        self._require_source().v_full(
                            x[i : i + batch_size], None if raw is None else raw[i : i + batch_size]
                        )
                        for i in range(0, len(x), batch_size)
                    ]
                )
                phi, v_full = self.efficient(phi, v_full), v_full.double()
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
        of :func:`~simshap.estimators.refine.kernel_shap_with_prior`, which spends k game
        evaluations
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
                refined = kernel_shap_with_prior(
                    game, values, self.prior_variances(), budget, generator=generator, loss=loss
                )
            values, n_evals = refined.values.double(), refined.n_evals
            v_full = values.sum(1) + self.base_value.to(values)
            method = f"{method}+kernel_shap@{budget}"
        return self._result(values, v_full, n_evals, method, x, raw)

    def _result(
        self,
        values: torch.Tensor,
        v_full: torch.Tensor | None,
        n_evals: int,
        method: str,
        x: Any,
        raw: Any,
    ) -> ShapleyValues:
        b, d, c = values.shape
        grid = None
        if "in_features" not in self.net.spec:  # images: players on a square grid
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
