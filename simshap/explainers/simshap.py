"""SimSHAP (Zhang et al.): g(x) trained with plain L2 to unbiased Sim-Semivalue targets."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from simshap.explainers.base import AmortizedExplainer
from simshap.games.estimators import sim_semivalue_target
from simshap.surrogate import Surrogate

__all__ = ["SimSHAP"]


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
        **kwargs: see :class:`~simshap.explainers.base.AmortizedExplainer`.
    """

    def __init__(
        self,
        net_spec: dict[str, Any],
        surrogate: Surrogate | None = None,
        centered: bool = True,
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
        target = sim_semivalue_target(masks, values, v_empty, v_full, self.hparams.centered)
        return F.mse_loss(self.net(x).float(), target)
