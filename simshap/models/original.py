"""The original tabular model: LightGBM trained here (as in the paper and FastSHAP), or the user's.

``fit_original_model`` trains a LightGBM classifier or regressor on the table's *encoded* rows
(numbers as given, category codes, NaN kept: LightGBM handles missing values natively) with
early stopping on the validation split; ``save_original_model`` / ``load_original_model`` store
it in LightGBM's own text format (no pickle). :class:`EncodedLightGBM` is the model as a user's
model would be: a function of raw rows (it encodes them itself). ``load_user_model`` reads a
user's model file (a LightGBM text file, or a joblib / pickle file, which runs code when loaded:
only load files you trust).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np

from simshap.data.preprocessing import Preprocessor
from simshap.data.tabular import TabularData
from simshap.errors import MissingFileError, UserError
from simshap.files import atomic_write

__all__ = [
    "LEARNING_RATE",
    "NUM_LEAVES",
    "EncodedLightGBM",
    "fit_original_model",
    "load_original_model",
    "load_user_model",
    "save_original_model",
]

LEARNING_RATE = 0.05
NUM_LEAVES = 10


def fit_original_model(
    data: TabularData,
    seed: int = 0,
    max_rounds: int = 5000,
    early_stopping_rounds: int = 50,
    n_jobs: int | None = None,
) -> lightgbm.LGBMModel:
    """Train LightGBM on ``data``'s encoded training rows (classifier or regressor by its task).

    Learning rate 0.05 and 10 leaves; boosting stops when the validation loss has not improved
    for ``early_stopping_rounds`` rounds and keeps the best iteration.

    Args:
        data: the split data set.
        seed: LightGBM's random seed (training is deterministic for a seed).
        max_rounds: upper bound on boosting rounds.
        early_stopping_rounds: patience on the validation split.
        n_jobs: LightGBM threads (default: LightGBM's, i.e. OpenMP's).

    Returns:
        The fitted ``lightgbm.LGBMClassifier`` or ``LGBMRegressor`` (``best_iteration_`` set).
    """
    if not isinstance(data, TabularData) or data.preprocessor is None:
        raise TypeError(f"data must be a TabularData (load_tabular(...)), got {type(data)!r}")
    kwargs: dict[str, Any] = {} if n_jobs is None else {"n_jobs": n_jobs}
    cls = lightgbm.LGBMRegressor if data.task == "regression" else lightgbm.LGBMClassifier
    model = cls(
        learning_rate=LEARNING_RATE,
        num_leaves=NUM_LEAVES,
        n_estimators=max_rounds,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        **kwargs,
    )
    prep = data.preprocessor
    x_train, x_val = prep.encode(data.raw_train), prep.encode(data.raw_val)
    # LightGBM >= 4.7 takes eval_X/eval_y (eval_set is deprecated there); older ones eval_set
    if "eval_X" in inspect.signature(model.fit).parameters:
        evaluation: dict[str, Any] = {"eval_X": (x_val,), "eval_y": (data.y_val,)}
    else:
        evaluation = {"eval_set": [(x_val, data.y_val)]}
    model.fit(
        x_train,
        data.y_train,
        callbacks=[lightgbm.early_stopping(early_stopping_rounds, verbose=False)],
        **evaluation,
    )
    return model


class EncodedLightGBM:
    """A LightGBM model of encoded rows, offered as a model of raw rows.

    It encodes raw rows with the table's :class:`Preprocessor` (category codes, NaN kept) and
    predicts with the booster: ``predict_proba`` for a classifier (classes ``0..C-1``),
    ``predict`` for a regressor, as scikit-learn's estimators do.

    Args:
        booster: the ``lightgbm.Booster``.
        preprocessor: the table's fitted preprocessing.
    """

    def __init__(self, booster: lightgbm.Booster, preprocessor: Preprocessor) -> None:
        self.booster_ = booster
        self.preprocessor = preprocessor
        objective = str(booster.params.get("objective", ""))
        self.task = (
            "classification" if objective.startswith(("binary", "multiclass")) else "regression"
        )
        self._estimator_type = "classifier" if self.task == "classification" else "regressor"
        if self.task == "classification":
            num_class = int(booster.params.get("num_class", 1) or 1)
            self.n_classes_ = 2 if num_class == 1 and "multiclass" not in objective else num_class
            self.classes_ = np.arange(self.n_classes_)

    def __getattr__(self, name: str) -> Any:
        if name == "predict_proba" and self.__dict__.get("task") == "classification":
            return self._predict_proba
        raise AttributeError(name)

    def _predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities ``(N, C)`` of raw rows."""
        p = np.asarray(self.booster_.predict(self.preprocessor.encode(rows)))
        return np.stack([1.0 - p, p], axis=1) if p.ndim == 1 else p

    def predict(self, rows: Any) -> np.ndarray:
        """Classes ``(N,)`` (classifier) or predictions (regressor) of raw rows."""
        if self.task == "classification":
            return self._predict_proba(rows).argmax(1)
        return np.asarray(self.booster_.predict(self.preprocessor.encode(rows)))


def save_original_model(model: lightgbm.LGBMModel, path: str | os.PathLike[str]) -> Path:
    """Write the model in LightGBM's text format (best iteration only), atomically.

    Args:
        model: a fitted model from :func:`fit_original_model`.
        path: destination file (conventionally ``.txt``); parent folders are created.

    Returns:
        The path written.
    """
    booster = getattr(model, "booster_", None)
    if booster is None:
        raise TypeError(f"expected a fitted LightGBM model, got {type(model).__name__}")
    best = getattr(model, "best_iteration_", None)
    text = booster.model_to_string(num_iteration=best if best else None)
    return atomic_write(path, text)


def load_original_model(
    path: str | os.PathLike[str], preprocessor: Preprocessor
) -> EncodedLightGBM:
    """Read a model written by :func:`save_original_model`, as a model of raw rows.

    Args:
        path: the LightGBM text model file.
        preprocessor: the table's fitted preprocessing (the model sees encoded rows).

    Returns:
        An :class:`EncodedLightGBM` with the same predictions as the saved model.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"no LightGBM model file at {path}; fit one with fit_original_model() and "
            "save_original_model()"
        )
    return EncodedLightGBM(_booster(path), preprocessor)


def _booster(path: Path) -> lightgbm.Booster:
    try:
        return lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as err:
        first = str(err).splitlines()[0][:120] if str(err) else "unreadable"
        raise UserError(f"{path} is not a readable LightGBM text model ({first})") from None


def load_user_model(path: str | os.PathLike[str]) -> Any:
    """Load a user's trained model: a LightGBM text model, or a joblib / pickle estimator.

    **Trusted files only.** A joblib / pickle file runs code when it is loaded, like
    ``joblib.load`` anywhere: give only model files you made yourself or trust. (Every file
    simshap writes and reads back itself is loaded weights-only; this is the one exception, as
    the user's own model cannot be stored otherwise.)

    Args:
        path: ``.txt`` (LightGBM ``Booster.save_model``), ``.joblib``, ``.pkl`` or ``.pickle``.

    Returns:
        The model, ready for :class:`~simshap.models.adapter.ModelAdapter`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"model file {path} not found; check model.path")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return _booster(path)
    if suffix in (".joblib", ".pkl", ".pickle"):
        import joblib

        return joblib.load(path)
    raise UserError(
        f"{path}: unsupported model file {suffix!r}; use a LightGBM .txt model or a "
        "joblib/pickle scikit-learn estimator"
    )
