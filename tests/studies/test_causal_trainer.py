"""The batched zoo trainer: grouped network, stacked optimizers, equality with one-model runs."""

from __future__ import annotations

import pytest
import torch

from simshap.studies.causal.data import load_study_data
from simshap.studies.causal.grouped import grouped_forward, stack_state_dicts, unstack_state_dict
from simshap.studies.causal.optim import StackedOptimizer, single_optimizer
from simshap.studies.causal.trainer import (
    TrainSettings,
    grouped_accuracy,
    plan_groups,
    train_group,
    train_models,
    train_single,
)
from simshap.studies.causal.zoo import SmallCNN

BASE = {
    "optimizer": "adam",
    "activation": "relu",
    "w_init": "he_normal",
    "init_std": 0.1,
    "b_init": "zeros",
    "learning_rate": 5e-3,
    "l2": 1e-4,
    "dropout": 0.0,
    "train_fraction": 1.0,
}


def _hp(**kw: object) -> dict:
    return {**BASE, **kw}


# every optimizer, activation and initializer, dropout on and off, two train fractions
HPS = [
    _hp(),
    _hp(
        optimizer="sgd",
        activation="tanh",
        w_init="glorot_uniform",
        learning_rate=5e-2,
        dropout=0.45,
    ),
    _hp(optimizer="rmsprop", activation="elu", w_init="orthogonal", l2=1e-2, dropout=0.2),
    _hp(
        optimizer="adam",
        activation="tanh",
        w_init="normal",
        init_std=0.5,
        b_init="ones",
        dropout=0.7,
        train_fraction=0.5,
    ),
    _hp(optimizer="rmsprop", activation="relu", learning_rate=5e-4, train_fraction=0.5),
    _hp(
        optimizer="sgd",
        activation="elu",
        w_init="normal",
        init_std=1e-2,
        l2=1e-8,
        train_fraction=0.5,
        dropout=0.2,
    ),
]
SETTINGS = TrainSettings(epochs=2, batch_size=16, stride=1)


@pytest.fixture(scope="module")
def digits():
    return load_study_data("digits", n_train=96, n_test=120, n_explain=4)


def _max_rel_err(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-6)) for k in b)


def test_stacked_optimizer_matches_torch_optim() -> None:
    gen = torch.Generator().manual_seed(0)
    kinds, lrs = ["adam", "adam", "rmsprop", "sgd"], [1e-2, 5e-3, 1e-3, 5e-2]
    params = {"w": torch.randn(4, 3, 5, generator=gen), "b": torch.randn(4, 3, generator=gen)}
    singles = [{k: v[m].clone().requires_grad_(True) for k, v in params.items()} for m in range(4)]
    opts = [single_optimizer(kinds[m], list(singles[m].values()), lrs[m]) for m in range(4)]
    stacked = StackedOptimizer(params, kinds, lrs)
    for _ in range(5):
        grads = {k: torch.randn(v.shape, generator=gen) for k, v in params.items()}
        stacked.step(params, grads)
        for m in range(4):
            for k, p in singles[m].items():
                p.grad = grads[k][m].clone()
            opts[m].step()
    for m in range(4):
        for k in params:
            torch.testing.assert_close(params[k][m], singles[m][k].detach(), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="adjacent"):
        StackedOptimizer(params, ["adam", "sgd", "adam", "sgd"], lrs)


def test_grouped_forward_equals_each_model() -> None:
    torch.manual_seed(1)
    acts = ["relu", "relu", "tanh", "elu", "relu"]
    models = [SmallCNN(a, stride=2).eval() for a in acts]
    params = stack_state_dicts([m.state_dict() for m in models])
    x = torch.rand(7, 1, 28, 28)
    per_model = torch.rand(5, 7, 1, 28, 28)
    with torch.no_grad():
        shared = grouped_forward(params, x.repeat(1, 5, 1, 1), acts, 2).logits
        own = grouped_forward(params, per_model, acts, 2).logits
        for m, model in enumerate(models):
            torch.testing.assert_close(shared[m], model(x), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(own[m], model(per_model[m]), atol=1e-5, rtol=1e-5)
    acc = grouped_accuracy(params, acts, 2, x, torch.zeros(7, dtype=torch.long), max_rows=15)
    want = [(m(x).argmax(-1) == 0).double().mean() for m in models]
    torch.testing.assert_close(acc, torch.stack(want))


@pytest.mark.timeout(120)
def test_batched_training_equals_single_model_training(digits) -> None:
    seeds = [11, 11, 12, 13, 14, 11]
    res = train_models(HPS, seeds, digits.x_train, digits.y_train, SETTINGS, group_size=3)
    for k, hp in enumerate(HPS):
        alone = train_single(hp, seeds[k], digits.x_train, digits.y_train, SETTINGS)
        assert _max_rel_err(unstack_state_dict(res.params, k), alone.state_dict()) < 1e-4, k
    # training changed every model, and differently
    init = train_models(
        HPS, seeds, digits.x_train, digits.y_train, TrainSettings(0, 16, 1), group_size=3
    )
    assert all(
        not torch.equal(res.params["fc.weight"][k], init.params["fc.weight"][k])
        for k in range(len(HPS))
    )


@pytest.mark.timeout(120)
def test_a_model_is_the_same_in_any_group(digits) -> None:
    seeds = list(range(len(HPS)))
    a = train_models(HPS, seeds, digits.x_train, digits.y_train, SETTINGS, group_size=8)
    order = [4, 2, 0, 5, 3, 1]
    b = train_models(
        [HPS[k] for k in order],
        [seeds[k] for k in order],
        digits.x_train,
        digits.y_train,
        SETTINGS,
        group_size=1,
    )
    for pos, k in enumerate(order):
        assert (
            _max_rel_err(unstack_state_dict(b.params, pos), unstack_state_dict(a.params, k)) < 1e-5
        )


@pytest.mark.timeout(120)
def test_a_diverging_model_leaves_its_group_alone(digits) -> None:
    hps = [
        _hp(optimizer="sgd", learning_rate=1e6, init_std=0.5, w_init="normal"),
        _hp(),
        _hp(optimizer="sgd", learning_rate=5e-2),
    ]
    res = train_group(hps, [0, 0, 0], digits.x_train, digits.y_train, SETTINGS)
    assert not torch.isfinite(res.params["fc.weight"][0]).all()
    acc = grouped_accuracy(res.params, ["relu"] * 3, 1, digits.x_test, digits.y_test)
    assert float(acc[0]) == 0.0  # non-finite outputs count as wrong
    for k in (1, 2):
        alone = train_single(hps[k], 0, digits.x_train, digits.y_train, SETTINGS)
        assert _max_rel_err(unstack_state_dict(res.params, k), alone.state_dict()) < 1e-4
        with torch.no_grad():
            want = (alone(digits.x_test).argmax(-1) == digits.y_test).double().mean()
        assert float(acc[k]) == pytest.approx(float(want))


def test_groups_share_train_fraction_and_activation() -> None:
    groups = plan_groups(HPS, group_size=2)
    assert sorted(k for g in groups for k in g) == list(range(len(HPS)))
    for g in groups:
        assert len(g) <= 2
        assert len({(HPS[k]["train_fraction"], HPS[k]["activation"]) for k in g}) == 1
    with pytest.raises(ValueError, match="train fraction"):
        train_group(
            HPS[:4], [0] * 4, torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long), SETTINGS
        )


def test_validation_curve_ends_at_the_final_model(digits) -> None:
    val = (digits.x_test, digits.y_test)
    res = train_group(HPS[:3], [1, 2, 3], digits.x_train, digits.y_train, SETTINGS, val)
    assert res.val_curve is not None and res.val_curve.shape == (2, 3)
    final = grouped_accuracy(res.params, [h["activation"] for h in HPS[:3]], 1, *val)
    torch.testing.assert_close(res.val_curve[-1], final)
