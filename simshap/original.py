"""The original tabular model: a LightGBM classifier, as in the paper and in FastSHAP.

``fit_original_model`` trains it with early stopping on the validation split;
``save_original_model`` / ``load_original_model`` store it in LightGBM's own text format (no
pickle); :func:`predict_probabilities` reads class probabilities off any user model (scikit-learn,
LightGBM, torch, a callable) on raw rows.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np

from simshap.data.tabular import TabularData
from simshap.errors import MissingFileError, UserError

__all__ = [
    "LEARNING_RATE",
    "NUM_LEAVES",
    "LoadedLightGBMClassifier",
    "fit_original_model",
    "load_original_model",
    "load_user_model",
    "predict_probabilities",
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
) -> lightgbm.LGBMClassifier:
    """Train the LightGBM classifier on ``data``'s (standardized) training split.

    Learning rate 0.05 and 10 leaves; boosting stops when the validation log-loss has not
    improved for ``early_stopping_rounds`` rounds and keeps the best iteration.

    Args:
        data: the split data set (its ``x_train``/``x_val`` are what the model sees; trees do
            not care about the standardization, and the explainers share the same inputs).
        seed: LightGBM's random seed (training is deterministic for a seed).
        max_rounds: upper bound on boosting rounds.
        early_stopping_rounds: patience on the validation split.
        n_jobs: LightGBM threads (default: LightGBM's, i.e. OpenMP's).

    Returns:
        The fitted ``lightgbm.LGBMClassifier`` (``best_iteration_`` set).

    """
    if not isinstance(data, TabularData):
        raise TypeError(f"data must be a TabularData (load_tabular(...)), got {type(data)!r}")
    kwargs: dict[str, Any] = {} if n_jobs is None else {"n_jobs": n_jobs}
    model = lightgbm.LGBMClassifier(
        learning_rate=LEARNING_RATE,
        num_leaves=NUM_LEAVES,
        n_estimators=max_rounds,
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        **kwargs,
    )
    # LightGBM >= 4.7 takes eval_X/eval_y (eval_set is deprecated there); older ones eval_set
    if "eval_X" in inspect.signature(model.fit).parameters:
        evaluation: dict[str, Any] = {"eval_X": (data.x_val,), "eval_y": (data.y_val,)}
    else:
        evaluation = {"eval_set": [(data.x_val, data.y_val)]}
    model.fit(
        data.x_train,
        data.y_train,
        callbacks=[lightgbm.early_stopping(early_stopping_rounds, verbose=False)],
        **evaluation,
    )
    return model


class LoadedLightGBMClassifier:
    """A LightGBM classifier read back from its text model file.

    Offers the ``predict_proba`` / ``predict`` interface of ``lightgbm.LGBMClassifier`` (classes
    ``0..C-1``), so it plugs into :class:`simshap.games.values.SklearnModel`.

    Args:
        booster: the ``lightgbm.Booster`` read from the file.

    """

    def __init__(self, booster: lightgbm.Booster) -> None:
        self.booster_ = booster
        num_class = int(booster.params.get("num_class", 1) or 1)
        objective = str(booster.params.get("objective", ""))
        self.n_classes_ = 2 if num_class == 1 and "multiclass" not in objective else num_class
        self.classes_ = np.arange(self.n_classes_)
        self.n_features_in_ = booster.num_feature()
        self.feature_name_ = booster.feature_name()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, C)`` for features ``(N, d)``."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise UserError(
                f"expected features of shape (N, {self.n_features_in_}), got {x.shape}"
            )
        p = np.asarray(self.booster_.predict(x))
        if p.ndim == 1:  # binary: probability of class 1
            p = np.stack([1.0 - p, p], axis=1)
        return p

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted classes ``(N,)``."""
        return self.predict_proba(x).argmax(1)


def save_original_model(
    model: lightgbm.LGBMClassifier | LoadedLightGBMClassifier, path: str | os.PathLike[str]
) -> Path:
    """Write the model in LightGBM's text format (best iteration only).

    Args:
        model: a fitted classifier (from :func:`fit_original_model` or :func:`load_original_model`).
        path: destination file (conventionally ``.txt``); parent folders are created.

    Returns:
        The path written.

    """
    booster = getattr(model, "booster_", None)
    if booster is None:
        raise TypeError(f"expected a fitted LightGBM classifier, got {type(model).__name__}")
    classes = np.asarray(model.classes_)
    if not np.array_equal(classes, np.arange(len(classes))):
        raise UserError(
            f"the model's classes must be 0..C-1 to round-trip through the text format, got "
            f"{classes.tolist()}; encode the labels as integers first"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    best = getattr(model, "best_iteration_", None)
    booster.save_model(str(path), num_iteration=best if best else None)
    return path


def load_original_model(path: str | os.PathLike[str]) -> LoadedLightGBMClassifier:
    """Read a model written by :func:`save_original_model`.

    Args:
        path: the LightGBM text model file.

    Returns:
        A :class:`LoadedLightGBMClassifier` with the same predictions as the saved model.

    Raises:
        FileNotFoundError: ``path`` does not exist.

    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"no LightGBM model file at {path}; fit one with fit_original_model() and "
            "save_original_model()"
        )
    return LoadedLightGBMClassifier(lightgbm.Booster(model_file=str(path)))


def predict_probabilities(model: Any, rows: Any) -> np.ndarray:
    """Class probabilities ``(n, C)`` of any user model on raw rows.

    Accepts a scikit-learn or LightGBM estimator (``predict_proba``; a DataFrame stays a
    DataFrame, so pipelines with their own encoders work), a ``lightgbm.Booster``, a torch
    ``nn.Module`` returning logits, or any callable returning probabilities. A single score
    column ``(n,)`` is read as the positive-class probability of a binary model.

    Args:
        model: the user's trained model.
        rows: raw rows (DataFrame or array).

    Returns:
        ``float64`` probabilities ``(n, C)`` whose rows sum to 1.
    """
    import torch

    if hasattr(model, "predict_proba"):
        out = np.asarray(model.predict_proba(rows), dtype=np.float64)
    elif isinstance(model, lightgbm.Booster):
        out = np.asarray(model.predict(rows), dtype=np.float64)
    elif isinstance(model, torch.nn.Module):
        x = torch.as_tensor(np.asarray(rows, dtype=np.float32))
        with torch.no_grad():
            out = torch.softmax(model(x).float(), dim=-1).double().numpy()
    elif callable(model):
        out = np.asarray(model(rows), dtype=np.float64)
    else:
        raise UserError(
            f"cannot get probabilities from a {type(model).__name__}: pass an estimator with "
            "predict_proba, a lightgbm.Booster, a torch module or a callable"
        )
    if out.ndim == 1:
        out = np.stack([1.0 - out, out], axis=1)
    if out.ndim != 2 or out.shape[0] != len(rows):
        raise UserError(f"the model returned shape {out.shape} for {len(rows)} rows; expected "
                        "(n, classes) probabilities")
    valid = np.isfinite(out).all() and (out >= -1e-6).all()
    if not (valid and np.allclose(out.sum(1), 1, atol=1e-4)):
        raise UserError("the model's outputs are not probabilities (non-negative, rows summing "
                        "to 1); wrap it so it returns predict_proba-style output")
    return out


def load_user_model(path: str | os.PathLike[str]) -> Any:
    """Load a user's trained model: a LightGBM text model, or a joblib / pickle estimator.

    Pickled estimators run code when loaded: only load files you trust (your own).

    Args:
        path: ``.txt`` (LightGBM ``Booster.save_model``), ``.joblib``, ``.pkl`` or ``.pickle``.

    Returns:
        The model, ready for :func:`predict_probabilities`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"model file {path} not found; check model.path")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return lightgbm.Booster(model_file=str(path))
    if suffix in (".joblib", ".pkl", ".pickle"):
        import joblib

        return joblib.load(path)
    raise UserError(f"{path}: unsupported model file {suffix!r}; use a LightGBM .txt model or a "
                    "joblib/pickle scikit-learn estimator")
