import numpy as np
import pytest
import torch

from simshap.data import load_tabular
from simshap.games import BaselineGame, FeatureGrouping, exact_shapley
from simshap.original import (
    fit_original_model,
    load_original_model,
    original_torch_model,
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


def test_torch_wrapper_fits_game_contract(fitted):
    data, model = fitted
    f = original_torch_model(model)
    x = torch.from_numpy(data.x_test[:3])
    out = f(x)
    assert out.shape == (3, 2) and out.dtype == torch.float32
    torch.testing.assert_close(out.sum(1), torch.ones(3))
    # the wrapper drives a real game: 6 players = groups of 5 features, baseline at the mean
    groups = FeatureGrouping([list(range(i, i + 5)) for i in range(0, 30, 5)])
    game = BaselineGame(f, x, torch.zeros(30), groups=groups, batch_size=512)
    phi = exact_shapley(game).values
    v0, v1 = game.empty_and_full()
    assert phi.shape == (3, 6, 2)
    torch.testing.assert_close(phi.sum(1), v1 - v0, atol=1e-5, rtol=0)
    assert phi.abs().max() > 1e-3
