"""Scale-out: Spark (local[2]) and Ray (2 CPUs) give the local values, and refuse bad rows."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

import simshap
from simshap.errors import UserError
from simshap.serving.files import explain_file

TINY = {
    "surrogate": {"hidden": 32, "layers": 2, "max_epochs": 3},
    "explainer": {
        "hidden": 32,
        "layers": 2,
        "max_epochs": 2,
        "val_instances": 16,
        "val_budget": 64,
    },
}


def _need_java() -> None:
    if shutil.which("java") is None:
        if os.environ.get("CI"):
            pytest.fail("Spark needs Java 17; .ci/run installs openjdk-17-jre-headless")
        pytest.skip("Spark needs Java 17 (apt-get install -y openjdk-17-jre-headless)")


def _census_like(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": age,
            "hours": rng.normal(40, 8, n),
            "job": rng.choice(["clerk", "nurse", "farmer"], n).astype(object),
        }
    )
    label = pd.Series(np.where(rng.random(n) + (frame["job"] == "nurse") > 0.9, "yes", "no"))
    amount = pd.Series(frame["hours"] * 2 + np.nan_to_num(frame["age"]) / 10)
    return frame, label, amount


def _encoder() -> ColumnTransformer:
    return ColumnTransformer(
        [("job", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["job"])],
        remainder="passthrough",
    )


@pytest.fixture(scope="module")
def explainers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scale")
    frame, label, amount = _census_like()
    x = frame.drop(columns="id")
    out = {"rows": frame, "folder": folder}
    for task, target, head in (
        ("classification", label, HistGradientBoostingClassifier()),
        ("regression", amount, HistGradientBoostingRegressor()),
    ):
        model = make_pipeline(_encoder(), head).fit(x, target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            e = simshap.fit(model, x, target, accelerator="cpu", **TINY)
        path = folder / f"{task}.pt"
        simshap.save(e, path)
        out[task] = path
    csv = folder / "rows.csv"
    frame.to_csv(csv, index=False)
    out["csv"] = csv
    return out


def _local(explainers, task: str, tmp_path) -> pd.DataFrame:
    path = tmp_path / f"{task}-local.parquet"
    explain_file(explainers[task], explainers["csv"], path, ignore=["id"], progress=False)
    return pd.read_parquet(path).sort_values("id").reset_index(drop=True)


def _eager(explainers, task: str) -> np.ndarray:
    rows = explainers["rows"].drop(columns="id")
    sv = simshap.load(explainers[task])(rows)
    return sv.values.reshape(len(rows), -1).numpy()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_spark_and_ray_equal_the_local_values(explainers, task, tmp_path):
    _need_java()
    want = _local(explainers, task, tmp_path)
    d = 3
    values = want.iloc[:, 1 : 1 + d * (2 if task == "classification" else 1)].to_numpy()
    np.testing.assert_allclose(values, _eager(explainers, task), atol=1e-5)  # ONNX = eager
    for engine in ("spark", "ray"):
        out = tmp_path / f"{task}-{engine}"
        n = explain_file(
            explainers[task],
            explainers["csv"],
            out,
            ignore=["id"],
            engine=engine,
            chunk_rows=128,
            workers=2,
        )
        assert n == len(want)
        got = pd.read_parquet(out).sort_values("id").reset_index(drop=True)
        assert list(got.columns) == list(want.columns)
        np.testing.assert_allclose(
            got.drop(columns="id").to_numpy(dtype=float),
            want.drop(columns="id").to_numpy(dtype=float),
            atol=1e-6,
            rtol=0,
        )
        base = got.filter(like="base_value").to_numpy()
        pred = got.filter(like="prediction").to_numpy()
        value_cols = [
            c
            for c in got.columns
            if c not in ("id",) and not c.startswith(("base_value", "prediction"))
        ]
        total = got[value_cols].to_numpy().reshape(len(got), d, -1).sum(1)
        np.testing.assert_allclose(base + total, pred, atol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_engine_refuses_bad_rows_clearly(explainers, tmp_path):
    _need_java()
    rows = explainers["rows"].copy()
    cases = {
        "unknown column": (rows.assign(extra=1.0), r"unknown \['extra'\]"),
        "missing where none in training": (rows.assign(hours=np.nan), "allow_missing"),
        "non-finite": (rows.assign(hours=np.inf), "infinite"),
    }
    for name, (bad, words) in cases.items():
        csv = tmp_path / f"{name.replace(' ', '_')}.csv"
        bad.to_csv(csv, index=False)
        for engine in ("local", "spark", "ray"):
            with pytest.raises(UserError, match=words):
                explain_file(
                    explainers["classification"],
                    csv,
                    tmp_path / f"o-{engine}",
                    ignore=["id"],
                    engine=engine,
                    progress=False,
                )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_on_error_column_marks_the_bad_rows_only(explainers):
    from simshap.serving.batch import BatchExplainer

    explain = BatchExplainer(
        simshap.load(explainers["classification"]), passthrough=["id"], on_error="column"
    )
    rows = explainers["rows"].iloc[:10].copy()
    rows.loc[3, "hours"] = np.nan
    out = explain(rows)
    assert out["error"].isna().sum() == 9 and "allow_missing" in out.loc[3, "error"]
    assert out.drop(columns=["id", "error"]).iloc[3].isna().all()
    good = explain(rows.drop(index=3))
    assert good["error"].isna().all()  # the same columns, whether a batch has bad rows or not
    np.testing.assert_allclose(
        out.drop(index=3).drop(columns=["id", "error"]).to_numpy(float),
        good.drop(columns=["id", "error"]).to_numpy(float),
        atol=1e-7,
    )
    assert torch.is_tensor(torch.as_tensor(good["prediction__yes"].to_numpy()))


def _ray(num_cpus: int = 2) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_labels_and_ground_truth_on_ray_equal_the_local_run_bitwise(explainers, tmp_path):
    """Chunks seeded by index: Ray tasks give the local bits, and a lost chunk is recomputed."""
    from simshap.amortized.labels import LabelRegression
    from simshap.estimators.chunks import chunked_shapley
    from simshap.evaluation.truth import ground_truth

    _ray()
    explainer = simshap.load(explainers["classification"])
    surrogate = explainer.surrogate  # a trained Surrogate (a LightningModule) crosses to Ray
    x = torch.as_tensor(
        explainer.preprocessor.network_inputs(
            explainer.preprocessor.encode(explainers["rows"].drop(columns="id").iloc[:150])
        )
    )
    labels = LabelRegression(dict(explainer.net.spec), surrogate, label_budget=6, seed=3)
    local, evals = labels.compute_labels(x, chunk_rows=16)
    remote, _ = labels.compute_labels(x, chunk_rows=16, engine="ray")
    assert evals == 6 and torch.equal(local, remote)
    exact = LabelRegression(dict(explainer.net.spec), surrogate, label_budget=8)
    assert torch.equal(exact.compute_labels(x)[0], exact.compute_labels(x, engine="ray")[0])

    game = labels.game(x)
    truth = ground_truth(game, method="kernel_shap", threshold=0.05, seed=1)
    cache = tmp_path / "truth"
    on_ray = ground_truth(
        game, method="kernel_shap", threshold=0.05, seed=1, engine="ray", cache_dir=cache, key="k"
    )
    assert torch.equal(truth.values, on_ray.values) and torch.equal(truth.std, on_ray.std)
    # a killed computation: the chunk not saved is the only one recomputed, to the same bits
    (cache / "chunk_00000.pt").unlink()
    stale = torch.load(cache / "chunk_00001.pt", weights_only=True)
    resumed = chunked_shapley(
        game,
        "kernel_shap",
        threshold=0.05,
        seed=1,
        engine="ray",
        cache_dir=cache,
        key="k",
        chunk_rows=64,
    )
    assert torch.equal(resumed.values, truth.values)
    assert (cache / "chunk_00000.pt").is_file()
    assert torch.equal(
        torch.load(cache / "chunk_00001.pt", weights_only=True)["values"], stale["values"]
    )
    # another seed is another computation: the cache under another key is not reused
    other = chunked_shapley(
        game, "kernel_shap", threshold=0.05, seed=2, cache_dir=cache, key="k2", chunk_rows=64
    )
    assert not torch.equal(other.values, truth.values)
