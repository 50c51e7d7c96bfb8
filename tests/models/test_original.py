import numpy as np
import pytest

from simshap.data import load_tabular
from simshap.errors import UserError
from simshap.models.original import (
    fit_original_model,
    load_original_model,
    load_user_model,
    save_original_model,
)


@pytest.fixture(scope="module")
def fitted():
    data = load_tabular("breast_cancer", seed=0)
    return data, fit_original_model(data, seed=0, n_jobs=1)


def _encoded(data, split):
    return data.preprocessor.encode(getattr(data, f"raw_{split}"))


def test_lightgbm_accuracy_and_early_stopping(fitted):
    data, model = fitted
    assert model.learning_rate == 0.05 and model.num_leaves == 10
    assert 0 < model.best_iteration_ < model.n_estimators  # early stopping kicked in
    assert (model.predict(_encoded(data, "test")) == data.y_test).mean() > 0.9


def test_training_is_reproducible(fitted):
    data, model = fitted
    again = fit_original_model(data, seed=0, n_jobs=1)
    x = _encoded(data, "test")
    np.testing.assert_array_equal(model.predict_proba(x), again.predict_proba(x))


def test_save_load_identical_predictions_on_raw_rows(fitted, tmp_path):
    data, model = fitted
    path = save_original_model(model, tmp_path / "sub" / "model.txt")
    assert path.read_text().startswith("tree")  # LightGBM's text format, not a pickle
    loaded = load_original_model(path, data.preprocessor)
    np.testing.assert_array_equal(
        loaded.predict_proba(data.raw_test), model.predict_proba(_encoded(data, "test"))
    )
    np.testing.assert_array_equal(
        loaded.predict(data.raw_test),
        data.raw_test.pipe(lambda r: model.predict(data.preprocessor.encode(r))),
    )
    with pytest.raises(UserError, match="columns"):
        loaded.predict_proba(data.raw_test.iloc[:, :5])


def test_a_regression_is_a_regressor(tmp_path):
    data = load_tabular("diabetes", seed=0)
    assert data.task == "regression" and data.y_train.dtype == np.float64
    model = fit_original_model(data, seed=0, n_jobs=1)
    loaded = load_original_model(save_original_model(model, tmp_path / "m.txt"), data.preprocessor)
    assert not hasattr(loaded, "predict_proba") and loaded._estimator_type == "regressor"
    np.testing.assert_allclose(loaded.predict(data.raw_test), model.predict(_encoded(data, "test")))


def test_load_missing_or_bad_files_is_clear(tmp_path):
    data = load_tabular("breast_cancer", seed=0)
    with pytest.raises(FileNotFoundError, match="fit_original_model"):
        load_original_model(tmp_path / "nope.txt", data.preprocessor)
    bad = tmp_path / "bad.txt"
    bad.write_text("not a model")
    with pytest.raises(UserError, match="not a readable LightGBM"):
        load_user_model(bad)
    with pytest.raises(UserError, match="unsupported model file"):
        load_user_model(tmp_path.joinpath("m.onnx").write_bytes(b"x") and tmp_path / "m.onnx")
