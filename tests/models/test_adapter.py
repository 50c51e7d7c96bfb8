"""The model contract: every output convention, classification and regression, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

import simshap
from simshap.errors import UserError
from simshap.models.adapter import ModelAdapter

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4)).astype(np.float32)
W = torch.tensor([[1.5], [-2.0], [0.5], [0.0]])


class OneLogit(torch.nn.Module):
    def forward(self, x):  # (n, 1) logit: the BCEWithLogits convention
        return x @ W


class Sigmoid(torch.nn.Module):
    def forward(self, x):  # (n,) probability
        return torch.sigmoid(x @ W)[:, 0]


class TwoProbabilities(torch.nn.Module):
    def forward(self, x):
        p = torch.sigmoid(x @ W)
        return torch.cat([1 - p, p], dim=1)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_one_logit_is_a_binary_classifier_not_a_softmax_over_one_column():
    with pytest.raises(UserError, match="output='logit'") as err:
        ModelAdapter(OneLogit(), X)  # one number per row: a logit, a probability or a number?
    assert "shape" not in str(err.value)  # the module returns (n, 1): no squeezed (n,) shown
    a = ModelAdapter(OneLogit(), X, output="logit")
    assert (a.task, a.output, a.num_outputs) == ("classification", "logit", 2)
    assert ModelAdapter(OneLogit(), X, task="classification").output == "logit"  # off [0, 1]
    p = _sigmoid((X @ W.numpy())[:, 0])
    np.testing.assert_allclose(a(X), np.stack([1 - p, p], 1), atol=1e-6)
    log_odds = ModelAdapter(OneLogit(), X, output="logit", link="logit")(X)
    np.testing.assert_allclose(log_odds[:, 1], (X @ W.numpy())[:, 0], rtol=1e-5, atol=1e-6)


def test_a_probability_vector_is_never_softmaxed_across_the_batch():
    a = ModelAdapter(Sigmoid(), X, task="classification", output="probability")
    full = a(X)[:, 1]
    alone = np.concatenate([a(X[i : i + 1])[:, 1] for i in range(5)])
    np.testing.assert_allclose(full[:5], alone, rtol=1e-6)  # no dependence on the batch
    np.testing.assert_allclose(full, _sigmoid((X @ W.numpy())[:, 0]), atol=1e-6)


def test_two_columns_probabilities_or_logits():
    probs = ModelAdapter(TwoProbabilities(), X)
    assert probs.output == "probability"
    logits = ModelAdapter(torch.nn.Linear(4, 2), X)
    assert logits.output == "logit"
    np.testing.assert_allclose(logits(X).sum(1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("task", ["regression"])
def test_regression_torch_sklearn_and_callable(task):
    y = X @ np.array([1.0, 2.0, 0.0, -1.0], dtype=np.float32)
    torch_reg = ModelAdapter(torch.nn.Linear(4, 1), X, task=task)
    assert (torch_reg.output, torch_reg.num_outputs, torch_reg.class_names) == (
        "raw",
        1,
        ["prediction"],
    )
    gbr = GradientBoostingRegressor(n_estimators=20).fit(X, y)
    a = ModelAdapter(gbr, X)  # a regressor is recognized
    assert a.task == "regression"
    np.testing.assert_allclose(a(X)[:, 0], gbr.predict(X))
    c = ModelAdapter(gbr.predict, X, y=y)  # a callable: the labels tell the task
    assert c.task == "regression"
    with pytest.raises(UserError, match="link='logit'"):
        ModelAdapter(gbr, X, link="logit")


def test_ambiguous_shapes_name_the_argument_that_resolves_them():
    with pytest.raises(UserError, match="task='regression'"):
        ModelAdapter(lambda r: np.asarray(r)[:, 0], X)  # one number per row, no labels
    with pytest.raises(UserError, match="output="):
        ModelAdapter(Sigmoid(), X, task="classification")  # in [0, 1]: probability or logit?
    with pytest.raises(UserError, match="not probabilities"):
        ModelAdapter(lambda r: np.full((len(r), 2), 2.0), X, output="probability")
    with pytest.raises(UserError, match="task='regression'"):
        ModelAdapter(lambda r: np.zeros((len(r), 1)), X, task="classification", output="raw")


def test_sklearn_pipeline_sees_the_dataframe_with_strings():
    frame = pd.DataFrame({"a": RNG.normal(size=40), "c": RNG.choice(["x", "y"], 40)})
    y = (frame["a"] > 0).map({True: "hi", False: "lo"})
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["c"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, y)
    a = ModelAdapter(pipe, frame)
    assert a.class_names == ["hi", "lo"] and a.columns == ["a", "c"]
    rows = frame.to_numpy(dtype=object)
    np.testing.assert_allclose(a.on_array(rows), pipe.predict_proba(frame))


@pytest.mark.timeout(300)
def test_one_logit_explains_like_two_probabilities():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    small = {
        "surrogate": {"hidden": 32, "layers": 2, "max_epochs": 3},
        "explainer": {
            "hidden": 32,
            "layers": 2,
            "max_epochs": 3,
            "n_masks": 8,
            "val_instances": 16,
            "val_budget": 64,
        },
    }
    one = simshap.fit(OneLogit(), x, output="logit", accelerator="cpu", **small)
    two = simshap.fit(TwoProbabilities(), x, accelerator="cpu", **small)
    a, b = one(x[:20]), two(x[:20])
    assert a.class_names == b.class_names == ["0", "1"]
    torch.testing.assert_close(a.values, b.values, atol=1e-5, rtol=0)
    assert float(a.values.abs().max()) > 1e-3  # not the all-zero explanation of a softmaxed column
