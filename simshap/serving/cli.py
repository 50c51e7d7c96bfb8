"""Production commands: ``simshap export``, ``simshap serve``, ``simshap explain``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from simshap.errors import MissingFileError, UserError

__all__ = ["register"]


def _cmd_export(args: argparse.Namespace) -> int:
    from simshap.amortized.export import export_explainer
    from simshap.amortized.io import load_explainer

    path = export_explainer(load_explainer(args.model), args.out, args.format, args.overwrite)
    print(f"[simshap] {args.format} graph written to {path}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    if not Path(args.model).is_file():
        raise MissingFileError(f"no explainer file at {args.model}")
    from simshap.serving.image_app import is_image_export

    if is_image_export(args.model):  # an image explainer's ONNX export
        import uvicorn

        from simshap.serving.image_app import build_image_app

        app = build_image_app(args.model, max_body_bytes=args.max_body_bytes)
        print(f"[simshap] serving image explainer {args.model} at {args.host}:{args.port}")
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0
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
    from simshap.serving.files import explain_file

    n = explain_file(
        args.model,
        args.data,
        args.out,
        args.target,
        args.chunk_rows,
        args.overwrite,
        ignore=args.ignore,
        model_file=args.model_file,
        engine=args.engine,
        workers=args.workers,
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
    p = subparsers.add_parser(
        "explain",
        help="explain a CSV / Parquet file (or folder) into Parquet, locally, on Spark or on Ray",
    )
    p.add_argument("model", help="explainer file (.pt from `simshap run` or simshap.save)")
    p.add_argument("data", help="rows to explain (.csv or .parquet file, or a folder of them)")
    p.add_argument("--out", required=True, help="Parquet file (local) or folder (spark, ray)")
    p.add_argument(
        "--engine",
        choices=["local", "spark", "ray"],
        default="local",
        help="local (default): this process; spark: a local[N] Spark session (or "
        "$SPARK_MASTER); ray: a local Ray (or $RAY_ADDRESS)",
    )
    p.add_argument("--workers", type=int, default=2, help="cores for spark / ray (default 2)")
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
