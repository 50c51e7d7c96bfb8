"""Your own tabular data: a CSV or Parquet file (or a DataFrame) with a target column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simshap.errors import MissingFileError, UserError

__all__ = ["encode_labels", "read_table"]


def read_table(
    source: str | os.PathLike[str] | pd.DataFrame, target: str
) -> tuple[pd.DataFrame, pd.Series]:
    """Read a user's table and split off the label column.

    Args:
        source: a ``.csv`` or ``.parquet`` file, or a DataFrame.
        target: the label column (numbers or strings).

    Returns:
        ``(features, labels)``: the other columns, as read (strings allowed), and the labels.
    """
    if isinstance(source, pd.DataFrame):
        frame = source
    else:
        path = Path(source)
        if not path.is_file():
            raise MissingFileError(f"data file {path} not found; check dataset.path")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise UserError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    if target not in frame.columns:
        raise UserError(
            f"target column {target!r} not found; columns are {[str(c) for c in frame.columns]}"
        )
    labels = frame[target]
    if labels.isna().any():
        raise UserError(f"target column {target!r} has missing labels; drop those rows first")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise UserError("the table has no feature columns besides the target")
    return features, labels


def encode_labels(labels: Any) -> tuple[np.ndarray, list[str]]:
    """Labels (numbers or strings) -> ``int64`` codes and the class names (sorted values)."""
    values = pd.Series(labels)
    classes = sorted(values.unique().tolist(), key=str)
    if len(classes) < 2:
        raise UserError(f"the target needs at least two classes, found {classes}")
    index = {v: i for i, v in enumerate(classes)}
    return values.map(index).to_numpy(dtype=np.int64), [str(c) for c in classes]
