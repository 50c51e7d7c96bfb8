"""Batched saliency maps of many zoo models equal captum's maps of each model."""

from __future__ import annotations

import pytest
import torch

from simshap.studies.causal.grouped import stack_state_dicts
from simshap.studies.causal.saliency import (
    SALIENCY_METHODS,
    batched_saliency,
    captum_saliency,
    smoothgrad_noise,
)
from simshap.studies.causal.zoo import build_model

CFG = {"smoothgrad_samples": 3, "smoothgrad_noise": 0.15, "ig_steps": 5}


@pytest.fixture(scope="module")
def zoo():
    acts = ["relu", "elu", "tanh", "relu"]
    hps = [
        {"activation": a, "dropout": 0.2, "w_init": "he_normal", "init_std": 0.1, "b_init": "zeros"}
        for a in acts
    ]
    models = [build_model(hp, 2, seed).eval() for seed, hp in enumerate(hps)]
    return models, stack_state_dicts([m.state_dict() for m in models]), acts


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", SALIENCY_METHODS)
def test_batched_saliency_equals_captum(zoo, method: str) -> None:
    models, params, acts = zoo
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 28, 28, generator=gen)
    targets = [torch.randint(10, (4, 5), generator=gen) for _ in range(2)]
    # captum's SmoothGrad noise: the global generator seeded, then torch.normal
    std = CFG["smoothgrad_noise"] * float(x.amax() - x.amin())
    torch.manual_seed(9)
    noise = torch.normal(0.0, torch.tensor(std).repeat((5 * CFG["smoothgrad_samples"], 1, 28, 28)))
    maps = batched_saliency(params, acts, 2, x, targets, method, CFG, noise, max_rows=8)
    for t, target in enumerate(targets):
        assert maps[t].shape == (4, 5, 28, 28)
        for m, model in enumerate(models):
            ref = captum_saliency(model, x, target[m], method, CFG, seed=9)
            scale = float(ref.abs().max())
            assert scale > 0
            torch.testing.assert_close(maps[t][m], ref, atol=1e-5 * scale, rtol=1e-4)


def test_smoothgrad_noise_is_seeded_and_scaled() -> None:
    x = torch.rand(4, 1, 8, 8) * 0.5
    a = smoothgrad_noise(x, 6, 0.2, torch.Generator().manual_seed(1))
    b = smoothgrad_noise(x, 6, 0.2, torch.Generator().manual_seed(1))
    assert a.shape == (24, 1, 8, 8) and torch.equal(a, b)
    span = float(x.amax() - x.amin())
    assert float(a.std()) == pytest.approx(0.2 * span, rel=0.15)


def test_smoothgrad_refuses_missing_noise(zoo) -> None:
    _, params, acts = zoo
    x = torch.rand(2, 1, 28, 28)
    t = torch.zeros(4, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="noise of shape"):
        batched_saliency(params, acts, 2, x, [t], "smoothgrad", CFG)
    with pytest.raises(ValueError, match="unknown saliency method"):
        batched_saliency(params, acts, 2, x, [t], "lime", CFG)
