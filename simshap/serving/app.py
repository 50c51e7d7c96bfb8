"""Serve a tabular explainer over HTTP: Starlette + uvicorn, inference in the server process.

Endpoints: ``GET /health``, ``GET /metadata``, ``POST /explain`` with
``{"instances": [[...], ...]}`` (rows in feature order) or ``{"instances": [{name: value}, ...]}``
(records), and an optional ``"target"`` (class index or name). The answer is
``{"values", "base_values", "feature_names", "class_names"}`` with values ``(B, d, C)``, or
``(B, d)`` for one target.

Bad input always gets a 4xx with a JSON ``detail`` that names the problem: a missing or wrong
bearer token (401, checked before the body is read), a wrong content type (415), a body over
the size limit (413), JSON nested too deep or malformed (400), a missing or empty
``instances`` list, too many rows, wrong feature counts or names, NaN or infinite values,
strings where numbers belong, an unknown target (422), an unknown path or method (404, 405);
at the HTTP level, headers over the limit (431) and malformed requests (400). When
``SIMSHAP_API_TOKEN`` is set, every path but ``/health`` (open for probes) needs
``Authorization: Bearer <token>``; set but empty, the server refuses to start. The checks in
front of the app are in :mod:`simshap.serving.guard`, the connection limits (timeouts, header
size, connections, shutdown deadline) in :mod:`simshap.serving.http`.

Why no batching queue here: one census row costs tens of microseconds of inference (ONNX
Runtime on the exported graph), while handing a request to another process and back
(LitServe's design) costs milliseconds; on 2 cores the in-process server answers more
requests than the LitServe one at every concurrency, at a lower p99 (``benchmarks/serving.py``
measures both in one run). For large networks on a GPU, where
merging requests pays, :mod:`simshap.serving.litserve` serves the same API with LitServe's
dynamic batching (``simshap serve --backend litserve``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from simshap.amortized.io import load_explainer
from simshap.errors import UserError
from simshap.serving.guard import PARSED, TOKEN_ENV, JSONGuard, api_token, authorize
from simshap.serving.handler import ExplainHandler, metadata
from simshap.serving.http import ServerLimits

__all__ = [
    "TOKEN_ENV",
    "ExplainHandler",
    "JSONGuard",
    "ServerLimits",
    "authorize",
    "build_app",
    "metadata",
    "run_server",
]

CONFIG_ENV = "SIMSHAP_SERVE_CONFIG"
ENDPOINTS = "GET /health, GET /metadata, POST /explain"


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer; ASCII-escaped, so no client's text (a lone surrogate) can break it."""
    return Response(
        json.dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


def build_app(
    model_path: str,
    max_rows: int = 1024,
    max_body_bytes: int = 1 << 20,
    attributions: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
    runtime: str = "onnx",
    max_json_depth: int = 32,
    model_file: str | None = None,
) -> Starlette:
    """The ASGI app (Starlette) for a saved explainer: JSON guard, bearer token, three endpoints.

    The bearer token is ``$SIMSHAP_API_TOKEN``, read once here (see :func:`api_token`).

    Args:
        model_path: the explainer file (``simshap.amortized.io.save_explainer``).
        max_rows: rows per request at most.
        max_body_bytes: the largest request body (413 above it).
        attributions: see :class:`ExplainHandler`.
        runtime: ``"onnx"`` (ONNX Runtime on the exported graph) or ``"torch"``.
        max_json_depth: the deepest nesting of arrays and objects in a body (400 above it).
        model_file: the user's model file (LightGBM ``.txt``, or a trusted joblib / pickle
            file, which runs code when loaded): needed for the marginal and baseline games, and
            with the surrogate game it adds the model's own output to every answer.

    Raises:
        UserError: ``$SIMSHAP_API_TOKEN`` is set but empty, or a limit is not positive.
    """
    token = api_token()
    for name, value in (
        ("--max-rows", max_rows),
        ("--max-body-bytes", max_body_bytes),
        ("--max-json-depth", max_json_depth),
    ):
        if not value > 0:
            raise UserError(f"{name} must be positive, got {value}")
    model = None
    if model_file is not None:
        from simshap.models.original import load_user_model

        model = load_user_model(model_file)
    explainer = load_explainer(model_path, model=model)
    handler = ExplainHandler(explainer, max_rows, attributions, runtime)

    # Starlette (FastAPI's core) without FastAPI's request-handling layers: its dependency
    # solving and middleware cost more per request than the model (about 8% of throughput).
    # The guard has checked the token (every path but /health) before these run.
    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def meta(request: Request) -> Response:
        return _json(handler.meta)

    async def explain(request: Request) -> Response:
        # the guard has checked the content type, size and depth, and parsed the body
        try:
            rows, target = handler.decode(request.scope.get(PARSED))
            result = handler.explain(rows)
        except UserError as err:
            return _json({"detail": str(err)}, 422)
        return _json(handler.encode(result, target, rows))

    async def no_route(request: Request, exc: HTTPException) -> Response:
        detail = "no such path" if exc.status_code == 404 else "method not allowed"
        return _json(
            {
                "detail": f"{detail}: {request.method} {request.url.path[:80]}; this "
                f"server answers {ENDPOINTS}"
            },
            exc.status_code,
            exc.headers,
        )

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/metadata", meta, methods=["GET"]),
        Route("/explain", explain, methods=["POST"]),
    ]
    guard = Middleware(
        JSONGuard, max_body_bytes=max_body_bytes, token=token, max_depth=max_json_depth
    )
    return Starlette(
        routes=routes, middleware=[guard], exception_handlers={404: no_route, 405: no_route}
    )


def _app_from_env() -> Starlette:
    """Uvicorn factory for ``--workers > 1``: each worker builds the app from the env."""
    return build_app(**json.loads(os.environ[CONFIG_ENV]))


def run_server(
    model_path: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    max_rows: int = 1024,
    max_body_bytes: int = 1 << 20,
    runtime: str = "onnx",
    max_json_depth: int = 32,
    limits: ServerLimits | None = None,
    model_file: str | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``model_path`` with uvicorn until interrupted (one thread of torch per worker).

    Args:
        model_path: the explainer file.
        host: the address to bind (loopback by default).
        port: the port.
        workers: uvicorn worker processes (each loads the model).
        max_rows: rows per request at most.
        max_body_bytes: the largest request body.
        runtime: ``"onnx"`` (ONNX Runtime on the exported graph) or ``"torch"``.
        max_json_depth: the deepest nesting of arrays and objects in a body.
        limits: timeouts, header size, connections and the shutdown deadline (default
            :class:`ServerLimits`); uvicorn runs its h11 protocol with them.
        model_file: the user's model file (see :func:`build_app`).
        access_log: log every request (uvicorn's access log).
    """
    import uvicorn

    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    api_token()  # an empty token refuses to start here, before any worker does
    torch.set_num_threads(1)
    options = {
        "host": host,
        "port": port,
        "log_level": "info" if access_log else "warning",
        "access_log": access_log,
        **(limits or ServerLimits()).uvicorn_options(),
    }
    config = {
        "model_path": str(model_path),
        "max_rows": max_rows,
        "max_body_bytes": max_body_bytes,
        "runtime": runtime,
        "max_json_depth": max_json_depth,
        "model_file": model_file,
    }
    if workers == 1:
        app = build_app(**config)
        print(
            f"[simshap] serving {model_path} at http://{host}:{port} ({ENDPOINTS}); Ctrl-C stops",
            flush=True,
        )
        uvicorn.run(app, **options)
        return
    os.environ[CONFIG_ENV] = json.dumps(config)
    uvicorn.run("simshap.serving.app:_app_from_env", factory=True, workers=workers, **options)
