"""The game is a choice: the model's marginal game (unbiased one-row draws, shap's values), the
baseline game, and additive outputs for every explainer, game and task, eager, ONNX and served."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

import simshap
from simshap.amortized.simshap import residual_target
from simshap.estimators.exact import exact_shapley
from simshap.estimators.semivalues import sim_semivalue_target
from simshap.games.rows import RowsGame
from simshap.games.sampling import shapley_kernel_subset_prob
from simshap.models.adapter import ModelAdapter

TINY = {
    "surrogate": {"hidden": 16, "layers": 2, "max_epochs": 3},
    "explainer": {"hidden": 16, "layers": 2, "max_epochs": 2, "val_instances": 8, "val_budget": 32},
}


def _model_game(d: int = 3, k: int = 4):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, d))
    background = rng.normal(size=(k, d))
    w = rng.normal(size=(d, 2))

    def f(rows):  # a nonlinear model with interactions
        z = np.asarray(rows, dtype=np.float64)
        logits = z @ w + np.prod(z[:, :2], axis=1, keepdims=True)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    return RowsGame(f, x, background), f, x, background


def _coalitions(d: int):
    """Every coalition 0 < |S| < d with its Shapley-kernel probability p(S)."""
    for bits in itertools.product([False, True], repeat=d):
        if 0 < sum(bits) < d:
            yield torch.tensor(bits), float(shapley_kernel_subset_prob(d, torch.tensor(sum(bits))))


def _with_truth():
    """The model game, its exact Shapley values and (v(∅), v(N))."""
    game, f, x, background = _model_game()
    return game, f, x, background, exact_shapley(game).values, game.empty_and_full()


def test_one_row_draws_keep_the_sim_semivalue_target_unbiased_by_enumeration():
    """E over S ~ p(S) and the background row k of the target from one row equals the exact
    Shapley values of the marginal game (the mean over every background row)."""
    game, f, x, background, truth, (v0, v1) = _with_truth()
    d, k, expected = 3, len(background), torch.zeros_like(truth)
    for s, p in _coalitions(d):
        for row in range(k):  # the one background row each coalition is evaluated on
            hybrid = np.where(s.numpy(), x, background[row])
            v = torch.from_numpy(f(hybrid)).unsqueeze(1)  # (B, 1, C)
            masks = s.expand(2, 1, d)
            target = sim_semivalue_target(masks, v, v0, v1, centered=True)
            expected += p / k * target
    torch.testing.assert_close(expected, truth, atol=1e-12, rtol=0)
    # the control-variate target too (any fixed prior keeps it unbiased)
    prior = torch.randn_like(truth)
    expected_cv = torch.zeros_like(truth)
    for s, p in _coalitions(d):
        for row in range(k):
            v = torch.from_numpy(f(np.where(s.numpy(), x, background[row]))).unsqueeze(1)
            expected_cv += p / k * residual_target(s.expand(2, 1, d), v, v0, v1, prior)
    torch.testing.assert_close(expected_cv, truth, atol=1e-12, rtol=0)


def test_a_complementary_pair_on_one_row_keeps_the_target_unbiased_by_enumeration():
    """A pair (S, N∖S) evaluated on the same background row k: E over S ~ p(S) and k of the
    pair's target equals the exact Shapley values; and draw() does share the row."""
    game, f, x, background, truth, (v0, v1) = _with_truth()
    d, k, expected = 3, len(background), torch.zeros_like(truth)
    for s, p in _coalitions(d):
        pair = torch.stack([s, ~s]).expand(2, 2, d)
        for row in range(k):
            v = torch.stack(
                [torch.from_numpy(f(np.where(m.numpy(), x, background[row]))) for m in pair[0]],
                dim=1,
            )
            expected += p / k * sim_semivalue_target(pair, v, v0, v1, centered=True)
    torch.testing.assert_close(expected, truth, atol=1e-12, rtol=0)
    # draw(): each member's value is f on one background row, the same row for both members
    masks = torch.tensor([[True, False, False], [False, True, True]] * 50).expand(2, 100, d)
    draws = game.draw(masks, torch.Generator().manual_seed(0))
    candidates = [
        torch.from_numpy(f(np.where(masks[0].numpy(), x[0], background[j]))) for j in range(k)
    ]
    which = torch.stack([(draws[0] - c).abs().sum(-1) < 1e-12 for c in candidates]).int()
    assert bool((which.sum(0) == 1).all())  # every value is one row's
    row_of = which.argmax(0)
    assert bool((row_of[0::2] == row_of[1::2]).all())  # the pair shares it
    assert len(set(row_of.tolist())) == k  # and the rows vary between pairs


def test_the_draws_pick_each_background_row_uniformly():
    game, f, x, background = _model_game(k=4)
    masks = torch.zeros(2, 4000, 3, dtype=torch.bool)  # v(∅) draws: f of the background row
    draws = game.draw(masks, torch.Generator().manual_seed(0))
    rows = torch.from_numpy(f(background))
    hits = [(draws[0] - rows[j]).abs().sum(-1).lt(1e-12).float().mean() for j in range(4)]
    assert all(abs(float(h) - 0.25) < 0.03 for h in hits)
    torch.testing.assert_close(draws.mean(1)[0], game.v_empty(), atol=0.02, rtol=0)


def test_fastshap_loss_from_one_row_has_the_minimizer_of_the_mean_game():
    """FastSHAP's squared error on one-row draws is the error on the mean value plus a constant
    that does not depend on phi: the gradient in phi, and so the optimum, are the same."""
    from simshap.amortized.fastshap import FastSHAP

    game, f, x, background = _model_game()
    d, k = 3, len(background)
    s = torch.tensor([[True, False, True], [False, True, False]])
    v0, v1 = game.empty_and_full()
    phi = torch.randn(2, d, 2, requires_grad=True)
    loss_one, grads = [], []
    for row in range(k):
        v = torch.stack(
            [torch.from_numpy(f(np.where(m.numpy(), x, background[row]))) for m in s], dim=1
        ).float()
        pred = torch.einsum("bmd,bdc->bmc", s.expand(2, -1, -1).float(), phi)
        loss = (pred - (v - v0.float().unsqueeze(1))).pow(2).mean()
        (grad,) = torch.autograd.grad(loss, phi)
        loss_one.append(loss)
        grads.append(grad)
    mean_v = game(s.expand(2, -1, -1)).float()
    pred = torch.einsum("bmd,bdc->bmc", s.expand(2, -1, -1).float(), phi)
    (grad_mean,) = torch.autograd.grad(
        (pred - (mean_v - v0.float().unsqueeze(1))).pow(2).mean(), phi
    )
    torch.testing.assert_close(torch.stack(grads).mean(0), grad_mean, atol=1e-6, rtol=0)
    assert FastSHAP  # the loss above is FastSHAP.loss's, written out


def test_exact_marginal_values_equal_shap_kernel_explainer():
    import shap

    x, y = make_classification(n_samples=300, n_features=6, random_state=0)
    model = LogisticRegression().fit(x, y)
    background = x[:20]
    adapter = ModelAdapter(model, x[:50])
    game = RowsGame(adapter.on_array, x[:5], background)
    ours = exact_shapley(game).values.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.KernelExplainer(model.predict_proba, background)
        theirs = explainer.shap_values(x[:5], nsamples=2**6, silent=True)
    theirs = np.asarray(theirs)
    if theirs.shape != ours.shape:
        theirs = np.transpose(theirs, (1, 2, 0))
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


# --------------------------------------------------------------------------- additivity


def _classification():
    x, y = make_classification(n_samples=200, n_features=5, n_informative=3, random_state=1)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    return LogisticRegression().fit(frame, y), frame, y


def _regression():
    x, y = make_classification(n_samples=200, n_features=5, random_state=2)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    # predictions and values of order 100, as diabetes': in float32 base + Σφ misses by 1.5e-5
    target = 200 + 60 * frame["f0"] + 30 * frame["f1"] ** 2
    return GradientBoostingRegressor(n_estimators=30).fit(frame, target), frame, None


CASES = list(
    itertools.product(
        ["simshap", "fastshap", "labels"],
        ["surrogate", "marginal", "baseline"],
        ["classification", "regression"],
    )
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("additive")
    out = {}
    for method, game, task in CASES:
        model, frame, y = _classification() if task == "classification" else _regression()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tiny surrogates are not faithful
            e = simshap.fit(
                model,
                frame,
                y,
                method=method,
                game=game,
                accelerator="cpu",
                background_size=10,
                **TINY,
            )
        path = folder / f"{method}-{game}-{task}.pt"
        simshap.save(e, path)
        out[method, game, task] = (e, model, frame, path)
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("method", "game", "task"), CASES)
def test_every_output_adds_up_eager_onnx_and_served(trained, method, game, task, tmp_path):
    import onnxruntime as ort

    from simshap.serving.handler import ExplainHandler

    explainer, model, frame, path = trained[method, game, task]
    rows = frame.iloc[:40]
    sv = explainer(rows)
    gap = (sv.base_values + sv.values.sum(1) - sv.prediction).abs().max()
    assert float(gap) <= 1e-5
    if game != "surrogate":  # the explained value is the model's own output
        own = ModelAdapter(model, rows)(rows)
        np.testing.assert_allclose(sv.prediction.numpy(), own, atol=1e-5)
    onnx = simshap.export_explainer(explainer, tmp_path / "g.onnx")
    feed = {"rows": explainer.preprocessor.encode(rows).astype(np.float32)}
    if game != "surrogate":
        feed["prediction"] = sv.prediction.numpy()
    values, prediction = ort.InferenceSession(str(onnx)).run(None, feed)
    base = explainer.base_value.numpy()
    assert np.abs(base + values.sum(1) - prediction).max() <= 1e-5
    # ONNX Runtime and torch run the float32 network in their own order: at values of order 60
    # they agree to float32 rounding (relative), not to 1e-5 absolute; additivity is exact above
    np.testing.assert_allclose(values, sv.values.numpy(), rtol=1e-5, atol=1e-5)
    served = simshap.load(path, model=model)
    handler = ExplainHandler(served)
    batch, target = handler.decode({"instances": rows.to_numpy().tolist()})
    answer = handler.encode(handler.explain(batch), target, batch)
    got = np.asarray(answer["values"])
    assert (
        np.abs(
            np.asarray(answer["base_values"]) + got.sum(1) - np.asarray(answer["prediction"])
        ).max()
        <= 1e-5
    )


def test_a_models_game_without_its_model_says_how_to_get_it(trained):
    _, model, frame, path = trained["simshap", "marginal", "classification"]
    loaded = simshap.load(path)
    with pytest.raises(simshap.UserError, match="pass model= to simshap.load"):
        loaded(frame.iloc[:3])
    raw = loaded(frame.iloc[:3], efficient=False)  # the raw network output needs no model
    assert raw.prediction is None
    with_model = simshap.load(path, model=model)(frame.iloc[:3])
    assert with_model.prediction is not None
    attached = simshap.load(path).attach_model(model)(frame.iloc[:3])  # the model as trained with
    assert torch.equal(attached.values, with_model.values)


def test_the_models_own_games_see_thermometer_inputs_and_the_surrogates_do_not(trained):
    for (method, game, task), (explainer, *_rest) in trained.items():
        cuts = explainer.net.spec.get("cuts")
        if game == "marginal":  # one cut list per feature, below 128 bins each
            assert cuts is not None and len(cuts) == 5, (method, task)
            assert all(0 < len(c) <= 127 for c in cuts)
        else:
            assert cuts is None, (method, game, task)


def test_a_poor_surrogate_is_warned_about():
    model, frame, y = _classification()
    with pytest.warns(UserWarning, match="the surrogate is not faithful to the model"):
        simshap.fit(
            model,
            frame,
            y,
            accelerator="cpu",
            surrogate={"hidden": 4, "layers": 1, "max_epochs": 1},
            explainer={
                "hidden": 8,
                "layers": 2,
                "max_epochs": 1,
                "val_instances": 8,
                "val_budget": 32,
            },
        )
