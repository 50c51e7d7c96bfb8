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
from sklearn.model_selection import train_test_split

from simshap.data.preprocessing import Preprocessor
from simshap.data.tabular_sources import (
    CENSUS_CATEGORICAL,
    TABULAR_DATASETS,
    load_raw,
    resolve_data_dir,
)
from simshap.data.user_table import encode_labels, read_table
from simshap.errors import UserError

__all__ = [
    "TABULAR_DATASETS",
    "TabularData",
    "load_raw",
    "load_tabular",
    "resolve_data_dir",
]


# --------------------------------------------------------------------------- splits


@dataclass
class TabularData:
    """A tabular data set split 80/10/10 and standardized with training statistics.

    Attributes:
        name: data set name.
        feature_names: column names, in order.
        categorical: indices of the categorical (integer-coded) columns.
        x_train, x_val, x_test: standardized ``float32`` features ``(n, d)``.
        y_train, y_val, y_test: ``int64`` labels ``(n,)``.
        mean, std: training mean and standard deviation per column (``float64``; a constant
            column gets std 1).
        n_classes: number of classes.
        raw_train, raw_val, raw_test: the same splits as raw rows (``float64``; ``object``
            when a column holds strings).
        seed: the seed of the split.
        preprocessor: the fitted raw-row preprocessing (travels inside saved explainers).
        class_names: names of the classes (the label values of a user table).

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
    raw_train: np.ndarray = field(repr=False)
    raw_val: np.ndarray = field(repr=False)
    raw_test: np.ndarray = field(repr=False)
    seed: int = 0
    preprocessor: Preprocessor | None = field(default=None, repr=False)
    class_names: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return len(self.feature_names)

    def standardize(self, raw: np.ndarray) -> np.ndarray:
        """Standardize raw rows ``(n, d)`` with the training statistics (``float32``)."""
        if self.preprocessor is None:
            raise UserError("this TabularData has no fitted preprocessing; use load_tabular")
        return self.preprocessor.transform(raw).numpy()

    def unstandardize(self, x: np.ndarray) -> np.ndarray:
        """Map standardized features back to raw units (``float64``)."""
        return np.asarray(x, dtype=np.float64) * self.std + self.mean


def load_tabular(
    name: str | dict[str, Any],
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    download: bool | None = None,
) -> TabularData:
    """Load a tabular data set, split it 80/10/10 (stratified, seeded) and standardize it.

    Args:
        name: one of ``TABULAR_DATASETS`` (see :func:`load_raw`), or a user table
            ``{"path": "file.csv" | "file.parquet", "target": "column"}`` (string features and
            labels are encoded; see :class:`~simshap.data.preprocessing.Preprocessor`).
        data_dir: folder holding the file (see :func:`resolve_data_dir`).
        seed: seed of the split; the same seed gives the same split.
        download: see :func:`load_raw`.

    Returns:
        A :class:`TabularData`; the preprocessing is fitted on the training split only.

    """
    class_names: list[str] | None = None
    if isinstance(name, dict):
        unknown = set(name) - {"path", "target"}
        if unknown or "path" not in name or "target" not in name:
            raise UserError(
                f"a user data set is {{path: file.csv or .parquet, target: column}}; got keys "
                f"{sorted(name)}"
            )
        frame, labels = read_table(name["path"], name["target"])
        y, class_names = encode_labels(labels)
        label = Path(str(name["path"])).stem
    else:
        frame, y = load_raw(name, data_dir, download)
        label = name
    idx = np.arange(len(y))
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 10 else None
    idx_rest, idx_test = train_test_split(
        idx, test_size=0.1, random_state=seed, stratify=stratify
    )
    idx_train, idx_val = train_test_split(
        idx_rest,
        test_size=1 / 9,
        random_state=seed,
        stratify=None if stratify is None else y[idx_rest],
    )
    prep = Preprocessor.fit(frame.iloc[idx_train])
    categorical = [frame.columns.get_loc(c) for c in CENSUS_CATEGORICAL] if name == "census" else [
        frame.columns.get_loc(c) for c in prep.categories
    ]
    raw = frame.to_numpy(dtype=object if prep.categories else np.float64)

    def scale(rows: np.ndarray) -> np.ndarray:
        return prep.transform(frame.iloc[rows]).numpy()

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
        n_classes=int(y.max()) + 1,
        raw_train=raw[idx_train],
        raw_val=raw[idx_val],
        raw_test=raw[idx_test],
        seed=seed,
        preprocessor=prep,
        class_names=class_names or [str(c) for c in range(int(y.max()) + 1)],
    )
