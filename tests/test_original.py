import numpy as np
import pytest
import torch

from simshap.data import load_tabular
from simshap.original import (
    fit_original_model,
    load_original_model,
    predict_probabilities,
    save_original_model,
)


@pytest.fixture(scope="module")
def fitted():
    data = load_tabular("breast_cancer", seed=0)
    return data, fit_original_model(data, seed=0, n_jobs=1)


def test_lightgbm_accuracy_and_early_stopping(fitted):
    data, model = fitted
    assert model.learning_rate == 0.05 and model.num_leaves == 10
    assert 0 < model.best_iteration_ < model.n_estimators  # early stopping kicked in
    assert (model.predict(data.x_test) == data.y_test).mean() > 0.9


def test_training_is_reproducible(fitted):
    data, model = fitted
    again = fit_original_model(data, seed=0, n_jobs=1)
    x = data.x_test
    np.testing.assert_array_equal(model.predict_proba(x), again.predict_proba(x))


def test_save_load_identical_predictions(fitted, tmp_path):
    data, model = fitted
    path = save_original_model(model, tmp_path / "sub" / "model.txt")
    assert path.read_text().startswith("tree")  # LightGBM's text format, not a pickle
    loaded = load_original_model(path)
    x = np.concatenate([data.x_val, data.x_test])
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="shape"):
        loaded.predict_proba(x[:, :5])


def test_load_missing_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="fit_original_model"):
        load_original_model(tmp_path / "nope.txt")


def test_predict_probabilities_reads_every_model_kind(fitted):
    data, model = fitted
    x = data.x_test[:5]
    want = model.predict_proba(x)
    np.testing.assert_allclose(predict_probabilities(model, x), want)
    np.testing.assert_allclose(predict_probabilities(model.booster_, x), want, rtol=1e-6)
    np.testing.assert_allclose(predict_probabilities(lambda r: model.predict_proba(r)[:, 1], x),
                               want, rtol=1e-12)
    net = torch.nn.Linear(30, 3)
    out = predict_probabilities(net, x)
    assert out.shape == (5, 3) and np.allclose(out.sum(1), 1)
    with pytest.raises(ValueError, match="not probabilities"):
        predict_probabilities(lambda r: np.full((len(r), 2), 2.0), x)
