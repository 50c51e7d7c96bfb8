"""`simshap run` on a user's own CSV: string labels, a categorical column, an optional own model."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from simshap.amortized.io import load_explainer
from simshap.cli import main

TINY = {
    "seed": 0,
    "model": {"max_rounds": 50},
    "surrogate": {
        "hidden": 32,
        "layers": 2,
        "batch_size": 32,
        "masks_per_row": 2,
        "max_epochs": 4,
        "patience": 10,
    },
    "explainer": {
        "hidden": 32,
        "layers": 2,
        "n_masks": 8,
        "batch_size": 32,
        "max_epochs": 3,
        "patience": 10,
        "val_instances": 16,
        "val_budget": 64,
    },
    "evaluation": {"n_instances": 8, "threshold": 0.2, "budgets": [16, 32]},
    "trainer": {"accelerator": "cpu", "progress_bar": False},
}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "colour": rng.choice(["red", "green", "blue"], n),
            "income": rng.normal(50.0, 10.0, n),
            "hours": rng.normal(40.0, 5.0, n),
        }
    )
    score = (frame["income"] - 50) / 10 + (frame["colour"] == "red") - (frame["age"] - 50) / 30
    frame["label"] = np.where(score + rng.normal(0, 0.3, n) > 0, "yes", "no")
    folder = tmp_path_factory.mktemp("user")
    path = folder / "mine.csv"
    frame.to_csv(path, index=False)
    return frame, path


def _config(tmp_path, path, **extra) -> str:
    cfg = {**TINY, "dataset": {"path": str(path), "target": "label"}, **extra}
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(cfg))
    return str(file)


@pytest.mark.timeout(600)
def test_run_on_a_user_csv_with_strings(table, tmp_path):
    frame, path = table
    out = tmp_path / "run"
    assert main(["run", _config(tmp_path, path), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["n_features"] == 4
    # 4 features <= 16: the ground truth is exact, so no error hides below its noise
    assert results["ground_truth"]["method"] == "exact"
    gt = results["ground_truth"]
    assert gt["noise_l2"] == 0.0 and gt["max_n_evals"] == 16
    for name in ("simshap", "fastshap"):
        assert np.isfinite(results["methods"][name]["l2"])
    explainer = load_explainer(out / "simshap.pt")
    rows = frame.drop(columns="label").iloc[:10]
    sv = explainer(rows)
    assert sv.player_names == ["age", "colour", "income", "hours"]
    assert sv.class_names == ["no", "yes"]
    np.testing.assert_array_equal(
        explainer(rows[["hours", "colour", "income", "age"]]).values, sv.values
    )
    # a category never seen is explained as 'other' (the model may handle it) ...
    other = explainer(rows.assign(colour="purple"))
    assert torch.isfinite(other.values).all()
    torch.testing.assert_close(
        other.base_values + other.values.sum(1), other.prediction, atol=1e-5, rtol=0
    )
    # ... or refused, with unseen_categories: error
    explainer.preprocessor.unseen_categories = "error"
    with pytest.raises(ValueError, match="never seen in training"):
        explainer(rows.assign(colour="purple"))


@pytest.mark.timeout(600)
def test_run_with_the_users_own_model(table, tmp_path):
    frame, path = table
    features = frame.drop(columns="label")
    clf = make_pipeline(
        ColumnTransformer([("cat", OneHotEncoder(), ["colour"])], remainder=StandardScaler()),
        LogisticRegression(),
    ).fit(features, frame["label"])
    model_path = tmp_path / "clf.joblib"
    joblib.dump(clf, model_path)
    out = tmp_path / "run"
    cfg = _config(tmp_path, path, model={"path": str(model_path)})
    assert main(["run", cfg, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    # the surrogate was fitted to the user's model: with all features it agrees with it
    assert results["surrogate"]["original_accuracy"] == pytest.approx(
        float((clf.predict(features) == frame["label"]).mean()), abs=0.1
    )
    assert not (out / "model.txt").read_text().startswith("tree")  # nothing trained here
