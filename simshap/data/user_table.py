"""Your own tabular data: a CSV or Parquet file (or a DataFrame) with a target column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simshap.errors import MissingFileError, UserError

__all__ = [
    "AUTO_MAX_CLASSES",
    "baseline_row",
    "encode_labels",
    "infer_task_from_labels",
    "read_frame",
    "read_table",
]

#: a numeric target with more distinct values than this is read as regression by task="auto"
AUTO_MAX_CLASSES = 20


def read_frame(path: str | os.PathLike[str], na_values: list[str] | None = None) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` file, with a clear error for anything that is not one.

    CSV values are stripped of the spaces after each comma (as in the raw UCI files), and the
    strings in ``na_values`` are read as missing.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"data file {path} not found; check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, skipinitialspace=True, na_values=na_values or None)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            if na_values:
                frame = frame.replace(list(na_values), np.nan)
        else:
            raise UserError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    except UserError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty: it holds no header and no rows") from None
    except (UnicodeDecodeError, pd.errors.ParserError, ValueError, OSError) as err:
        first = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise UserError(f"{path} cannot be read as a {suffix[1:]} table ({first})") from None
    if len(frame) == 0:
        raise UserError(f"{path} has a header but no rows")
    return frame


def read_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    target: str,
    na_values: list[str] | None = None,
    ignore: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.Series]:
    """Read a user's table and split off the target column.

    Args:
        source: a ``.csv`` or ``.parquet`` file, or a DataFrame.
        target: the target column (class labels, numbers or strings, or a regression target).
        na_values: strings read as missing values (e.g. ``["?"]``).
        ignore: columns that are not features (ids...), dropped.

    Returns:
        ``(features, target)``: the other columns, as read (strings and NaN allowed), and the
        target.
    """
    frame = source if isinstance(source, pd.DataFrame) else read_frame(source, na_values)
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise UserError(f"target column {target!r} not found; columns are {columns}")
    unknown = [c for c in ignore or [] if c not in columns]
    if unknown:
        raise UserError(f"columns to ignore {unknown} not found; columns are {columns}")
    labels = frame[target]
    if labels.isna().any():
        raise UserError(f"target column {target!r} has missing values; drop those rows first")
    features = frame.drop(columns=[target, *(ignore or [])])
    if features.shape[1] == 0:
        raise UserError("the table has no feature columns besides the target")
    return features.reset_index(drop=True), labels.reset_index(drop=True)


def encode_labels(labels: Any, max_classes: int = 1000) -> tuple[np.ndarray, list[str]]:
    """Labels (numbers or strings) -> ``int64`` codes and the class names (sorted values)."""
    values = pd.Series(labels)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        values = values.astype(str).str.strip()
    classes = sorted(values.unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise UserError(f"the target needs at least two classes, found {classes}")
    if len(classes) > max_classes:
        raise UserError(
            f"the target has {len(classes)} distinct values, too many classes for a "
            "classification; if it is a number to predict, set task: regression"
        )
    index = {v: i for i, v in enumerate(classes)}
    return values.map(index).to_numpy(dtype=np.int64), [_name(c) for c in classes]


def _name(value: Any) -> str:
    """A class name: ``1`` rather than ``1.0`` for integer-valued float labels."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def infer_task_from_labels(y: Any) -> str:
    """``"classification"`` or ``"regression"`` from a target column (``task="auto"``).

    Strings, booleans and categories are classes; a numeric target with non-integer values, or
    with more than ``AUTO_MAX_CLASSES`` distinct values, is a regression target.
    """
    s = pd.Series(np.asarray(y).ravel() if not isinstance(y, pd.Series) else y)
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return "classification"
    values = s.dropna().to_numpy(dtype=np.float64)
    if values.size and (
        np.any(values != np.round(values)) or np.unique(values).size > AUTO_MAX_CLASSES
    ):
        return "regression"
    return "classification"


def baseline_row(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """One baseline row: each numeric column's median, each other column's most frequent value."""
    row = []
    for name in names:
        col = frame[name]
        if np.issubdtype(np.asarray(col.dropna()).dtype, np.number) and not col.dtype == bool:
            row.append(float(col.median()) if col.notna().any() else float("nan"))
        else:
            mode = col.mode(dropna=True)
            row.append(mode.iloc[0] if len(mode) else None)
    dtype = object if any(isinstance(v, str) or v is None for v in row) else np.float64
    return np.array([row], dtype=dtype)
