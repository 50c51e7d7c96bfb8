"""SimSHAP (Zhang et al.): g(x) trained with plain L2 to unbiased Sim-Semivalue targets."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from simshap.explainers.base import AmortizedExplainer
from simshap.games.estimators import sim_semivalue_target
from simshap.surrogate import Surrogate

__all__ = ["SimSHAP", "residual_target"]


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
    """SimSHAP explainer: loss = MSE(g(x), phi_hat) with phi_hat the Sim-Semivalue target.

    The target is ``simshap.games.estimators.sim_semivalue_target`` on the step's M paired
    Shapley-kernel coalitions (centered by default): the very function the stochastic estimator
    uses, so training and estimation share one formula. No normalization is applied: every target
    is already efficient, so g learns efficient outputs.

    Args:
        net_spec: explainer network spec (``{"kind": "mlp", ...}`` or ``{"kind": "unet", ...}``).
        surrogate: the trained surrogate.
        centered: use v(S) - v(∅) in the target (unbiased, lower variance).
        control_variate: use the network's current output ĝ = g(x) (detached) as a control
            variate: the target becomes ĝ + the Sim-Semivalue target of the residual game
            v(S) - 1_Sᵀĝ. By linearity of the Shapley value it stays unbiased for any ĝ that does
            not depend on the step's coalitions, and its variance shrinks as g approaches the
            Shapley values (the plain target's does not). Off by default (the paper's method).
        **kwargs: see :class:`~simshap.explainers.base.AmortizedExplainer`.
    """

    def __init__(
        self,
        net_spec: dict[str, Any],
        surrogate: Surrogate | None = None,
        centered: bool = True,
        control_variate: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(net_spec, surrogate, **kwargs)  # hparams record `centered` too

    def loss(  # noqa: D102
        self,
        x: torch.Tensor,
        masks: torch.Tensor,
        values: torch.Tensor,
        v_empty: torch.Tensor,
        v_full: torch.Tensor,
    ) -> torch.Tensor:
        pred = self.net(x).float()
        if self.hparams.control_variate:
            return F.mse_loss(pred, residual_target(masks, values, v_empty, v_full, pred.detach(),
                                                    self.hparams.centered))
        target = sim_semivalue_target(masks, values, v_empty, v_full, self.hparams.centered)
        return F.mse_loss(pred, target)
