"""Fitted preprocessing of raw tabular rows: column matching, category codes, standardization.

A :class:`Preprocessor` is fitted on the raw training rows once and then travels inside every
saved surrogate and explainer, so callers only ever pass raw rows: NumPy arrays or lists in
feature order, or DataFrames matched by column name (in any order). Anything that would give
silently wrong values (a missing or unknown column, a wrong number of features, NaN or
infinite values, a category never seen in training) raises :class:`~simshap.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from simshap.errors import UserError

__all__ = ["Preprocessor"]


def _is_categorical(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


@dataclass
class Preprocessor:
    """Raw rows -> standardized ``float32`` features, with the statistics of the training rows.

    Attributes:
        feature_names: the columns, in the order the models see them.
        categories: for each categorical (string) column, its training values; a value is
            encoded as its index in this list.
        mean: per-column training mean after encoding.
        std: per-column training standard deviation after encoding (1 where constant).
    """

    feature_names: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, rows: Any, feature_names: Sequence[str] | None = None) -> Preprocessor:
        """Fit on raw training rows (DataFrame, array or list of rows).

        String, object and category columns become integer codes (sorted training values);
        every column is then standardized with its training mean and standard deviation.

        Args:
            rows: raw training rows ``(n, d)``.
            feature_names: names for an array without column names (default ``x0..x{d-1}``).

        Returns:
            The fitted preprocessor.
        """
        frame = cls._as_frame(rows, feature_names)
        if len(frame) == 0:
            raise UserError("cannot fit preprocessing on zero rows; pass the training rows")
        categories = {
            str(c): sorted({str(v) for v in frame[c].dropna()})
            for c in frame.columns
            if _is_categorical(frame[c])
        }
        prep = cls([str(c) for c in frame.columns], categories)
        encoded = prep.encode(frame)
        std = encoded.std(0)
        prep.mean = [float(v) for v in encoded.mean(0)]
        prep.std = [float(v) if v > 0 else 1.0 for v in std]
        return prep

    @staticmethod
    def _as_frame(rows: Any, feature_names: Sequence[str] | None) -> pd.DataFrame:
        if isinstance(rows, pd.DataFrame):
            return rows.copy()
        arr = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows)
        if arr.ndim != 2:
            raise UserError(f"expected rows of shape (n, d), got shape {arr.shape}")
        names = list(feature_names) if feature_names is not None else [
            f"x{i}" for i in range(arr.shape[1])
        ]
        if len(names) != arr.shape[1]:
            raise UserError(f"{len(names)} feature names for {arr.shape[1]} columns")
        frame = pd.DataFrame(arr, columns=names)
        return frame.infer_objects()

    # ------------------------------------------------------------------ applying
    @property
    def num_features(self) -> int:
        """d, the number of features."""
        return len(self.feature_names)

    def _columns(self, rows: Any) -> list[np.ndarray]:
        """The raw columns of ``rows`` in feature order, checked."""
        d = self.num_features
        if isinstance(rows, pd.DataFrame):
            names = [str(c) for c in rows.columns]
            missing = [c for c in self.feature_names if c not in names]
            unknown = [c for c in names if c not in self.feature_names]
            if missing or unknown:
                raise UserError(
                    f"DataFrame columns do not match the features the explainer was trained on: "
                    f"missing {missing}, unknown {unknown}; expected {self.feature_names}"
                )
            by_name = {str(c): rows[c] for c in rows.columns}
            return [by_name[c].to_numpy() for c in self.feature_names]
        if isinstance(rows, torch.Tensor):
            rows = rows.detach().cpu().numpy()
        arr = np.asarray(rows, dtype=object if self.categories else None)
        if arr.ndim == 1 and arr.shape[0] == d:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != d:
            raise UserError(
                f"expected raw rows of shape (n, {d}) with the features {self.feature_names} in "
                f"this order, got shape {arr.shape}; a DataFrame is matched by column name"
            )
        return [arr[:, j] for j in range(d)]

    def encode(self, rows: Any) -> np.ndarray:
        """Raw rows -> ``float64`` ``(n, d)``: category codes, numbers checked to be finite."""
        out = []
        for name, col in zip(self.feature_names, self._columns(rows), strict=True):
            if name in self.categories:
                index = {v: i for i, v in enumerate(self.categories[name])}
                values = pd.Series(col).astype(object)
                if values.isna().any():
                    raise UserError(f"column {name!r} has missing values; impute them first")
                codes = values.map(lambda v, index=index: index.get(str(v), -1)).to_numpy()
                if (codes < 0).any():
                    bad = sorted({str(v) for v, c in zip(values, codes, strict=True) if c < 0})
                    raise UserError(
                        f"column {name!r} has values never seen in training: {bad[:5]}; "
                        f"known values: {self.categories[name][:10]}"
                    )
                out.append(codes.astype(np.float64))
                continue
            try:
                num = np.asarray(col, dtype=np.float64)
            except (TypeError, ValueError):
                raise UserError(
                    f"column {name!r} must be numeric, got values like {list(col[:3])}"
                ) from None
            if not np.isfinite(num).all():
                raise UserError(
                    f"column {name!r} has NaN or infinite values; impute or drop those rows"
                )
            out.append(num)
        if not out or len(out[0]) == 0:
            raise UserError("no rows to process: pass at least one row")
        return np.stack(out, axis=1)

    def standardize(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded ``(n, d)`` -> standardized ``float32``."""
        return ((encoded - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def transform(self, rows: Any) -> torch.Tensor:
        """Raw rows -> the standardized ``float32`` tensor ``(n, d)`` that the networks see."""
        return torch.from_numpy(self.standardize(self.encode(rows)))

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (saved inside weights-only ``torch.save`` files)."""
        return {"feature_names": list(self.feature_names),
                "categories": {k: list(v) for k, v in self.categories.items()},
                "mean": list(self.mean), "std": list(self.std)}  # fmt: skip

    @classmethod
    def from_dict(cls, blob: Mapping[str, Any]) -> Preprocessor:
        """Inverse of :meth:`to_dict`."""
        return cls(list(blob["feature_names"]), {k: list(v) for k, v in
                   blob["categories"].items()}, list(blob["mean"]), list(blob["std"]))  # fmt: skip
