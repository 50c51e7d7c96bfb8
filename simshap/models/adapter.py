"""The user's model as one contract: raw rows in, the explained quantity ``(n, C)`` out.

:class:`ModelAdapter` wraps a scikit-learn estimator or Pipeline, a LightGBM model, an XGBoost
model, a torch module or a plain callable, and says what is explained:

* ``task``: ``"classification"`` or ``"regression"`` (``"auto"``: from the model's type, else
  from the labels ``y``, else from the shape of its output);
* ``output``: what the model returns: ``"probability"``, ``"logit"`` or ``"raw"`` (``"auto"``:
  ``predict_proba`` gives probabilities; a torch module's or callable's ``(n, C >= 2)`` output
  is probabilities when every row is non-negative and sums to 1, else logits; a regressor's is
  raw);
* ``link``: what is explained: ``"identity"`` (a classifier's class probabilities, a regressor's
  prediction; the default) or ``"logit"`` (a classifier's log-odds, as shap's ``link="logit"``).

A classifier is always explained over C >= 2 classes: a single column (a positive-class
probability or logit, the BCEWithLogits convention) becomes ``[1 - p, p]`` (or ``[-z, z]`` in
log-odds). Nothing is ever softmaxed across a batch or over one column. A model output whose
meaning cannot be told from its shape and values is a :class:`~simshap.errors.UserError` naming
the argument (``task`` or ``output``) that resolves it.

The model always receives rows as the user gave them (a DataFrame with its columns when the
rows came as one, NaN and strings included); only torch modules receive a float32 tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from simshap.data.user_table import AUTO_MAX_CLASSES, infer_task_from_labels
from simshap.errors import UserError

__all__ = [
    "AUTO_MAX_CLASSES",
    "LINKS",
    "OUTPUTS",
    "TASKS",
    "ModelAdapter",
    "infer_task_from_labels",
]

TASKS = ("auto", "classification", "regression")
OUTPUTS = ("auto", "probability", "logit", "raw")
LINKS = ("identity", "logit")
#: the most classes a classification task may have (more is an error naming ``task``)
MAX_CLASSES = 1000
_EPS = 1e-12


def _numeric_or_object(rows: np.ndarray) -> np.ndarray:
    try:
        return rows.astype(np.float64)
    except (TypeError, ValueError):
        return rows


def _sklearn_kind(model: Any) -> str | None:
    """``"classifier"`` / ``"regressor"`` for a scikit-learn estimator (its tags), else None."""
    if not hasattr(model, "__sklearn_tags__"):
        return None
    try:
        return getattr(model.__sklearn_tags__(), "estimator_type", None)
    except Exception:  # an estimator whose tags need fitting or do not follow the protocol
        return None


def _is_torch_module(model: Any) -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(model, torch.nn.Module)


def _lightgbm_booster(model: Any) -> Any:
    try:
        import lightgbm
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        return None
    return model if isinstance(model, lightgbm.Booster) else None


def _xgboost_booster(model: Any) -> Any:
    mod = type(model).__module__
    return model if mod.startswith("xgboost") and type(model).__name__ == "Booster" else None


def _booster_task(model: Any) -> str | None:
    """The task a LightGBM / XGBoost booster's objective implies (``None``: unknown)."""
    if _lightgbm_booster(model) is not None:
        objective = str(model.params.get("objective", ""))
    elif _xgboost_booster(model) is not None:
        import json

        objective = json.loads(model.save_config())["learner"]["objective"]["name"]
    else:
        return None
    classes = (
        "binary",
        "multiclass",
        "softmax",
        "multiclassova",
        "cross_entropy",
        "xentropy",
        "binary:",
        "multi:",
    )
    return "classification" if objective.startswith(classes) else "regression"


class ModelAdapter:
    """A user's model, called on raw rows, returning the explained quantity ``(n, C)``.

    Args:
        model: scikit-learn estimator or Pipeline, LightGBM / XGBoost model (sklearn API or
            Booster), torch ``nn.Module``, or a callable on rows.
        sample: a few raw rows (DataFrame or array) used to resolve ``"auto"`` settings.
        task: ``"auto"``, ``"classification"`` or ``"regression"``.
        output: ``"auto"``, ``"probability"``, ``"logit"`` or ``"raw"``.
        link: ``"identity"`` or ``"logit"``.
        y: optional labels (resolve ``task`` and name the classes).
        class_names: optional names of the outputs (default: ``classes_``, the labels, or
            ``"0".."C-1"``; a regressor's output is named ``"prediction"``).
    """

    def __init__(
        self,
        model: Any,
        sample: Any,
        task: str = "auto",
        output: str = "auto",
        link: str = "identity",
        y: Any = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        for name, value, allowed in (
            ("task", task, TASKS),
            ("output", output, OUTPUTS),
            ("link", link, LINKS),
        ):
            if value not in allowed:
                raise UserError(f"{name} must be one of {allowed}, got {value!r}")
        if not callable(model) and not hasattr(model, "predict"):
            raise UserError(
                f"cannot explain a {type(model).__name__}: pass a fitted estimator "
                "(predict / predict_proba), a torch module or a callable"
            )
        self.model = model
        # how the model saw its rows: a DataFrame's columns and dtypes are restored on the rows
        # the games build (numpy arrays), so the model sees every row as it sees the user's
        self.columns = (
            [str(c) for c in sample.columns] if isinstance(sample, pd.DataFrame) else None
        )
        self.dtypes = dict(sample.dtypes) if isinstance(sample, pd.DataFrame) else None
        if _is_torch_module(model):
            model.eval()  # dropout and batch-norm statistics off: explain the model as it serves
        self.task = self._resolve_task(task, y, sample, output)
        if self.task == "regression" and link != "identity":
            raise UserError(
                "link='logit' explains a classifier's log-odds; a regression is "
                "explained on its own scale (link='identity')"
            )
        self.link = link
        raw = self._raw(sample)
        self.output = self._resolve_output(output, raw)
        self.num_outputs = self._convert(raw).shape[1]
        if self.task == "classification" and self.num_outputs > MAX_CLASSES:
            raise UserError(
                f"the model has {self.num_outputs} classes (over {MAX_CLASSES}); if "
                "it predicts a number, pass task='regression'"
            )
        self.class_names = self._names(class_names, y)

    # ------------------------------------------------------------------ resolving "auto"
    def _resolve_task(self, task: str, y: Any, sample: Any, output: str) -> str:
        if task != "auto":
            return task
        if output in ("probability", "logit"):
            return "classification"
        if output == "raw":
            return "regression"
        m = self.model
        if hasattr(m, "predict_proba"):
            return "classification"
        kind = getattr(m, "_estimator_type", None) or _sklearn_kind(m)
        if kind in ("classifier", "regressor"):
            return "classification" if kind == "classifier" else "regression"
        booster = _booster_task(m)
        if booster is not None:
            return booster
        if y is not None:
            return infer_task_from_labels(y)
        raw = self._raw(sample, task="unknown")
        if raw.ndim == 2 and raw.shape[1] >= 2:
            return "classification"
        raise UserError(
            f"the model returns one number per row ({len(raw)} rows in, {len(raw)} numbers "
            "out), which may be a "
            "regression or a binary classifier's probability or logit: pass output='logit' or "
            "output='probability' (a classifier), output='raw' or task='regression' (a "
            "regression), or the labels y"
        )

    def _resolve_output(self, output: str, raw: np.ndarray) -> str:
        probs_api = hasattr(self.model, "predict_proba") or (
            self.task == "classification" and _booster_task(self.model) == "classification"
        )
        if output == "auto":
            if self.task == "regression":
                output = "raw"
            elif probs_api:
                output = "probability"
            elif raw.ndim == 2 and raw.shape[1] >= 2:
                output = "probability" if self._rows_are_probabilities(raw) else "logit"
            elif np.any((raw < 0) | (raw > 1)):
                output = "logit"  # a probability never leaves [0, 1]
            else:
                raise UserError(
                    "the model returns one number per row in [0, 1], which may be a probability "
                    "or a logit: pass output='probability' or output='logit'"
                )
        if self.task == "regression" and output != "raw":
            raise UserError(
                f"a regression's output is 'raw' (its prediction), got output={output!r}"
            )
        if self.task == "classification" and output == "raw":
            raise UserError(
                "a classifier's output is 'probability' or 'logit', not 'raw'; for a "
                "model that predicts a number pass task='regression'"
            )
        if output == "probability":
            ok = (
                self._rows_are_probabilities(raw)
                if raw.ndim == 2 and raw.shape[1] >= 2
                else bool(np.all((raw >= -1e-6) & (raw <= 1 + 1e-6)))
            )
            if not ok:
                raise UserError(
                    "output='probability', but the model's outputs are not "
                    "probabilities (in [0, 1], rows summing to 1); pass "
                    "output='logit'"
                )
        return output

    @staticmethod
    def _rows_are_probabilities(raw: np.ndarray) -> bool:
        return bool(np.all(raw >= -1e-6) and np.allclose(raw.sum(1), 1.0, atol=1e-4))

    def _names(self, class_names: Sequence[str] | None, y: Any) -> list[str]:
        c = self.num_outputs
        if class_names is not None:
            names = [str(n) for n in class_names]
        elif self.task == "regression":
            names = ["prediction"] if c == 1 else [f"output_{i}" for i in range(c)]
        elif getattr(self.model, "classes_", None) is not None:
            names = [str(v) for v in np.asarray(self.model.classes_)]
        elif y is not None:
            names = [str(v) for v in sorted(pd.unique(pd.Series(np.asarray(y).ravel())), key=str)]
        else:
            names = [str(i) for i in range(c)]
        if len(names) != c:
            raise UserError(
                f"{len(names)} class names for a model with {c} outputs; pass "
                f"class_names with {c} names"
            )
        return names

    # ------------------------------------------------------------------ calling the model
    def _raw(self, rows: Any, task: str | None = None) -> np.ndarray:
        """What the model returns on ``rows``, as a float64 array ``(n,)`` or ``(n, k)``."""
        task = task or self.task
        m, n = self.model, len(rows)
        if task == "classification" and hasattr(m, "predict_proba"):
            out = m.predict_proba(rows)
        elif _is_torch_module(m):
            out = self._torch(rows)
        elif _xgboost_booster(m) is not None:
            import xgboost

            out = m.predict(xgboost.DMatrix(rows))
        elif _lightgbm_booster(m) is not None:
            out = m.predict(rows)
        elif hasattr(m, "predict") and not callable(m):
            if task == "classification":
                raise UserError(
                    f"{type(m).__name__} has no predict_proba, and its predict() gives labels, "
                    "not scores: explain a calibrated classifier (e.g. CalibratedClassifierCV), "
                    "or pass model=clf.decision_function with output='logit'"
                )
            out = m.predict(rows)
        elif hasattr(m, "predict") and task == "regression":
            out = m.predict(rows)
        elif callable(m):
            out = m(rows)
        else:
            out = m.predict(rows)
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(
                f"the model returned non-numbers ({type(out).__name__}); it must "
                "return numbers per row"
            ) from None
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim not in (1, 2) or arr.shape[0] != n:
            raise UserError(
                f"the model returned shape {arr.shape} for {n} rows; expected (n,) or (n, outputs)"
            )
        if not np.isfinite(arr).all():
            raise UserError("the model returned NaN or infinite values on these rows")
        return arr

    def _torch(self, rows: Any) -> Any:
        import torch

        try:
            x = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            raise UserError(
                "a torch module takes numeric rows; this table has strings: wrap "
                "the module in a callable that encodes them"
            ) from None
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            return self.model(torch.from_numpy(x).to(device)).float()

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        """The model's output -> the explained quantity ``(n, C)``."""
        if self.task == "regression":
            return raw[:, None] if raw.ndim == 1 else raw
        if raw.ndim == 1:  # one column: the positive class
            if self.output == "logit":
                z = raw
                if self.link == "logit":
                    return np.stack([-z, z], axis=1)
                p = 1.0 / (1.0 + np.exp(-z))
            else:
                p = raw
            probs = np.stack([1.0 - p, p], axis=1)
        elif self.output == "logit":
            if self.link == "logit":  # z_c - logsumexp_{j != c} z_j: exact, no rounded p
                c = raw.shape[1]
                others = np.where(np.eye(c, dtype=bool), -np.inf, raw[:, None, :])
                top = others.max(-1, keepdims=True)
                return raw - (top[..., 0] + np.log(np.exp(others - top).sum(-1)))
            z = raw - raw.max(1, keepdims=True)
            e = np.exp(z)
            probs = e / e.sum(1, keepdims=True)
        else:
            probs = raw
        if self.link == "logit":
            p = np.clip(probs, _EPS, 1.0 - _EPS)
            return np.log(p) - np.log1p(-p)
        return probs

    def __call__(self, rows: Any) -> np.ndarray:
        """The explained quantity on raw rows: ``float64 (n, C)``."""
        return self._convert(self._raw(rows))

    def frame(self, rows: np.ndarray) -> Any:
        """An ``(n, d)`` array of raw rows in the form the model was given rows in."""
        if self.columns is None:
            return rows if rows.dtype != object else _numeric_or_object(rows)
        frame = pd.DataFrame(rows, columns=self.columns)
        for name, dtype in (self.dtypes or {}).items():
            try:
                frame[name] = frame[name].astype(dtype)
            except (TypeError, ValueError):
                frame[name] = frame[name].infer_objects()
        return frame

    def on_array(self, rows: np.ndarray) -> np.ndarray:
        """The explained quantity on an ``(n, d)`` array of raw rows (what the games build)."""
        return self(self.frame(rows))

    def describe(self) -> dict[str, Any]:
        """What is explained, for results, saved explainers, exports and ``/metadata``."""
        if self.task == "regression":
            what = "the model's prediction"
        elif self.link == "logit":
            what = "the log-odds log(p / (1 - p)) of each class"
        else:
            what = "the probability of each class"
        return {
            "task": self.task,
            "output": self.output,
            "link": self.link,
            "explained": what,
            "class_names": list(self.class_names),
        }
