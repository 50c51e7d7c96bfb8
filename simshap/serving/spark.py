"""Explain a Spark DataFrame: ``mapInPandas`` over Arrow batches, ONNX Runtime in each worker.

The explainer file reaches the executors through ``SparkContext.addFile`` (so it works on a
cluster as on ``local[N]``); each Python worker loads it once (weights-only, its hash checked),
builds one ONNX Runtime session on its exported graph and keeps it for every batch it explains.
Rows are checked by the explainer's own preprocessing, as the server checks them. A bad row
fails the job with the same message the server would answer (or, with ``on_error="column"``,
fills an ``error`` column for that row).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from simshap.errors import UserError
from simshap.serving.batch import BatchExplainer, explainer_bytes, output_columns, target_index

__all__ = ["explain_spark"]

_WORKER: dict[tuple[str, str], BatchExplainer] = {}  # one per Python worker and explainer


def _worker_explainer(name: str, model_name: str | None, options: dict[str, Any]) -> Any:
    """The worker's explainer, loaded once from the file Spark shipped (then cached)."""
    from pyspark import SparkFiles

    key = (name, repr(sorted(options.items())))
    if key not in _WORKER:
        model = None
        if model_name is not None:
            from simshap.models.original import load_user_model

            model = load_user_model(SparkFiles.get(model_name))
        blob = Path(SparkFiles.get(name)).read_bytes()
        _WORKER[key] = BatchExplainer.from_bytes(blob, model=model, **options)
    return _WORKER[key]


def explain_spark(
    df: Any,
    explainer_path: str | os.PathLike[str],
    *,
    target: int | str | None = None,
    batch_size: int = 10_000,
    passthrough: list[str] | None = None,
    on_error: str = "raise",
    model_file: str | os.PathLike[str] | None = None,
) -> Any:
    """Explain every row of a Spark DataFrame; returns a DataFrame of values.

    Args:
        df: a ``pyspark.sql.DataFrame`` with the explainer's feature columns (any order) and
            the ``passthrough`` columns.
        explainer_path: the explainer file (``simshap.save``, ``simshap run``).
        target: keep one class (name or index); ``None``: ``<feature>__<class>`` columns.
        batch_size: rows per ONNX Runtime call (bounds each worker's memory).
        passthrough: columns copied to the output as they are (ids...).
        on_error: ``"raise"`` or ``"column"`` (see :class:`~simshap.serving.batch.BatchExplainer`).
        model_file: the user's model file, for the marginal and baseline games (trusted files
            only: a joblib / pickle file runs code when loaded).

    Returns:
        A Spark DataFrame: the ``passthrough`` columns, the values, ``base_value`` and
        ``prediction`` (double; per class without ``target``), and ``error`` (string) with
        ``on_error="column"``.
    """
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    from simshap.amortized.io import load_explainer
    from simshap.serving.batch import class_names

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")
    passthrough = list(passthrough or [])
    missing = [c for c in passthrough if c not in df.columns]
    if missing:
        raise UserError(f"the pass-through columns {missing} are not in the DataFrame")
    explainer_bytes(explainer_path)  # a bad file fails here, before any worker starts
    model = None
    if model_file is not None:
        from simshap.models.original import load_user_model

        model = load_user_model(model_file)
    explainer = load_explainer(explainer_path, model=model)
    index = target_index(target, class_names(explainer))
    options = {"target": index, "passthrough": passthrough, "on_error": on_error}
    BatchExplainer(explainer, **options)  # the checks a worker would make, once, here
    names = output_columns(explainer, index, passthrough)
    known = {f.name: f for f in df.schema.fields}
    fields = [known[c] for c in passthrough] + [
        StructField(c, DoubleType()) for c in names[len(passthrough) :]
    ]
    if on_error == "column":
        fields.append(StructField("error", StringType()))
    spark = df.sparkSession
    spark.sparkContext.addFile(str(Path(explainer_path).resolve()))
    model_name = None
    if model_file is not None:
        spark.sparkContext.addFile(str(Path(model_file).resolve()))
        model_name = Path(model_file).name
    name = Path(explainer_path).name

    def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        worker = _worker_explainer(name, model_name, options)
        for frame in batches:
            for start in range(0, len(frame), batch_size):
                yield worker(frame.iloc[start : start + batch_size])

    return df.mapInPandas(explain, StructType(fields))
