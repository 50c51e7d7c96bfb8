"""Explanations of the causal study: preprocessing, severed targets, Shapley values, chunks."""

from __future__ import annotations

import pytest
import torch

from simshap.studies.causal.explanations import (
    clip_and_normalize,
    explain_chunk,
    severed_sources,
    shapley_patches,
)
from simshap.studies.causal.grouped import stack_state_dicts
from simshap.studies.causal.zoo import SmallCNN


def test_preprocessing_clips_and_normalizes() -> None:
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(6, 40, 25, generator=gen)
    maps[0, 0, 0] = 1e6  # an outlier is clipped, not allowed to squash the rest
    out = clip_and_normalize(maps, signed=True)
    assert float(out.min()) == 0.0 and float(out.max()) == pytest.approx(1.0)
    assert bool((out[maps < 0] == 0).all())
    p = torch.quantile(maps[0].abs().flatten(), 0.99)
    assert float(p) < 4.0  # the 99th percentile ignores the single outlier
    torch.testing.assert_close(out[0], (maps[0].clamp(max=p) / p).clamp_min(0))
    assert 5 <= int((out[0] == 1).sum()) <= 15  # about the top 1% sits at the clip
    cam = clip_and_normalize(maps.abs(), signed=False)
    assert float(cam.max()) == pytest.approx(1.0) and float(cam.min()) >= 0.0
    assert bool((clip_and_normalize(torch.zeros(2, 3, 3), signed=True) == 0).all())


def test_severed_sources_are_derangements() -> None:
    src = severed_sources(7, 50, seed=0)
    assert bool((src != torch.arange(7)[:, None]).all())
    assert all(sorted(src[:, j].tolist()) == list(range(7)) for j in range(50))


def _stacked(n: int, stride: int = 1) -> tuple[list[SmallCNN], dict, list[str]]:
    torch.manual_seed(0)
    acts = ["relu", "tanh", "elu"] * n
    models = [SmallCNN(acts[k], stride=stride).eval() for k in range(n)]
    return models, stack_state_dicts([m.state_dict() for m in models]), acts[:n]


def test_shapley_patches_use_the_game_layer_efficiently() -> None:
    models, params, acts = _stacked(3)
    x = torch.rand(3, 1, 8, 8)
    vals, n_evals = shapley_patches(params, acts, 1, x, grid=4, budget=128)
    assert vals.shape == (3, 3, 16, 10) and n_evals == 128
    for m, model in enumerate(models):
        with torch.no_grad():
            full = torch.softmax(model(x), -1)
            empty = torch.softmax(model(torch.zeros_like(x)), -1)
        torch.testing.assert_close(
            vals[m].sum(1).float(), (full - empty).float(), atol=1e-5, rtol=0
        )


def test_shapley_values_of_a_model_do_not_depend_on_its_group() -> None:
    _, params, acts = _stacked(4)
    x = torch.rand(2, 1, 8, 8)
    together, _ = shapley_patches(params, acts, 1, x, grid=4, budget=200, seed=3)
    for m in (0, 3):
        alone, _ = shapley_patches(
            {k: v[m : m + 1] for k, v in params.items()},
            acts[m : m + 1],
            1,
            x,
            grid=4,
            budget=200,
            seed=3,
        )
        torch.testing.assert_close(together[m], alone[0], atol=1e-6, rtol=1e-5)


def test_explain_chunk_shapes_and_identity() -> None:
    _, params, acts = _stacked(3)
    x = torch.rand(4, 1, 8, 8)
    cfg = {
        "smoothgrad_samples": 2,
        "smoothgrad_noise": 0.1,
        "ig_steps": 4,
        "shapley_grid": 4,
        "shapley_samples": 62,
    }
    out = explain_chunk(
        params,
        acts,
        1,
        x,
        ["identity", "gradient", "gradcam", "shapley"],
        cfg,
        seed=0,
        severed_seed=1,
        group_size=2,
    )
    assert out["total"]["gradient"].shape == (3, 4, 8, 8)
    assert out["total"]["shapley"].shape == (3, 4, 16)
    assert out["n_evals"] == 64
    torch.testing.assert_close(out["total"]["identity"], out["probs"])
    src = out["source"]
    torch.testing.assert_close(out["direct"]["identity"][1, 2], out["probs"][src[1, 2], 2])
    assert bool((out["severed"] == torch.gather(out["targets"], 0, src)).all())
    for name in ("gradient", "gradcam", "shapley"):
        maps = out["total"][name].float()
        assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


def test_a_models_explanations_do_not_depend_on_its_chunk() -> None:
    _, params, acts = _stacked(5)  # relu, tanh, elu, relu, tanh: regrouped by activation inside
    x = torch.rand(3, 1, 8, 8)
    cfg = {
        "smoothgrad_samples": 2,
        "smoothgrad_noise": 0.1,
        "ig_steps": 3,
        "shapley_grid": 4,
        "shapley_samples": 30,
    }
    methods = ["identity", "gradient", "smoothgrad", "gradcam", "shapley"]
    chunk = explain_chunk(params, acts, 1, x, methods, cfg, seed=4, severed_seed=0, group_size=2)
    for m in (0, 2, 4):
        alone = explain_chunk(
            {k: v[[m, m]] for k, v in params.items()},
            [acts[m]] * 2,
            1,
            x,
            methods,
            cfg,
            seed=4,
            severed_seed=0,
        )
        torch.testing.assert_close(chunk["probs"][m], alone["probs"][0])
        for name in methods[1:]:
            torch.testing.assert_close(
                chunk["total"][name][m].float(), alone["total"][name][0].float(), atol=2e-3, rtol=0
            )
