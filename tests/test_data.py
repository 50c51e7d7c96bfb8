from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from simshap.data import (
    TABULAR_DATASETS,
    TabularDataModule,
    load_raw,
    load_tabular,
    resolve_data_dir,
)


def _need(data_dir: Path, name: str) -> Path:
    path = data_dir / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {data_dir} (set SIMSHAP_DATA to its folder)")
    return path


# --------------------------------------------------------------------------- tabular


def test_breast_cancer_split_shapes_and_standardization():
    data = load_tabular("breast_cancer", seed=0)
    n = len(data.y_train) + len(data.y_val) + len(data.y_test)
    assert n == 569 and data.n_features == 30 and data.n_classes == 2
    assert abs(len(data.y_test) / n - 0.1) < 0.01 and abs(len(data.y_val) / n - 0.1) < 0.01
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), 30)
    # train-only statistics: the train split is exactly centred/scaled, the others are not
    np.testing.assert_allclose(data.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(0), 1.0, atol=1e-4)
    np.testing.assert_allclose(data.mean, data.raw_train.mean(0))
    assert np.abs(data.x_test.mean(0)).max() > 1e-3
    np.testing.assert_allclose(data.standardize(data.raw_test), data.x_test, atol=1e-6)
    np.testing.assert_allclose(data.unstandardize(data.x_val), data.raw_val, rtol=1e-5, atol=1e-4)


def test_split_reproducible_for_a_seed_and_different_across_seeds():
    a, b = load_tabular("breast_cancer", seed=3), load_tabular("breast_cancer", seed=3)
    c = load_tabular("breast_cancer", seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.raw_test, c.raw_test)
    # the three splits partition the data set
    raw, _ = load_raw("breast_cancer")
    together = np.concatenate([a.raw_train, a.raw_val, a.raw_test])
    assert sorted(map(tuple, together)) == sorted(map(tuple, raw.to_numpy()))


def test_census_twelve_features_and_label_rate(data_dir):
    _need(data_dir, "adult.data")
    x, y = load_raw("census", data_dir=data_dir)
    assert x.shape == (32561, 12) and y.shape == (32561,) and y.dtype == np.int64
    assert "fnlwgt" not in x.columns and "Education" not in x.columns
    assert 0.22 < y.mean() < 0.26  # ~24% earn >50K in adult.data
    data = load_tabular("census", data_dir=data_dir)
    assert data.n_features == 12
    assert [data.feature_names[i] for i in data.categorical] == [
        "Workclass", "Marital Status", "Occupation", "Relationship", "Race", "Sex", "Country"
    ]
    # categoricals are integer codes; the stratified split keeps the label rate
    raw_cat = data.raw_train[:, data.categorical]
    np.testing.assert_array_equal(raw_cat, np.round(raw_cat))
    assert raw_cat.min() >= 0
    assert abs(data.y_test.mean() - y.mean()) < 0.01


def test_news_drops_url_and_timedelta(data_dir):
    path = _need(data_dir, "OnlineNewsPopularity-head.csv")
    x, y = load_raw("news", data_dir=data_dir)
    assert x.shape[1] == 58
    assert not {"url", "timedelta", "shares"} & set(x.columns)
    assert all(c == c.strip() for c in x.columns)
    shares = pd.read_csv(path, skipinitialspace=True)["shares"].to_numpy()
    np.testing.assert_array_equal(y, (shares > 1400).astype(np.int64))


def test_bankruptcy_parses_uci_layout(tmp_path):
    rng = np.random.default_rng(0)
    header = ["Bankrupt?"] + [f" Feature {i}" for i in range(95)]
    values = rng.random((40, 95))
    labels = np.r_[np.ones(10, int), np.zeros(30, int)]
    frame = pd.DataFrame(values, columns=header[1:])
    frame.insert(0, "Bankrupt?", labels)
    frame.to_csv(tmp_path / "data.csv", index=False)
    x, y = load_raw("bankruptcy", data_dir=tmp_path, download=False)
    assert x.shape == (40, 95) and x.columns[0] == "Feature 0"
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x.to_numpy(), values)


@pytest.mark.parametrize(
    "name, filename", [("census", "adult.data"), ("news", "OnlineNews"), ("bankruptcy", "data.csv")]
)
def test_missing_file_names_file_and_folder(tmp_path, name, filename):
    with pytest.raises(FileNotFoundError) as err:
        load_tabular(name, data_dir=tmp_path, download=False)
    assert filename in str(err.value) and str(tmp_path) in str(err.value)
    assert "archive.ics.uci.edu" in str(err.value)


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("SIMSHAP_DATA", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir("/somewhere") == Path("/somewhere")
    monkeypatch.delenv("SIMSHAP_DATA")
    assert resolve_data_dir() == Path.home() / ".cache" / "simshap"


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="available") as err:
        load_raw("iris")
    assert all(n in str(err.value) for n in TABULAR_DATASETS)


def test_tabular_datamodule_batches():
    data = load_tabular("breast_cancer", seed=0)
    dm = TabularDataModule(data, batch_size=64)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 30) and x.dtype == torch.float32 and y.dtype == torch.int64
    again, _ = next(iter(TabularDataModule(data, batch_size=64).train_dataloader()))
    torch.testing.assert_close(x, again)  # seeded shuffling
    val = torch.cat([b[0] for b in dm.val_dataloader()])
    torch.testing.assert_close(val, torch.from_numpy(data.x_val))
    assert sum(len(b[1]) for b in dm.test_dataloader()) == len(data.y_test)
