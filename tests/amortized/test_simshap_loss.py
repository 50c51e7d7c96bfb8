"""SimSHAP's loss with ``normalize``: it sees g(x) made efficient, as ``explainer(x)`` serves it."""

from __future__ import annotations

import pytest
import torch
from tiny import mlp_spec, tiny_surrogate

from simshap.amortized.simshap import SimSHAP

D, C, B, M = 6, 3, 5, 8


def _batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, generator=g)
    masks = torch.rand(B, M, D, generator=g) < 0.5
    values = torch.rand(B, M, C, generator=g)
    v_empty, v_full = torch.rand(B, C, generator=g), torch.rand(B, C, generator=g)
    return x, masks, values, v_empty, v_full


def _loss(module: SimSHAP, shift: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> float:
    """The loss with g(x) moved by ``shift`` ``(B, 1, C)``: the same on every player."""
    raw = module.raw_attributions
    module.raw_attributions = lambda x: raw(x) + shift  # type: ignore[method-assign]
    try:
        module.cv_coef.fill_(0.7)  # a control variate in use, reset before every call
        return float(module.loss(*batch))
    finally:
        module.raw_attributions = raw  # type: ignore[method-assign]


@pytest.mark.parametrize("normalize", [True, False])
def test_the_normalized_loss_ignores_what_inference_removes(normalize: bool) -> None:
    """g's sum over the players is replaced at inference (base + Σφ = v(N)), so with
    ``normalize`` a shift of g along the players' sum changes neither the control variate nor
    the loss; without it, the loss pays for that shift."""
    torch.manual_seed(0)
    module = SimSHAP(
        mlp_spec(D, C, 16), tiny_surrogate(D, C, 16), normalize=normalize, average_targets=False
    )
    batch = _batch()
    zero = torch.zeros(B, 1, C)
    shift = 3.0 * torch.randn(B, 1, C, generator=torch.Generator().manual_seed(1))
    base, moved = _loss(module, zero, batch), _loss(module, shift, batch)
    if normalize:
        assert moved == pytest.approx(base, rel=1e-5)
    else:
        assert moved > 2 * base


def test_the_paper_target_stays_algorithm_1() -> None:
    module = SimSHAP(mlp_spec(D, C, 16), tiny_surrogate(D, C, 16), target="paper")
    batch = _batch()
    shift = torch.ones(B, 1, C)
    assert _loss(module, shift, batch) > 2 * _loss(module, torch.zeros(B, 1, C), batch)
