"""Explain files: a CSV / Parquet file (or a folder of them) into Parquet, on one of three engines.

* ``local`` (default): chunk by chunk in this process, in bounded memory, into one Parquet file
  written as ``.partial`` and renamed when complete;
* ``spark``: :func:`~simshap.serving.spark.explain_spark` on a local Spark session (``local[N]``,
  or the master in ``$SPARK_MASTER``), into a Parquet folder;
* ``ray``: :func:`~simshap.serving.ray.explain_ray` on ``ray.init`` (a local Ray with N CPUs, or
  the cluster at ``$RAY_ADDRESS``), into a Parquet folder.

Every engine checks the rows with the explainer's own preprocessing and writes the same columns:
the pass-through columns, the values, ``base_value`` and ``prediction``.
"""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from simshap.errors import ExistingOutputError, MissingFileError, UserError
from simshap.files import fault_point

__all__ = ["ENGINES", "explain_file"]

ENGINES = ("local", "spark", "ray")


def _inputs(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".csv", ".parquet", ".pq"))
        if not files:
            raise UserError(f"{path} holds no .csv or .parquet files")
        return files
    if not path.is_file():
        raise MissingFileError(f"data file {path} not found")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UserError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return [path]


def _chunks(files: list[Path], chunk_rows: int) -> Iterator[pd.DataFrame]:
    for path in files:
        if path.suffix.lower() == ".csv":
            yield from pd.read_csv(path, chunksize=chunk_rows)
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()


def _load(model: str | Path, model_file: str | Path | None) -> Any:
    """An explainer file, with the user's model file attached when given (trusted files only)."""
    from simshap.amortized.io import load_explainer

    user_model = None
    if model_file is not None:
        from simshap.models.original import load_user_model

        user_model = load_user_model(model_file)
    return load_explainer(model, model=user_model)


def explain_file(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    target: int | str | None = None,
    chunk_rows: int = 65536,
    overwrite: bool = False,
    progress: bool = True,
    ignore: list[str] | None = None,
    model_file: str | Path | None = None,
    engine: str = "local",
    workers: int = 2,
) -> int:
    """Explain every row of a CSV / Parquet file (or folder) into Parquet.

    Args:
        model: the explainer file.
        data: raw rows with the explainer's feature columns and the ``ignore`` columns.
        out: the Parquet file (``local``) or folder (``spark``, ``ray``) to write.
        target: keep one class (its name or index).
        chunk_rows: rows per chunk (``local``) or per batch (``spark``, ``ray``).
        overwrite: replace an existing ``out``.
        progress: show a progress bar (``local``).
        ignore: columns that are not features (ids, the target), passed through.
        model_file: the user's model file (needed by the marginal and baseline games).
        engine: ``"local"``, ``"spark"`` or ``"ray"``.
        workers: cores of the local Spark session / Ray instance.

    Returns:
        The number of rows explained.
    """
    if engine not in ENGINES:
        raise UserError(f"engine must be one of {ENGINES}, got {engine!r}")
    data, out = Path(data), Path(out)
    files = _inputs(data)
    if out.exists() and not overwrite:
        raise ExistingOutputError(f"{out} exists; pass --overwrite to replace it")
    if engine == "spark":
        return _spark(model, files, out, target, chunk_rows, ignore, model_file, workers)
    if engine == "ray":
        return _ray(model, files, out, target, chunk_rows, ignore, model_file, workers)
    return _local(model, files, out, target, chunk_rows, progress, ignore, model_file)


def _local(
    model: Any,
    files: list[Path],
    out: Path,
    target: Any,
    chunk_rows: int,
    progress: bool,
    ignore: list[str] | None,
    model_file: Any,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from simshap.serving.batch import BatchExplainer

    explain = BatchExplainer(_load(model, model_file), target, passthrough=ignore)
    tmp = out.with_name(out.name + ".partial")
    writer, rows = None, 0
    bar = tqdm(unit=" rows", disable=not progress)
    try:
        for frame in _chunks(files, chunk_rows):
            try:  # checked first, so an error names the row in the whole file
                explain.prep.transform(frame.drop(columns=explain.passthrough), first_row=rows)
            except UserError as err:
                raise UserError(f"{files[0] if len(files) == 1 else files}: {err}") from None
            table = pa.Table.from_pandas(explain(frame), preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += len(frame)
            bar.update(len(frame))
            fault_point("explain.chunk")
    except BaseException:
        if writer is not None:
            writer.close()
            writer = None
        tmp.unlink(missing_ok=True)  # no half-written output is left behind an error
        raise
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    tmp.replace(out)
    return rows


def _replace(out: Path, tmp: Path) -> None:
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    tmp.rename(out)


def _spark(
    model: Any,
    files: list[Path],
    out: Path,
    target: Any,
    batch: int,
    ignore: list[str] | None,
    model_file: Any,
    workers: int,
) -> int:
    import sys

    from pyspark.sql import SparkSession

    from simshap.serving.spark import explain_spark

    master = os.environ.get("SPARK_MASTER", f"local[{workers}]")
    # a local session's Python workers run this interpreter (its packages), unless told otherwise
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master(master).appName("simshap explain").getOrCreate()
    paths = [str(p) for p in files]
    if files[0].suffix.lower() == ".csv":
        df = spark.read.csv(paths, header=True, inferSchema=True)
    else:
        df = spark.read.parquet(*paths)
    result = explain_spark(
        df, model, target=target, batch_size=batch, passthrough=ignore, model_file=model_file
    )
    tmp = out.with_name(out.name + ".partial")
    try:
        result.write.mode("overwrite").parquet(str(tmp))
    except Exception as err:  # a worker's UserError arrives wrapped: say it in one line
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(_worker_error(err)) from None
    _replace(out, tmp)
    return int(spark.read.parquet(str(out)).count())


def _ray(
    model: Any,
    files: list[Path],
    out: Path,
    target: Any,
    batch: int,
    ignore: list[str] | None,
    model_file: Any,
    workers: int,
) -> int:
    import ray

    from simshap.serving.ray import explain_ray

    started = not ray.is_initialized()
    if started:  # a Ray started here is stopped here: no actor outlives the job
        address = os.environ.get("RAY_ADDRESS")
        # one CPU per explaining actor, and one more for reading and writing the files
        ray.init(
            address=address,
            num_cpus=None if address else workers + 1,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        paths = [str(p) for p in files]
        read = ray.data.read_csv if files[0].suffix.lower() == ".csv" else ray.data.read_parquet
        result = explain_ray(
            read(paths),
            model,
            concurrency=workers,
            batch_size=batch,
            target=target,
            passthrough=ignore,
            model_file=model_file,
        )
        tmp = out.with_name(out.name + ".partial")
        error = None
        try:
            result.write_parquet(str(tmp))
        except Exception as err:
            error = _worker_error(err)
        # a dataset holds its actors (and their CPUs) until it is collected, failed or not
        del result
        gc.collect()
        if error is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(error)
        _replace(out, tmp)
        return int(ray.data.read_parquet(str(out)).count())
    finally:
        if started:
            ray.shutdown()


def _worker_error(err: Exception) -> str:
    """The simshap error a worker raised, out of the engine's wrapping (else the first line)."""
    import re

    text = str(err)
    found = re.search(r"(?:UserError|MissingFileError|ExistingOutputError): (.+)", text)
    if found:
        return found.group(1).strip()
    other = re.findall(r"^(\w+(?:Error|Exception): .+)$", text, flags=re.M)
    if other:
        return f"the engine failed: {other[-1].strip()}"
    return f"the engine failed: {text.strip().splitlines()[0][:300] if text.strip() else err!r}"
