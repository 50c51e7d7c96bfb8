"""The one call: ``simshap.fit(model, X)`` -> an explainer of the model's predictions.

It runs the same stages as ``simshap run`` (with the same defaults, :mod:`simshap.runs.config`) on
the user's model and rows, in memory: it makes its own validation split, fits the preprocessing
(strings, missing values, categories), trains the surrogate (for ``game="surrogate"``) and the
explainer, says how faithful the surrogate is and how accurate the explainer is (as "about as
accurate as KernelSHAP at k evaluations", with a warning and the remedies when it is worse than
KernelSHAP at 512), and returns the explainer with the model attached::

    explainer = simshap.fit(model, X)
    sv = explainer(X_new)          # ShapleyValues, additive: base + Σφ = prediction
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simshap.amortized.accuracy import accuracy_report, warn_accuracy
from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.io import load_explainer
from simshap.data.tabular import from_frame
from simshap.errors import UserError
from simshap.models.adapter import ModelAdapter
from simshap.runs.config import TABULAR_DEFAULTS, validate_config
from simshap.runs.config_files import merge_config
from simshap.runs.folder import lock_folder
from simshap.runs.tabular import TabularRun

__all__ = ["fit"]

METHODS = ("simshap", "fastshap", "labels")


def _frame(x: Any) -> pd.DataFrame:
    if isinstance(x, pd.DataFrame):
        return x.reset_index(drop=True)
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if arr.ndim != 2:
        raise UserError(f"X must be a table of rows (n, d), got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])]).infer_objects()


def fit(
    model: Any,
    X: Any,
    y: Any = None,
    *,
    task: str = "auto",
    output: str = "auto",
    link: str = "identity",
    game: str = "surrogate",
    method: str = "simshap",
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    accelerator: str | None = None,
    **config: Any,
) -> AmortizedExplainer:
    """Train an amortized explainer of ``model`` on the rows ``X``, in one call.

    Args:
        model: any model :class:`~simshap.models.adapter.ModelAdapter` takes (scikit-learn
            estimator or Pipeline, LightGBM, XGBoost, torch module, callable); it sees the rows
            as given.
        X: the rows (a DataFrame with strings and NaN, or an array); a validation split is taken
            from them.
        y: optional labels (they name the classes and resolve ``task="auto"``).
        task: ``"auto"``, ``"classification"`` or ``"regression"``.
        output: what the model returns: ``"auto"``, ``"probability"``, ``"logit"``, ``"raw"``.
        link: ``"identity"`` (probabilities, predictions) or ``"logit"`` (log-odds).
        game: ``"surrogate"`` (the papers' game of a trained surrogate), ``"marginal"`` (the
            model's interventional game, as ``shap.KernelExplainer``'s; no surrogate) or
            ``"baseline"``.
        method: ``"simshap"`` (default), ``"fastshap"`` or ``"labels"``.
        seed: seed of the split, the initializations and the coalitions.
        out_dir: folder for the checkpoints (rerunning with it resumes); default a temporary one,
            removed when the call returns.
        progress: show progress bars (default: when stderr is a terminal).
        accelerator: Lightning accelerator (``"cpu"``, ``"gpu"``; default ``"auto"``).
        **config: any section of the run config (:class:`~simshap.runs.config.TabularConfig`) as a
            mapping, with the same keys and defaults as ``simshap run``: ``surrogate={...}``,
            ``explainer={...}``, ``trainer={...}``, ``data={"allow_missing": True}``,
            ``background_size=100``.

    Returns:
        The trained explainer, with the model attached: ``explainer(rows)`` returns
        :class:`~simshap.ShapleyValues` whose ``base + Σφ`` equals ``prediction``.
    """
    if method not in METHODS:
        raise UserError(f"method must be one of {METHODS}, got {method!r}")
    trainer = dict(config.pop("trainer", {}) or {})
    if accelerator is not None:
        trainer["accelerator"] = accelerator
    trainer.setdefault("progress_bar", sys.stderr.isatty() if progress is None else progress)
    user = {
        "dataset": "table",
        "seed": seed,
        "task": task,
        "game": game,
        "model": {"output": output, "link": link},
        "trainer": trainer,
        **config,
    }
    explainer_cfg = dict(user.get("explainer") or {})
    explainer_cfg["methods"] = [method]
    user["explainer"] = explainer_cfg
    cfg = validate_config(merge_config(TABULAR_DEFAULTS, user))
    frame = _frame(X)
    adapter = ModelAdapter(
        model,
        frame[:256] if isinstance(X, pd.DataFrame) else X[:256],
        task=task,
        output=output,
        link=link,
        y=y,
    )
    labels = y if y is not None else _predicted(adapter, X)
    val = min(0.25, max(0.1, 32 / max(len(frame), 1)))
    data = from_frame(
        frame,
        labels,
        "table",
        adapter.class_names[0],
        seed,
        adapter.task,
        cfg["data"]["allow_missing"],
        cfg["data"]["unseen_categories"],
        test_size=0.0,
        val_size=val,
        class_names=adapter.class_names,
    )
    if not isinstance(X, pd.DataFrame):  # the model takes arrays: give it arrays
        adapter.columns = adapter.dtypes = None
    with contextlib.ExitStack() as stack:
        # without out_dir the checkpoints live in a temporary folder, removed once the trained
        # explainer is in memory (about 14 MB per call otherwise left behind)
        folder = (
            Path(out_dir)
            if out_dir is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="simshap-")))
        )
        with lock_folder(folder):
            run = TabularRun(folder, cfg, data=data, adapter=adapter)
            if run.start(overwrite=False):
                print(f"[simshap] resuming {folder}", flush=True)
            for stage, _, compute in run.stages():
                if not run.done(stage):
                    compute()
            explainer = load_explainer(run.path(f"{method}.pt")).attach_model(adapter)
    report = accuracy_report(explainer, data.raw_val, seed=seed)
    explainer.hparams.model_info = {**dict(explainer.hparams.model_info or {}), "accuracy": report}
    warn_accuracy(report)
    return explainer


def _predicted(adapter: ModelAdapter, x: Any) -> np.ndarray:
    """Labels for the split when none are given: the model's own classes (or its prediction)."""
    out = adapter(x)
    if adapter.task == "regression":
        return out[:, 0]
    return np.asarray(adapter.class_names, dtype=object)[out.argmax(1)]
