"""FastSHAP (Jethani et al., 2021): g(x) trained on the weighted least-squares objective."""

from __future__ import annotations

from typing import Any

import torch

from simshap.explainers.base import AmortizedExplainer
from simshap.surrogate import Surrogate

__all__ = ["FastSHAP", "additive_efficient_normalization"]


def additive_efficient_normalization(phi: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """G <- g + (v(N) - v(∅) - 1ᵀg) / d, per instance and class, for any batch size.

    Args:
        phi: ``(B, d, C)`` raw attributions.
        total: ``(B, C)`` v(N) - v(∅).

    Returns:
        ``(B, d, C)`` attributions that sum to ``total`` over the players.
    """
    gap = total - phi.sum(1)
    return phi + gap.unsqueeze(1) / phi.shape[1]


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
        **kwargs: see :class:`~simshap.explainers.base.AmortizedExplainer`.
    """

    def __init__(
        self,
        net_spec: dict[str, Any],
        surrogate: Surrogate | None = None,
        normalize: bool = True,
        efficiency_lambda: float = 0.0,
        **kwargs: Any,
    ) -> None:
        # Lightning's save_hyperparameters (in the base) records normalize and efficiency_lambda
        super().__init__(net_spec, surrogate, **kwargs)

    @property
    def inference_evals(self) -> int:  # noqa: D102
        return 2 if self.hparams.normalize else 0

    def _grand_minus_null(self, x: torch.Tensor) -> torch.Tensor:
        game = self.game(x, check_finite=False)
        v0, v1 = game.empty_and_full()
        return (v1 - v0).float()

    def attributions(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        raw = self.net(x).float()
        if not self.hparams.normalize:
            return raw
        return additive_efficient_normalization(raw, self._grand_minus_null(x))

    def loss(  # noqa: D102
        self,
        x: torch.Tensor,
        masks: torch.Tensor,
        values: torch.Tensor,
        v_empty: torch.Tensor,
        v_full: torch.Tensor,
    ) -> torch.Tensor:
        raw = self.net(x).float()
        total = v_full - v_empty
        phi = additive_efficient_normalization(raw, total) if self.hparams.normalize else raw
        pred = torch.einsum("bmd,bdc->bmc", masks.float(), phi)
        loss = (pred - (values - v_empty.unsqueeze(1))).pow(2).mean()
        if self.hparams.efficiency_lambda > 0:
            penalty = (raw.sum(1) - total).pow(2).mean()
            loss = loss + self.hparams.efficiency_lambda * penalty
        return loss
