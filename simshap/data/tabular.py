"""Tabular data split and standardized: named data sets or your own table.

:func:`load_tabular` loads a named data set (:mod:`simshap.data.tabular_sources`) or a user
table (:mod:`simshap.data.user_table`), splits it 80/10/10 (stratified, seeded) and fits the
raw-row :class:`~simshap.data.preprocessing.Preprocessor` on the training split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from simshap.data.preprocessing import Preprocessor
from simshap.data.tabular_sources import (
    CENSUS_CATEGORICAL,
    REGRESSION_DATASETS,
    TABULAR_DATASETS,
    load_raw,
    resolve_data_dir,
)
from simshap.data.user_table import encode_labels, infer_task_from_labels, read_table
from simshap.errors import UserError

__all__ = [
    "CLASS_NAMES",
    "TABULAR_DATASETS",
    "TabularData",
    "from_frame",
    "split_indices",
    "load_raw",
    "load_tabular",
    "resolve_data_dir",
]


# --------------------------------------------------------------------------- splits


@dataclass
class TabularData:
    """A tabular data set split 80/10/10, with the raw-row preprocessing fitted.

    Attributes:
        name: data set name.
        feature_names: column names, in order.
        categorical: indices of the categorical (string or integer-coded) columns.
        x_train, x_val, x_test: network inputs ``float32 (n, F)`` (standardized, missing
            indicators appended).
        y_train, y_val, y_test: ``int64`` class labels, or ``float64`` regression targets.
        mean, std: training mean and standard deviation per column of the encoded rows.
        n_classes: number of classes (1 for a regression).
        raw_train, raw_val, raw_test: the same splits as raw rows (DataFrames, as read).
        seed: the seed of the split.
        preprocessor: the fitted raw-row preprocessing (travels inside saved explainers).
        class_names: names of the classes (the target's name for a regression).
        task: ``"classification"`` or ``"regression"``.
    """

    name: str
    feature_names: list[str]
    categorical: list[int]
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_classes: int
    raw_train: pd.DataFrame = field(repr=False)
    raw_val: pd.DataFrame = field(repr=False)
    raw_test: pd.DataFrame = field(repr=False)
    seed: int = 0
    preprocessor: Preprocessor | None = field(default=None, repr=False)
    class_names: list[str] = field(default_factory=list)
    task: str = "classification"

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return len(self.feature_names)

    def standardize(self, raw: Any) -> np.ndarray:
        """Raw rows -> network inputs ``float32`` (see :class:`Preprocessor`)."""
        if self.preprocessor is None:
            raise UserError("this TabularData has no fitted preprocessing; use load_tabular")
        return self.preprocessor.transform(raw).numpy()


def split_indices(
    n: int, y: np.ndarray | None, seed: int, test_size: float = 0.1, val_size: float = 0.1
) -> tuple[np.ndarray, ...]:
    """Seeded train / validation / test split (stratified when every class has 10+ rows).

    The default is 80/10/10; ``test_size=0`` keeps no test rows (the one call ``simshap.fit``).
    """
    idx = np.arange(n)
    stratify = None
    if y is not None:
        counts = np.bincount(y)
        stratify = y if counts[counts > 0].min() >= 10 else None
    if test_size > 0:
        idx_rest, idx_test = train_test_split(
            idx, test_size=test_size, random_state=seed, stratify=stratify
        )
    else:
        idx_rest, idx_test = idx, idx[:0]
    idx_train, idx_val = train_test_split(
        idx_rest,
        test_size=val_size / (1 - test_size),
        random_state=seed,
        stratify=None if stratify is None else y[idx_rest],
    )
    return idx_train, idx_val, idx_test


#: the most classes a table's target may have as a classification (more: set task)
MAX_TABLE_CLASSES = 100

#: names of the classes of the named data sets (label values otherwise)
CLASS_NAMES = {
    "breast_cancer": ["malignant", "benign"],
    "census": ["<=50K", ">50K"],
    "news": ["<=1400 shares", ">1400 shares"],
    "bankruptcy": ["solvent", "bankrupt"],
    "wine": ["class_0", "class_1", "class_2"],
}


def load_tabular(
    name: str | dict[str, Any],
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    download: bool | None = None,
    task: str = "auto",
    allow_missing: bool = False,
    unseen_categories: str = "other",
) -> TabularData:
    """Load a tabular data set, split it 80/10/10 (seeded) and fit its preprocessing.

    Args:
        name: one of ``TABULAR_DATASETS`` (see :func:`load_raw`), or a user table
            ``{"path": "file.csv" | "file.parquet", "target": "column", "na_values": [...],
            "ignore": [...]}`` (strings, NaN and any target allowed).
        data_dir: folder holding the file (see :func:`resolve_data_dir`).
        seed: seed of the split; the same seed gives the same split.
        download: see :func:`load_raw`.
        task: ``"auto"`` (regression for a numeric target with many distinct values; see
            :func:`~simshap.data.user_table.infer_task_from_labels`), ``"classification"`` or
            ``"regression"``.
        allow_missing: accept missing values in every column.
        unseen_categories: ``"other"`` or ``"error"`` (see :class:`Preprocessor`).

    Returns:
        A :class:`TabularData`. Category lists and the columns that may be missing come from
        every row; the scaling and the constant columns from the training split.
    """
    class_names: list[str] | None = None
    if isinstance(name, dict):
        unknown = set(name) - {"path", "target", "na_values", "ignore"}
        if unknown or "path" not in name or "target" not in name:
            raise UserError(
                f"a user data set is {{path: file.csv or .parquet, target: column, na_values: "
                f"[...], ignore: [...]}}; got keys {sorted(name)}"
            )
        frame, labels = read_table(
            name["path"], name["target"], name.get("na_values"), name.get("ignore")
        )
        label = Path(str(name["path"])).stem
        target_name = str(name["target"])
        if task == "auto":
            task = infer_task_from_labels(labels)
    else:
        frame, labels = load_raw(name, data_dir, download)
        label, target_name = name, "target"
        class_names = CLASS_NAMES.get(name)
        if task == "auto":
            task = "regression" if name in REGRESSION_DATASETS else "classification"
    return from_frame(
        frame,
        labels,
        label,
        target_name,
        seed,
        task,
        allow_missing,
        unseen_categories,
        class_names=class_names,
        census=name == "census",
    )


def from_frame(
    frame: pd.DataFrame,
    labels: Any,
    name: str = "table",
    target_name: str = "target",
    seed: int = 0,
    task: str = "classification",
    allow_missing: bool = False,
    unseen_categories: str = "other",
    test_size: float = 0.1,
    val_size: float = 0.1,
    class_names: list[str] | None = None,
    census: bool = False,
) -> TabularData:
    """Split a table of raw rows and its target, and fit the preprocessing.

    Args:
        frame: the feature columns, as read (strings and NaN allowed).
        labels: the target (class labels, or numbers for a regression).
        name: the data set's name.
        target_name: the target's name (a regression's output name).
        seed: seed of the split.
        task: ``"classification"`` or ``"regression"`` (resolved).
        allow_missing: accept missing values in every column.
        unseen_categories: ``"other"`` or ``"error"``.
        test_size: share of test rows (0: none).
        val_size: share of validation rows.
        class_names: names of the classes (default: the label values).
        census: the named census table (its integer-coded categorical columns).

    Returns:
        A :class:`TabularData`.
    """
    label = name
    if task == "regression":
        try:
            y = pd.to_numeric(pd.Series(np.asarray(labels)), errors="raise").to_numpy(np.float64)
        except (TypeError, ValueError):
            raise UserError(
                "task: regression needs a numeric target; this one holds strings "
                "(set task: classification)"
            ) from None
        names, n_classes = [target_name], 1
    else:
        numeric = pd.to_numeric(pd.Series(np.asarray(labels)), errors="coerce")
        if numeric.notna().all() and (numeric != numeric.round()).any():
            raise UserError(
                "task: classification, but the target holds numbers with fractions "
                "(a quantity to predict): set task: regression"
            )
        y, names = encode_labels(labels, max_classes=MAX_TABLE_CLASSES)
        n_classes = int(y.max()) + 1
        if class_names is None or len(class_names) != n_classes:
            class_names = names
        names = class_names
    if frame.shape[1] < 2:
        raise UserError(
            f"the table has {frame.shape[1]} feature column; Shapley values share a "
            "prediction among two or more features"
        )
    if len(frame) < 20:
        raise UserError(
            f"the table has {len(frame)} rows; a train / validation / test split needs at least 20"
        )
    idx_train, idx_val, idx_test = split_indices(
        len(frame), y if task != "regression" else None, seed, test_size, val_size
    )
    prep = Preprocessor.fit(
        frame.iloc[idx_train],
        all_rows=frame,
        allow_missing=allow_missing,
        unseen_categories=unseen_categories,
    )
    categorical = (
        [frame.columns.get_loc(c) for c in CENSUS_CATEGORICAL]
        if census
        else [frame.columns.get_loc(c) for c in prep.categories]
    )

    def rows(index: np.ndarray) -> pd.DataFrame:
        return frame.iloc[index].reset_index(drop=True)

    def scale(index: np.ndarray) -> np.ndarray:
        if len(index) == 0:
            return np.zeros((0, prep.num_inputs), dtype=np.float32)
        return prep.transform(frame.iloc[index]).numpy()

    return TabularData(
        name=label,
        feature_names=list(prep.feature_names),
        categorical=categorical,
        x_train=scale(idx_train),
        x_val=scale(idx_val),
        x_test=scale(idx_test),
        y_train=y[idx_train],
        y_val=y[idx_val],
        y_test=y[idx_test],
        mean=np.asarray(prep.mean),
        std=np.asarray(prep.std),
        n_classes=n_classes,
        raw_train=rows(idx_train),
        raw_val=rows(idx_val),
        raw_test=rows(idx_test),
        seed=seed,
        preprocessor=prep,
        class_names=names,
        task=task,
    )
