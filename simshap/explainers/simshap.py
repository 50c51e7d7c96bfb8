"""SimSHAP (Zhang et al.): g(x) trained with plain L2 to unbiased Sim-Semivalue targets."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from simshap.errors import UserError
from simshap.explainers.base import AmortizedExplainer
from simshap.games.estimators import sim_semivalue_target
from simshap.surrogate import Surrogate

__all__ = ["SIMSHAP_TARGETS", "SimSHAP", "residual_target"]

SIMSHAP_TARGETS = ("default", "paper")


def residual_target(
    masks: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    baseline: torch.Tensor,
    centered: bool = True,
) -> torch.Tensor:
    """Sim-Semivalue target with an additive control variate ``baseline`` (ĝ, ``(B, d, C)``).

    phi_hat = ĝ + SimSemivalue(v - u) with u(S) = 1_Sᵀĝ, whose Shapley values are ĝ: unbiased by
    linearity of the Shapley value, and exact (zero variance) when v is additive with values ĝ.
    """
    additive = torch.einsum("bmd,bdc->bmc", masks.to(baseline.dtype), baseline)
    residual = sim_semivalue_target(
        masks, values - additive, v_empty, v_full - baseline.sum(1), centered
    )
    return residual + baseline


class SimSHAP(AmortizedExplainer):
    """SimSHAP explainer: loss = MSE(g(x), phi_hat) with phi_hat an unbiased Shapley target.

    Both targets are built by ``simshap.games.estimators.sim_semivalue_target`` on the step's M
    paired Shapley-kernel coalitions (centered by default), the very function the stochastic
    estimator uses, so training and estimation share one formula. No normalization is applied:
    every target is already efficient, so g learns efficient outputs.

    * ``target="default"`` (variance-reduced): the network's current output ĝ = g(x), detached,
      is a control variate. The target is ĝ + the Sim-Semivalue target of the residual game
      v(S) - 1_Sᵀĝ. By linearity of the Shapley value it is unbiased for any ĝ that does not
      depend on the step's coalitions, and its variance shrinks as g approaches the Shapley
      values (the paper target's does not).
    * ``target="paper"``: Algorithm 1 of Zhang et al. exactly, the plain Sim-Semivalue target.

    Args:
        net_spec: explainer network spec (``{"kind": "mlp", ...}`` or ``{"kind": "unet", ...}``).
        surrogate: the trained surrogate.
        centered: use v(S) - v(∅) in the target (unbiased, lower variance).
        target: ``"default"`` (the control-variate target) or ``"paper"`` (Algorithm 1).
        control_variate: deprecated: ``True`` is ``target="default"``, ``False`` is
            ``target="paper"``.
        **kwargs: see :class:`~simshap.explainers.base.AmortizedExplainer`.
    """

    def __init__(
        self,
        net_spec: dict[str, Any],
        surrogate: Surrogate | None = None,
        centered: bool = True,
        target: str = "default",
        control_variate: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if control_variate is not None:
            warnings.warn("SimSHAP(control_variate=...) is deprecated; pass target='default' "
                          "(control variate) or target='paper'", DeprecationWarning, stacklevel=2)
            target = "default" if control_variate else "paper"
            control_variate = None  # hparams record `target` only
        if target not in SIMSHAP_TARGETS:
            raise UserError(f"SimSHAP target must be one of {SIMSHAP_TARGETS}, got {target!r}")
        super().__init__(net_spec, surrogate, **kwargs)  # hparams record `centered`, `target`

    def loss(  # noqa: D102
        self,
        x: torch.Tensor,
        masks: torch.Tensor,
        values: torch.Tensor,
        v_empty: torch.Tensor,
        v_full: torch.Tensor,
    ) -> torch.Tensor:
        pred = self.net(x).float()
        if self.hparams.get("target", "paper") == "default":
            return F.mse_loss(pred, residual_target(masks, values, v_empty, v_full, pred.detach(),
                                                    self.hparams.centered))
        target = sim_semivalue_target(masks, values, v_empty, v_full, self.hparams.centered)
        return F.mse_loss(pred, target)
