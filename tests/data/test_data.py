from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from simshap.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    TABULAR_DATASETS,
    CIFAR10DataModule,
    FashionMNISTDataModule,
    load_cifar10_arrays,
    load_fashion_mnist_arrays,
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
    # the raw splits are the rows as read, and the class names are the data set's
    assert list(data.raw_val.columns) == data.feature_names
    assert data.class_names == ["malignant", "benign"]


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
        "Workclass",
        "Marital Status",
        "Occupation",
        "Relationship",
        "Race",
        "Sex",
        "Country",
    ]
    # categoricals are integer codes; the stratified split keeps the label rate
    raw_cat = data.raw_train.to_numpy()[:, data.categorical]
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


def test_user_csv_with_strings_and_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "colour": rng.choice(["red", "green", "blue"], n),
            "income": rng.normal(50.0, 10.0, n),
        }
    )
    frame["label"] = np.where(frame["income"] > 50, "rich", "poor")
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    data = load_tabular({"path": str(path), "target": "label"}, seed=0)
    assert data.feature_names == ["age", "colour", "income"]
    assert data.class_names == ["poor", "rich"] and data.n_classes == 2
    assert data.categorical == [1] and data.preprocessor.categories["colour"] == [
        "blue",
        "green",
        "red",
    ]
    # raw rows (strings included) standardize to exactly the training features
    np.testing.assert_allclose(data.standardize(data.raw_test), data.x_test)
    with pytest.raises(ValueError, match="target column 'lable' not found"):
        load_tabular({"path": str(path), "target": "lable"})


# --------------------------------------------------------------------------- images


def test_cifar_subset_datamodule(data_dir):
    _need(data_dir, "cifar10-subset.npz")
    dm = CIFAR10DataModule(source="subset", data_dir=data_dir, batch_size=32, seed=0)
    x_tr, y_tr = dm.arrays("train")
    x_val, y_val = dm.arrays("val")
    x_te, y_te = dm.arrays("test")
    assert len(y_tr) + len(y_val) == 5085 and len(y_val) == round(0.1 * 5085)
    assert x_te.shape == (1017, 3, 32, 32) and x_tr.dtype == torch.uint8
    assert y_te[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the official test labels
    # a seeded, disjoint validation split
    other = CIFAR10DataModule(source="subset", data_dir=data_dir, seed=0)
    torch.testing.assert_close(other.arrays("val")[0], x_val)
    assert not torch.equal(CIFAR10DataModule("subset", data_dir, seed=1).arrays("val")[1], y_val)

    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    # validation batches are the normalized images, in order, un-augmented
    xv, yv = next(iter(dm.val_dataloader()))
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(xv, (x_val[:32].float() / 255 - mean) / std)
    torch.testing.assert_close(yv, y_val[:32])
    # the standard constants do normalize real CIFAR images
    xt, yt = dm.test_tensors()
    assert xt.shape == (1017, 3, 32, 32) and torch.equal(yt, y_te)
    assert xt.mean((0, 2, 3)).abs().max() < 0.1
    assert (xt.std((0, 2, 3)) - 1).abs().max() < 0.1
    torch.testing.assert_close(dm.denormalize(xt[:4]), x_te[:4].float() / 255)


def test_cifar_training_augmentation_crops_and_flips(data_dir):
    _need(data_dir, "cifar10-subset.npz")
    dm = CIFAR10DataModule(source="subset", data_dir=data_dir, batch_size=16, seed=0)
    dataset = dm.train_dataloader().dataset
    raw = dm.arrays("train")[0][7]
    padded = torch.nn.functional.pad(raw, (4, 4, 4, 4))
    views = {}
    for dy in range(9):
        for dx in range(9):
            crop = padded[:, dy : dy + 32, dx : dx + 32]
            views[(dy, dx, False)] = dm.normalize(crop[None])[0]
            views[(dy, dx, True)] = dm.normalize(crop.flip(-1)[None])[0]
    seen = set()
    for _ in range(40):
        x, _ = dataset[7]
        # every sample is a crop (shift <= 4) of the zero-padded image, maybe flipped
        match = [k for k, v in views.items() if torch.allclose(x, v)]
        assert match, "augmented image is not a padded crop / flip of the original"
        seen.add(match[0])
    assert len({k[:2] for k in seen}) > 5 and {k[2] for k in seen} == {False, True}
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32)


def test_cifar_missing_files_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10-subset.npz"):
        CIFAR10DataModule(source="subset", data_dir=tmp_path).setup()
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10_arrays("torchvision", data_dir=tmp_path, download=False)
    with pytest.raises(ValueError, match="source"):
        CIFAR10DataModule(source="imagenet")


def test_fashion_mnist_padded_to_32(tmp_path, monkeypatch):
    import simshap.data.images as images

    try:
        x_tr, y_tr, x_te, y_te = load_fashion_mnist_arrays(tmp_path)
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST idx files not installed (apt-get install dataset-fashion-mnist)")
    assert x_tr.shape == (60000, 1, 32, 32) and x_te.shape == (10000, 1, 32, 32)
    assert y_tr.dtype == torch.int64 and set(y_te.unique().tolist()) == set(range(10))
    # two zero pixels on every side, the original 28x28 image inside
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x_te[:, 0][:, border] == 0).all() and x_te[:, 0, 2:30, 2:30].float().mean() > 50
    dm = FashionMNISTDataModule(data_dir=tmp_path, batch_size=8)
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 32, 32)
    # a missing folder gives an error naming the files and the apt package
    monkeypatch.setattr(images, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist_arrays(tmp_path)
