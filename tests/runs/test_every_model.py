"""Every model and task: missing values, categories from every row, regression, clear errors."""

from __future__ import annotations

import json
import re

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import simshap
from simshap.cli import main
from simshap.data.tabular import from_frame, load_tabular
from simshap.errors import UserError

SMALL = {
    "surrogate": {"hidden": 32, "layers": 2, "max_epochs": 8},
    "explainer": {
        "hidden": 32,
        "layers": 2,
        "max_epochs": 4,
        "val_instances": 16,
        "val_budget": 64,
    },
}
# enough training for the attributions' signs and the surrogate's fidelity to be checked
TRAINED = {
    "surrogate": {"hidden": 64, "layers": 3, "max_epochs": 40},
    "explainer": {
        "hidden": 64,
        "layers": 2,
        "max_epochs": 20,
        "val_instances": 32,
        "val_budget": 128,
    },
}


def _table(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Strings (with stray spaces and a rare value), missing numbers and missing strings."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    age[rng.random(n) < 0.2] = np.nan
    job = rng.choice(["clerk", " clerk", "farmer", "nurse"], n).astype(object)
    job[rng.random(n) < 0.1] = None
    job[:2] = "astronaut"  # two rows only: most splits leave it out of training
    frame = pd.DataFrame({"age": age, "income": rng.normal(50, 15, n), "job": job})
    score = (
        (frame["income"] - 50) / 15
        + np.where(np.isnan(age), 1.5, (age - 40) / 10)
        + (frame["job"].str.strip() == "nurse")
    )
    y = pd.Series(np.where(score + rng.normal(0, 0.3, n) > 0.5, "yes", "no"), name="y")
    return frame, y


def _pipeline(frame: pd.DataFrame, y: pd.Series):
    """A model that handles missing values itself: HistGradientBoosting after an encoder."""
    encode = ColumnTransformer(
        [
            (
                "job",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=-1,
                    encoded_missing_value=np.nan,
                ),
                ["job"],
            )
        ],
        remainder="passthrough",
    )
    return make_pipeline(encode, HistGradientBoostingClassifier(max_iter=50)).fit(frame, y)


@pytest.fixture(scope="module")
def table():
    frame, y = _table()
    return frame, y, _pipeline(frame, y)


@pytest.mark.timeout(300)
def test_missing_values_are_explained_not_refused(table):
    frame, y, model = table
    explainer = simshap.fit(model, frame, y, accelerator="cpu", **TRAINED)
    prep = explainer.preprocessor
    assert set(prep.missing) == {"age", "job"} and "astronaut" in prep.categories["job"]
    assert prep.categories["job"] == ["astronaut", "clerk", "farmer", "nurse"]  # stripped
    sv = explainer(frame)
    assert torch.isfinite(sv.values).all()
    torch.testing.assert_close(sv.base_values + sv.values.sum(1), sv.prediction, atol=1e-5, rtol=0)
    # a missing age raises the score (planted): its attribution towards "yes" is positive
    missing = frame["age"].isna().to_numpy()
    assert float(sv.values[missing, 0, 1].mean()) > 0.02
    assert float(sv.values[missing, 0, 1].mean()) > float(sv.values[~missing, 0, 1].mean())
    # NaN where training had none is refused, naming the option that allows it
    with pytest.raises(UserError, match="allow_missing"):
        explainer(frame.assign(income=np.nan))


@pytest.mark.timeout(300)
def test_marginal_game_with_nan_adds_up_to_the_model_itself(table, capsys):
    frame, y, model = table
    explainer = simshap.fit(
        model, frame, y, game="marginal", accelerator="cpu", background_size=20, **SMALL
    )
    # before training it says how many rows the model will see at most: n_train x n_masks x
    # epochs for training, val_instances x val_budget x background rows for validation
    said = re.search(
        r"feeds the model at most ([\d,]+) rows \(([\d,]+) for 4 epochs x (\d+) "
        r"coalitions per row, ([\d,]+) for validation\)",
        capsys.readouterr().out,
    )
    assert said is not None
    total, train, masks, val = (int(g.replace(",", "")) for g in said.groups())
    assert val == 16 * 64 * 20 and train % (4 * masks) == 0 and total == train + val
    rows = frame.iloc[:50]
    sv = explainer(rows)
    np.testing.assert_allclose(sv.prediction.numpy(), model.predict_proba(rows), atol=1e-6)
    torch.testing.assert_close(sv.base_values + sv.values.sum(1), sv.prediction, atol=1e-5, rtol=0)


def test_categories_come_from_every_row_for_any_split():
    frame, y = _table(n=300)
    for seed in range(8):  # a value seen in two rows only never aborts a split
        data = from_frame(frame, y, seed=seed)
        assert "astronaut" in data.preprocessor.categories["job"]
        data.preprocessor.encode(data.raw_test)
    # a value that no row had is the 'other' code, or refused on request
    prep = data.preprocessor
    unseen: dict[str, int] = {}
    codes = prep.encode(frame.assign(job="pilot").iloc[:3], unseen)
    assert (codes[:, 2] == len(prep.categories["job"])).all() and unseen == {"job": 3}
    prep.unseen_categories = "error"
    with pytest.raises(UserError, match="never seen in training"):
        prep.encode(frame.assign(job="pilot").iloc[:3])


@pytest.mark.timeout(600)
def test_simshap_run_on_a_csv_with_question_marks_and_rare_values(tmp_path, table):
    frame, y, model = table
    csv = tmp_path / "t.csv"
    frame.assign(y=y).fillna("?").to_csv(csv, index=False)
    model_file = tmp_path / "model.joblib"
    joblib.dump(model, model_file)
    for seed in (0, 1):
        cfg = {
            "dataset": {"path": str(csv), "target": "y", "na_values": ["?"]},
            "seed": seed,
            "model": {"path": str(model_file)},
            "trainer": {"accelerator": "cpu", "progress_bar": False},
            "explainer": {**SMALL["explainer"], "methods": ["simshap"]},
            "surrogate": SMALL["surrogate"],
            "evaluation": {"n_instances": 10, "budgets": [64]},
        }
        path = tmp_path / f"c{seed}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = tmp_path / f"run{seed}"
        assert main(["run", str(path), "--out", str(out)]) == 0
        results = json.loads((out / "results.json").read_text())
        assert np.isfinite(results["methods"]["simshap"]["l2"])
        assert results["ground_truth"]["method"] == "exact"


@pytest.mark.timeout(300)
def test_serve_and_explain_accept_missing_values(tmp_path, table):
    from simshap.serving.files import explain_file
    from simshap.serving.handler import ExplainHandler

    frame, y, model = table
    explainer = simshap.fit(model, frame, y, accelerator="cpu", **SMALL)
    path = tmp_path / "e.pt"
    simshap.save(explainer, path)
    handler = ExplainHandler(simshap.load(path))
    rows, target = handler.decode({"instances": [[None, 50.0, None], [30.0, 40.0, "pilot"]]})
    answer = handler.encode(handler.explain(rows), target, rows)
    values = np.array(answer["values"])
    assert np.isfinite(values).all() and "pilot" not in answer["warnings"][0]
    assert "1 value(s) of 'job'" in answer["warnings"][0]
    base = np.array(answer["base_values"])
    np.testing.assert_allclose(base + values.sum(1), answer["prediction"], atol=1e-5)
    csv = tmp_path / "rows.csv"
    frame.iloc[:40].to_csv(csv, index=False)
    out = tmp_path / "v.parquet"
    assert explain_file(path, csv, out, target="yes", progress=False) == 40
    got = pd.read_parquet(out)
    assert np.isfinite(got.to_numpy(dtype=float)).all()


# --------------------------------------------------------------------------- regression


@pytest.mark.timeout(300)
def test_a_regressor_is_explained_on_its_own_scale():
    data = load_tabular("diabetes")
    model = GradientBoostingRegressor(n_estimators=50, random_state=0).fit(
        data.raw_train, data.y_train
    )
    explainer = simshap.fit(model, data.raw_train, accelerator="cpu", **TRAINED)
    sv = explainer(data.raw_test)
    assert sv.shape == (len(data.raw_test), 10, 1) and sv.class_names == ["prediction"]
    assert sv.extras["task"] == "regression"
    torch.testing.assert_close(
        sv.base_values + sv.values.sum(1), sv.prediction, atol=1e-3, rtol=1e-6
    )
    # the surrogate learned the model's prediction: v(N) is close to it
    assert float(np.corrcoef(sv.prediction[:, 0], model.predict(data.raw_test))[0, 1]) > 0.8


@pytest.mark.timeout(300)
def test_a_regression_is_explained_alike_in_any_unit():
    """Prices in cents or in thousands: the same explanation, in the target's unit.

    The surrogate and the explainer both learn in units of the predictions' standard deviation,
    so weight decay and learning rates mean the same whatever the unit; without that, the
    explainer's relative error on diabetes was 0.020 at 1/100 of the unit and 0.080 at 100x.
    """
    data = load_tabular("diabetes")
    values = []
    for unit in (1.0, 1e4):
        model = GradientBoostingRegressor(n_estimators=50, random_state=0).fit(
            data.raw_train, data.y_train * unit
        )
        explainer = simshap.fit(model, data.raw_train, accelerator="cpu", **SMALL)
        values.append(explainer(data.raw_test).values / unit)
    scale = float(values[0].abs().max())
    assert scale > 1.0  # diabetes' attributions are in the tens
    torch.testing.assert_close(values[1], values[0], atol=1e-3 * scale, rtol=0)


def test_a_float_target_is_never_a_214_class_classifier(tmp_path, capsys):
    frame = load_tabular("diabetes").raw_train.copy()
    frame["target"] = load_tabular("diabetes").y_train
    csv = tmp_path / "diabetes.csv"
    frame.to_csv(csv, index=False)
    data = load_tabular({"path": str(csv), "target": "target"})
    assert data.task == "regression" and data.n_classes == 1  # task: auto
    with pytest.raises(UserError, match="set task: regression"):
        load_tabular({"path": str(csv), "target": "target"}, task="classification")
    frame["target"] = frame["target"] + 0.5  # fractions: a quantity, never classes
    frame.to_csv(csv, index=False)
    with pytest.raises(UserError, match="set task: regression"):
        load_tabular({"path": str(csv), "target": "target"}, task="classification")
