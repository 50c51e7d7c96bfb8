"""Production commands: ``simshap export``, ``simshap serve``, ``simshap explain``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simshap.errors import ExistingOutputError, MissingFileError, UserError

__all__ = ["explain_file", "register"]


def _iter_chunks(path: Path, chunk_rows: int) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        import pandas as pd

        yield from pd.read_csv(path, chunksize=chunk_rows)
    elif suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    else:
        raise UserError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")


def _load(model: str | Path, model_file: str | Path | None) -> Any:
    """An explainer file, with the user's model file attached when given (trusted files only)."""
    from simshap.amortized.io import load_explainer

    user_model = None
    if model_file is not None:
        from simshap.models.original import load_user_model

        user_model = load_user_model(model_file)
    return load_explainer(model, model=user_model)


def _target_index(target: int | str | None, classes: list[str]) -> int | None:
    if target is None:
        return None
    if isinstance(target, str) and target in classes:
        return classes.index(target)
    try:
        index = int(target)
    except (TypeError, ValueError):
        index = -1
    if not 0 <= index < len(classes):
        raise UserError(
            f"--target must be a class name {classes} or an index 0..{len(classes) - 1}"
            f", got {target!r}"
        )
    return index


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
) -> int:
    """Explain every row of a CSV / Parquet file into a Parquet file, chunk by chunk.

    Memory stays bounded by ``chunk_rows``. Columns of the output: the ``ignore`` columns as
    they were (ids...), then ``<feature>`` values for one ``target`` class (else
    ``<feature>__<class>`` for every class), ``base_value`` and ``prediction`` (or
    ``<name>__<class>``), so that each row's values add up: base + Σφ = prediction; with the
    surrogate game and ``model_file``, also the model's own output ``model_output``.

    Args:
        model: the explainer file.
        data: raw rows with the explainer's feature columns and the ``ignore`` columns.
        out: the Parquet file to write (written as ``.partial``, renamed when complete).
        target: keep one class (its name or index).
        chunk_rows: rows per chunk.
        overwrite: replace an existing ``out``.
        progress: show a progress bar.
        ignore: columns that are not features, passed through to the output.
        model_file: the user's model file (needed by the marginal and baseline games).

    Returns:
        The number of rows explained.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from simshap.files import fault_point

    data, out = Path(data), Path(out)
    if not data.is_file():
        raise MissingFileError(f"data file {data} not found")
    if out.exists() and not overwrite:
        raise ExistingOutputError(f"{out} exists; pass --overwrite to replace it")
    explainer = _load(model, model_file)
    if explainer.preprocessor is None:
        raise UserError(f"{model} holds no preprocessing: only tabular explainers explain files")
    names = explainer.preprocessor.feature_names
    classes = explainer.hparams.class_names or [
        str(i) for i in range(explainer.net.spec["num_classes"])
    ]
    k = _target_index(target, classes)
    suffixes = [""] if k is not None else [f"__{c}" for c in classes]
    ignore = list(ignore or [])
    tmp = out.with_name(out.name + ".partial")
    writer, rows = None, 0
    bar = tqdm(unit=" rows", disable=not progress)
    try:
        for frame in _iter_chunks(data, chunk_rows):
            unknown = [c for c in ignore if c not in frame.columns]
            if unknown:
                raise UserError(f"--ignore names columns {unknown} that {data} does not have")
            features = frame.drop(columns=ignore)
            try:  # checked first, so an error names the row in the whole file
                explainer.preprocessor.transform(features, first_row=rows)
            except UserError as err:
                raise UserError(f"{data}: {err}") from None
            sv = explainer(features)
            pick = (lambda t: t[..., k : k + 1]) if k is not None else (lambda t: t)  # noqa: E731
            values = pick(sv.values).cpu().numpy()
            columns = {c: frame[c].to_numpy() for c in ignore}
            for j, f in enumerate(names):
                for m, suffix in enumerate(suffixes):
                    columns[f + suffix] = values[:, j, m]
            extra = {"base_value": sv.base_values, "prediction": sv.prediction}
            if "model_output" in sv.extras:
                extra["model_output"] = sv.extras["model_output"]
            for name, t in extra.items():
                t = pick(t).cpu().numpy()
                for m, suffix in enumerate(suffixes):
                    columns[name + suffix] = t[:, m]
            table = pa.table(columns)
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


def _cmd_export(args: argparse.Namespace) -> int:
    from simshap.amortized.export import export_explainer
    from simshap.amortized.io import load_explainer

    path = export_explainer(load_explainer(args.model), args.out, args.format, args.overwrite)
    print(f"[simshap] {args.format} graph written to {path}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    if not Path(args.model).is_file():
        raise MissingFileError(f"no explainer file at {args.model}")
    litserve_only = {
        "--max-batch-size": args.max_batch_size,
        "--batch-timeout": args.batch_timeout,
        "--fast-queue": args.fast_queue,
    }
    from simshap.serving.guard import api_token
    from simshap.serving.http import ServerLimits

    api_token()  # a set but empty token refuses to start, before the model loads
    limits = ServerLimits(
        args.request_timeout, args.shutdown_timeout, args.max_header_bytes, args.max_connections
    )
    for flag in ("max_rows", "max_body_bytes", "max_json_depth"):
        if not getattr(args, flag) > 0:
            raise UserError(
                f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}"
            )
    if args.backend == "uvicorn":
        given = [k for k, v in litserve_only.items() if v not in (None, False)]
        if given:
            raise UserError(
                f"{', '.join(given)} only apply to --backend litserve (the default "
                "uvicorn backend answers each request in-process, without a queue)"
            )
        from simshap.serving.app import run_server

        run_server(
            args.model,
            args.host,
            args.port,
            args.workers,
            args.max_rows,
            args.max_body_bytes,
            args.runtime,
            args.max_json_depth,
            limits,
            model_file=args.model_file,
            access_log=args.access_log,
        )
        return 0
    if args.workers != 1:
        raise UserError("--workers applies to --backend uvicorn; LitServe runs one worker")
    from simshap.serving.litserve import build_server, run_server

    batch = args.max_batch_size or 16
    timeout = 2.0 if args.batch_timeout is None else args.batch_timeout
    server = build_server(
        args.model,
        batch,
        timeout,
        args.max_rows,
        args.max_body_bytes,
        fast_queue=args.fast_queue,
        runtime=args.runtime,
        max_json_depth=args.max_json_depth,
    )
    run_server(server, args.host, args.port, limits)
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    n = explain_file(
        args.model,
        args.data,
        args.out,
        args.target,
        args.chunk_rows,
        args.overwrite,
        ignore=args.ignore,
        model_file=args.model_file,
    )
    print(f"[simshap] {n} rows explained into {args.out}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``export``, ``serve`` and ``explain``."""
    p = subparsers.add_parser("export", help="export an explainer as ONNX or TorchScript")
    p.add_argument("model", help="explainer file (e.g. runs/census/simshap.pt)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_export)
    trusted = (
        "the user's model file (LightGBM .txt, or a joblib / pickle file: it runs code "
        "when loaded, so give only files you trust); needed for game: marginal or "
        "baseline, optional for the surrogate game (adds the model's own output)"
    )
    p = subparsers.add_parser("serve", help="serve an explainer over HTTP")
    p.add_argument("model", help="explainer file (.pt from `simshap run` or simshap.save)")
    p.add_argument("--model-file", default=None, help=trusted)
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--backend",
        choices=["uvicorn", "litserve"],
        default="uvicorn",
        help="uvicorn: in-process, fastest for small networks on a CPU (default); "
        "litserve: merges concurrent requests into batches (large networks, GPU)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, each with the model (uvicorn backend)",
    )
    p.add_argument(
        "--runtime",
        choices=["onnx", "torch"],
        default="onnx",
        help="onnx: ONNX Runtime on the exported graph (default, ~3x faster per row); "
        "torch: the PyTorch module",
    )
    p.add_argument("--max-rows", type=int, default=1024, help="rows per request at most")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=1 << 20,
        help="request body limit in bytes (413 above it; default 1048576)",
    )
    p.add_argument(
        "--max-json-depth",
        type=int,
        default=32,
        help="deepest nesting of JSON arrays and objects in a body (400 above it; default 32)",
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=16384,
        help="request line and headers together, in bytes (431 above it; default "
        "16384; h11's max incomplete event size)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=10.0,
        help="seconds a client gets to send a whole request (headers and body, from "
        "its first byte) and a connection may sit idle; then it is closed (default "
        "10; uvicorn's keep-alive timeout, armed from the connection's start)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="connections at once; requests beyond it get 503 (default 1000; "
        "uvicorn's limit_concurrency)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="on SIGTERM, seconds requests being answered get to finish; "
        "connections still sending a request are closed at once (default 10)",
    )
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="litserve: concurrent requests merged into one forward pass (16)",
    )
    p.add_argument(
        "--batch-timeout",
        type=float,
        default=None,
        help="litserve: milliseconds to wait while filling a batch (2)",
    )
    p.add_argument(
        "--fast-queue",
        action="store_true",
        help="litserve: ZeroMQ queue between the HTTP server and the worker",
    )
    p.set_defaults(func=_cmd_serve)
    p = subparsers.add_parser("explain", help="explain a CSV / Parquet file into Parquet")
    p.add_argument("model", help="explainer file (.pt from `simshap run` or simshap.save)")
    p.add_argument("data", help="rows to explain (.csv or .parquet)")
    p.add_argument("--out", required=True, help="Parquet file to write")
    p.add_argument("--target", default=None, help="keep one class (its name or index)")
    p.add_argument(
        "--ignore",
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="columns that are not features (ids, the target), passed through",
    )
    p.add_argument("--model-file", default=None, help=trusted)
    p.add_argument("--chunk-rows", type=int, default=65536, help="rows per chunk")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_explain)
