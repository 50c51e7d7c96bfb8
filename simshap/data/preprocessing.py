"""Fitted preprocessing of raw tabular rows: column matching, categories, missing values, scaling.

A :class:`Preprocessor` is fitted once and then travels inside every saved surrogate and
explainer, so callers only ever pass raw rows: NumPy arrays or lists in feature order, or
DataFrames matched by column name (in any order).

Two representations:

* **encoded** rows ``float64 (n, d)``: numbers as given, a string column as the index of its
  value in ``categories[name]`` (values stripped of surrounding whitespace; a value never seen
  becomes the ``other`` code ``len(categories[name])``, or an error with
  ``unseen_categories="error"``), and NaN where a value is missing;
* **network inputs** ``float32 (n, F)``: the encoded rows standardized with the training mean
  and standard deviation, a missing value filled with 0 (the mean), and one missing indicator per
  column that may be missing (``missing``), appended after the d columns. Player ``j`` owns its
  column and its indicator (:meth:`owner`).

Missing values are values: a column that held NaN in the rows the preprocessing was fitted on
(or every column, with ``allow_missing=True``) accepts NaN; NaN anywhere else is an error that
names ``allow_missing``. A column that is constant in the training rows is a dummy player
(``constant``): the explainers give it exactly 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from simshap.errors import UserError

__all__ = ["UNSEEN_CATEGORIES", "Preprocessor"]

UNSEEN_CATEGORIES = ("other", "error")


def _is_categorical(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def _missing(values: pd.Series) -> np.ndarray:
    return values.isna().to_numpy(dtype=bool)


def _clean(value: Any) -> str:
    return str(value).strip()


@dataclass
class Preprocessor:
    """Raw rows -> encoded rows -> network inputs, with the statistics of the training rows.

    Attributes:
        feature_names: the columns, in the order the models see them (d).
        categories: for each string column, its values (stripped, sorted); a value is encoded as
            its index, an unseen one as ``len(categories[name])``.
        mean: per-column training mean of the encoded values (NaN ignored).
        std: per-column training standard deviation (1 where constant).
        missing: the columns that accept missing values (each gets an indicator input).
        constant: the columns constant in the training rows (dummy players).
        unseen_categories: ``"other"`` (an unseen category gets the ``other`` code) or
            ``"error"``.
    """

    feature_names: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    constant: list[str] = field(default_factory=list)
    unseen_categories: str = "other"

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        rows: Any,
        feature_names: Sequence[str] | None = None,
        all_rows: Any = None,
        allow_missing: bool = False,
        unseen_categories: str = "other",
    ) -> Preprocessor:
        """Fit on raw training rows (DataFrame, array or list of rows).

        Args:
            rows: raw training rows ``(n, d)``: the scaling and the constant columns come from
                them.
            feature_names: names for an array without column names (default ``x0..x{d-1}``).
            all_rows: every row the user gave (default ``rows``): the category lists and the
                columns that may be missing come from all of them, so a value that happens to
                fall outside the training split is known.
            allow_missing: accept missing values in every column, not only those that held some.
            unseen_categories: ``"other"`` or ``"error"`` (see the class).

        Returns:
            The fitted preprocessor.
        """
        if unseen_categories not in UNSEEN_CATEGORIES:
            raise UserError(
                f"unseen_categories must be one of {UNSEEN_CATEGORIES}, got {unseen_categories!r}"
            )
        frame = cls._as_frame(rows, feature_names)
        if len(frame) == 0:
            raise UserError("cannot fit preprocessing on zero rows; pass the training rows")
        full = frame if all_rows is None else cls._as_frame(all_rows, list(frame.columns))
        categories = {
            str(c): sorted({_clean(v) for v in full[c].dropna()})
            for c in full.columns
            if _is_categorical(full[c])
        }
        names = [str(c) for c in frame.columns]
        missing = [
            n
            for n, c in zip(names, full.columns, strict=True)
            if allow_missing or full[c].isna().any()
        ]
        prep = cls(names, categories, missing=missing, unseen_categories=unseen_categories)
        encoded = prep.encode(frame)
        with np.errstate(all="ignore"):
            mean = np.nan_to_num(np.nanmean(encoded, 0)) if len(encoded) else np.zeros(len(names))
            std = np.nan_to_num(np.nanstd(encoded, 0))
        prep.mean = [float(v) for v in mean]
        prep.std = [float(v) if v > 0 else 1.0 for v in std]
        prep.constant = [
            n
            for n, c in zip(names, frame.columns, strict=True)
            if frame[c].nunique(dropna=False) <= 1
        ]
        return prep

    @staticmethod
    def _as_frame(rows: Any, feature_names: Sequence[str] | None) -> pd.DataFrame:
        if isinstance(rows, pd.DataFrame):
            return rows.reset_index(drop=True)
        arr = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows)
        if arr.ndim != 2:
            raise UserError(f"expected rows of shape (n, d), got shape {arr.shape}")
        names = (
            list(feature_names)
            if feature_names is not None
            else [f"x{i}" for i in range(arr.shape[1])]
        )
        if len(names) != arr.shape[1]:
            raise UserError(f"{len(names)} feature names for {arr.shape[1]} columns")
        return pd.DataFrame(arr, columns=names).infer_objects()

    # ------------------------------------------------------------------ shapes
    @property
    def num_features(self) -> int:
        """d, the number of features (players)."""
        return len(self.feature_names)

    @property
    def num_inputs(self) -> int:
        """F, the width of the network inputs: d columns plus one indicator per ``missing``."""
        return self.num_features + len(self.missing)

    def owner(self) -> list[int]:
        """The player of each network input: column j and its missing indicator belong to j."""
        index = {n: j for j, n in enumerate(self.feature_names)}
        return list(range(self.num_features)) + [index[n] for n in self.missing]

    def dummy_mask(self) -> torch.Tensor:
        """Bool ``(d,)``: True for the dummy players (constant in training)."""
        return torch.tensor([n in self.constant for n in self.feature_names], dtype=torch.bool)

    # ------------------------------------------------------------------ applying
    def _check_names(self, frame: pd.DataFrame) -> None:
        names = [str(c) for c in frame.columns]
        missing = [c for c in self.feature_names if c not in names]
        unknown = [c for c in names if c not in self.feature_names]
        if missing or unknown:
            raise UserError(
                f"DataFrame columns do not match the features the explainer was trained on: "
                f"missing {missing}, unknown {unknown}; expected {self.feature_names}"
            )

    def _series(self, rows: Any) -> list[pd.Series]:
        """The raw columns of ``rows`` in feature order as pandas Series (their dtypes kept)."""
        if not isinstance(rows, pd.DataFrame):
            return [pd.Series(c) for c in self.columns(rows)]
        self._check_names(rows)
        by_name = {str(c): rows[c] for c in rows.columns}
        return [by_name[c].reset_index(drop=True) for c in self.feature_names]

    def columns(self, rows: Any) -> list[np.ndarray]:
        """The raw columns of ``rows`` in feature order, checked."""
        d = self.num_features
        if isinstance(rows, pd.DataFrame):
            return [c.to_numpy() for c in self._series(rows)]
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

    def _missing_error(self, name: str) -> UserError:
        return UserError(
            f"column {name!r} has missing values, but it had none in the rows the explainer was "
            "trained on; train with allow_missing=True (config: dataset.allow_missing: true) "
            "to accept them, or impute them"
        )

    def encode(self, rows: Any, unseen: dict[str, int] | None = None) -> np.ndarray:
        """Raw rows -> encoded ``float64 (n, d)``: category codes, NaN where missing.

        Args:
            rows: raw rows.
            unseen: when given, filled with the count of unseen categories per column.
        """
        out = []
        for name, col in zip(self.feature_names, self._series(rows), strict=True):
            if name in self.categories:
                # each distinct value is looked up once (a batch repeats few values many times);
                # factorize works on the column's own dtype (Arrow strings stay in C)
                positions, distinct = pd.factorize(col, use_na_sentinel=True)
                na = positions < 0
                index = {v: i for i, v in enumerate(self.categories[name])}
                other = len(index)
                lookup = np.array([index.get(_clean(v), np.nan) for v in distinct] + [np.nan])
                codes = lookup[positions]  # position -1 (missing) takes the last entry, NaN
                bad = ~na & np.isnan(codes)
                codes[bad] = other
                if bad.any():
                    seen = sorted({_clean(v) for v in col[bad]})
                    if self.unseen_categories == "error":
                        raise UserError(
                            f"column {name!r} has values never seen in training: {seen[:5]}; "
                            f"known values: {self.categories[name][:10]} (unseen_categories: "
                            "other maps them to one 'other' code instead)"
                        )
                    if unseen is not None:
                        unseen[name] = unseen.get(name, 0) + int(bad.sum())
                num = codes
            else:
                try:
                    num = np.asarray(pd.to_numeric(col, errors="raise"), dtype=np.float64)
                except (TypeError, ValueError):
                    raise UserError(
                        f"column {name!r} must hold numbers, got values like {list(col.iloc[:3])}"
                    ) from None
                if np.isinf(num).any():
                    raise UserError(
                        f"column {name!r} has infinite values (or numbers too large "
                        "for a float); drop those rows"
                    )
                na = np.isnan(num)
            if na.any() and name not in self.missing:
                raise self._missing_error(name)
            out.append(num)
        if not out or len(out[0]) == 0:
            raise UserError("no rows to process: pass at least one row")
        return np.stack(out, axis=1)

    def network_inputs(self, encoded: np.ndarray, first_row: int = 0) -> np.ndarray:
        """Encoded ``(n, d)`` -> network inputs ``float32 (n, F)`` (standardized, indicators).

        A value that overflows the ``float32`` cast (1e300 is a finite float64) is refused,
        naming its row (counted from ``first_row``) and feature.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            z = (encoded - np.asarray(self.mean)) / np.asarray(self.std)
            na = np.isnan(z)
            z = np.where(na, 0.0, z).astype(np.float32)
        bad = np.argwhere(~np.isfinite(z))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise UserError(
                f"row {first_row + i}, feature {self.feature_names[j]!r}: the value is too large "
                "for the model's float32 inputs; send values of the size seen in "
                f"training ({len(bad)} such value(s) in all)"
            )
        if not self.missing:
            return z
        cols = [self.feature_names.index(n) for n in self.missing]
        return np.concatenate([z, na[:, cols].astype(np.float32)], axis=1)

    def standardize(self, encoded: np.ndarray) -> np.ndarray:
        """Encoded ``(n, d)`` -> network inputs (kept name; see :meth:`network_inputs`)."""
        return self.network_inputs(encoded)

    def transform(
        self, rows: Any, unseen: dict[str, int] | None = None, first_row: int = 0
    ) -> torch.Tensor:
        """Raw rows -> the ``float32`` network inputs ``(n, F)``."""
        return torch.from_numpy(self.network_inputs(self.encode(rows, unseen), first_row))

    def raw_array(self, rows: Any) -> np.ndarray:
        """Raw rows as an ``(n, d)`` array in feature order (``object`` when strings are present).

        The form the games mask (a row takes some columns from ``x`` and the rest from a
        background row) before handing rows back to the user's model.
        """
        cols = self.columns(rows)
        dtype = object if self.categories else np.float64
        try:
            return np.stack([np.asarray(c, dtype=dtype) for c in cols], axis=1)
        except (TypeError, ValueError):
            return np.stack([np.asarray(c, dtype=object) for c in cols], axis=1)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (saved inside weights-only ``torch.save`` files)."""
        return {
            "feature_names": list(self.feature_names),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "mean": list(self.mean),
            "std": list(self.std),
            "missing": list(self.missing),
            "constant": list(self.constant),
            "unseen_categories": self.unseen_categories,
        }

    @classmethod
    def from_dict(cls, blob: Mapping[str, Any]) -> Preprocessor:
        """Inverse of :meth:`to_dict` (files without the newer fields load with their defaults)."""
        return cls(
            list(blob["feature_names"]),
            {k: list(v) for k, v in blob["categories"].items()},
            list(blob["mean"]),
            list(blob["std"]),
            list(blob.get("missing", [])),
            list(blob.get("constant", [])),
            blob.get("unseen_categories", "error"),
        )
