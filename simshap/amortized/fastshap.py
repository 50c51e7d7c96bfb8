"""FastSHAP (Jethani et al., 2021): g(x) trained on the weighted least-squares objective."""

from __future__ import annotations

from typing import Any

import torch

from simshap.amortized.base import AmortizedExplainer, efficient_normalization
from simshap.amortized.surrogate import Surrogate

__all__ = ["FastSHAP"]


class FastSHAP(AmortizedExplainer):
    """FastSHAP explainer.

    Loss, with S drawn from the Shapley kernel (paired): mean of
    ``(v(S) - v(∅) - 1_Sᵀ g(x))²`` over coalitions and classes, where g is additively
    normalized to be efficient (``normalize=True``); ``efficiency_lambda`` adds FastSHAP's
    penalty ``λ (1ᵀ g_raw - (v(N) - v(∅)))²`` on the raw outputs (used for images). At
    inference the normalization needs v(N) and v(∅), i.e. two surrogate calls per input.

    Args:
        net_spec: explainer network spec.
        surrogate: the trained surrogate.
        normalize: additive efficient normalization.
        efficiency_lambda: weight of the efficiency penalty (0: off).
        **kwargs: see :class:`~simshap.amortized.base.AmortizedExplainer`.
    """

    def __init__(
        self,
        net_spec: dict[str, Any] | None = None,
        surrogate: Surrogate | None = None,
        normalize: bool = True,
        efficiency_lambda: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # Lightning's save_hyperparameters (in the base) records normalize and efficiency_lambda
        super().__init__(net_spec, surrogate, **kwargs)

    def loss(  # noqa: D102
        self,
        x: torch.Tensor,
        masks: torch.Tensor,
        values: torch.Tensor,
        v_empty: torch.Tensor,
        v_full: torch.Tensor,
    ) -> torch.Tensor:
        raw = self.raw_attributions(x)
        total = v_full - v_empty
        players = self.sharing_players(raw.device)
        phi = efficient_normalization(raw, total, players) if self.hparams.normalize else raw
        pred = torch.einsum("bmd,bdc->bmc", masks.float(), phi)
        loss = (pred - (values - v_empty.unsqueeze(1))).pow(2).mean()
        if self.hparams.efficiency_lambda > 0:
            penalty = (raw.sum(1) - total).pow(2).mean()
            loss = loss + self.hparams.efficiency_lambda * penalty
        return loss
