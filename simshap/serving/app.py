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
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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


def metadata(explainer: Any) -> dict[str, Any]:
    """What a client needs to know: names, categories, what is explained, how faithfully."""
    prep = explainer.preprocessor
    c = explainer.net.spec["num_classes"]
    info = dict(explainer.hparams.get("model_info") or {})
    return {
        "method": type(explainer).__name__,
        "game": explainer.game_name,
        "explained": info.get("explained"),
        "task": info.get("task"),
        "fidelity": info.get("fidelity"),
        "accuracy": info.get("accuracy"),
        "feature_names": list(prep.feature_names),
        "categories": dict(prep.categories),
        "missing": list(prep.missing),
        "unseen_categories": prep.unseen_categories,
        "class_names": explainer.hparams.class_names or [str(i) for i in range(c)],
        "base_values": [float(v) for v in explainer.base_value.cpu()],
    }


def _cell(value: Any, where: str) -> Any:
    """A JSON value of a row: a number, a string or null (missing); anything else is refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, a string or null, got {json.dumps(value)[:40]}")
    try:
        return float(value)
    except OverflowError:
        return math.inf


class ExplainHandler:
    """Request body -> checked raw rows -> Shapley values -> answer; shared by both servers.

    The rows are checked and encoded by the explainer's own preprocessing (the same as in
    Python and ``simshap explain``): a missing value (``null``) is accepted in the columns that
    may be missing, an unseen category becomes the ``other`` code and is counted in the
    answer's ``warnings`` (or refused with ``unseen_categories: error``).

    Args:
        explainer: a loaded tabular explainer (it must hold its preprocessing; a model's game
            needs the model attached).
        max_rows: the most rows one request may carry.
        attributions: ``(explainer, x) -> (B, d, C)`` values of network inputs ``x`` (the serving
            benchmark swaps in KernelSHAP as its anchor). Implies ``runtime="torch"``.
        runtime: ``"onnx"`` runs the explainer's exported graph (:mod:`simshap.amortized.export`,
            equal to PyTorch to 1e-5) in ONNX Runtime with one thread; ``"torch"`` the module.
    """

    def __init__(
        self,
        explainer: Any,
        max_rows: int = 1024,
        attributions: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
        runtime: str = "onnx",
    ) -> None:
        if runtime not in ("onnx", "torch"):
            raise UserError(f"runtime must be 'onnx' or 'torch', got {runtime!r}")
        if explainer.preprocessor is None:
            raise UserError(
                "this explainer holds no preprocessing: serve a tabular explainer "
                "trained by `simshap run` or simshap.fit"
            )
        if explainer.game_name != "surrogate" and explainer.model is None:
            raise UserError(
                f"this explainer explains the {explainer.game_name} game of a "
                "model, whose output its values add up to: pass --model with the "
                "model file"
            )
        self.explainer = explainer.eval()
        self.prep = explainer.preprocessor
        self.max_rows = int(max_rows)
        self.meta = metadata(explainer)
        self._attributions = attributions
        self.runtime = "torch" if attributions is not None else runtime
        self._session = self._onnx_session(explainer) if self.runtime == "onnx" else None

    @staticmethod
    def _onnx_session(explainer: Any) -> Any:
        """An ONNX Runtime session (one thread) on the explainer's exported graph."""
        import tempfile

        import onnxruntime as ort

        from simshap.amortized.export import export_explainer

        with tempfile.TemporaryDirectory() as tmp:
            path = export_explainer(explainer, Path(tmp) / "explainer.onnx")
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            return ort.InferenceSession(
                path.read_bytes(), options, providers=["CPUExecutionProvider"]
            )

    def rows(self, instances: Any) -> np.ndarray:
        """The ``instances`` list as raw rows ``(B, d)`` in feature order (object array)."""
        names = self.meta["feature_names"]
        if not isinstance(instances, list) or not instances:
            raise UserError('"instances" must be a non-empty list of rows or records')
        if len(instances) > self.max_rows:
            raise UserError(
                f"{len(instances)} rows is over this server's limit of {self.max_rows} per request"
            )
        rows = []
        for i, inst in enumerate(instances):
            if isinstance(inst, dict):
                missing = [n for n in names if n not in inst]
                unknown = [k[:40] for k in inst if k not in names]
                if missing or unknown:
                    raise UserError(
                        f"instance {i}: missing features {missing[:5]}, unknown "
                        f"features {unknown[:5]}"
                    )
                inst = [inst[n] for n in names]
            if not isinstance(inst, list) or len(inst) != len(names):
                raise UserError(
                    f"instance {i} must be a list of {len(names)} values in the "
                    f"order {names[:5]}... or a record of them"
                )
            rows.append(
                [_cell(v, f"instance {i}, feature {n!r}") for n, v in zip(names, inst, strict=True)]
            )
        return np.array(rows, dtype=object)

    def target(self, target: Any) -> int | None:
        """A class index from an index or a class name (``None``: every class)."""
        if target is None:
            return None
        classes = self.meta["class_names"]
        if isinstance(target, str) and target in classes:
            return classes.index(target)
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(classes):
            return target
        raise UserError(f'"target" must be a class index 0..{len(classes) - 1} or one of {classes}')

    def decode(self, request: Any) -> tuple[dict[str, Any], int | None]:
        """A parsed JSON body -> (checked rows for :meth:`explain`, target).

        Raises :class:`UserError` for bad input.
        """
        if not isinstance(request, dict):
            raise UserError('the body must be a JSON object {"instances": [...]}')
        unknown = set(request) - {"instances", "target"}
        if unknown:
            raise UserError(
                f"unknown keys {sorted(k[:40] for k in unknown)[:5]}; send "
                '"instances" and optionally "target"'
            )
        if "instances" not in request:
            raise UserError('the body needs "instances": a list of rows or records')
        target = self.target(request.get("target"))
        raw = self.rows(request["instances"])
        unseen: dict[str, int] = {}
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, by name
            encoded = self.prep.encode(raw, unseen)
            x = self.prep.network_inputs(encoded)
        return {"raw": raw, "encoded": encoded, "x": x, "unseen": unseen}, target

    def explain(self, rows: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Values ``(B, d, C)`` and the prediction ``(B, C)`` they add up to."""
        e = self.explainer
        model_game = e.game_name != "surrogate"
        v_full = None
        if model_game:  # v(N) = f(x): the model's own output on the rows as sent
            v_full = torch.from_numpy(e.model.on_array(rows["raw"])).float()
        if self._session is not None:
            feed = {"rows": rows["encoded"].astype(np.float32)}
            if model_game:
                feed["prediction"] = v_full.numpy()
            values, prediction = self._session.run(None, feed)
            return torch.from_numpy(values), torch.from_numpy(prediction)
        x = torch.from_numpy(rows["x"])
        with torch.inference_mode():
            if self._attributions is not None:
                values = self._attributions(e, x)
                return values, values.sum(1) + e.base_value
            if v_full is None:
                v_full = e.source.v_full(x)
            values = e.efficient(e.raw_attributions(x), v_full)
        return values, v_full

    def encode(
        self,
        result: tuple[torch.Tensor, torch.Tensor],
        target: int | None,
        rows: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The answer's JSON object."""
        values, prediction = result
        base = self.meta["base_values"]
        if target is not None:
            values, base, prediction = values[..., target], base[target], prediction[..., target]
        out = {
            "values": values.tolist(),
            "base_values": base,
            "prediction": prediction.tolist(),
            "feature_names": self.meta["feature_names"],
            "class_names": self.meta["class_names"],
            "game": self.meta["game"],
        }
        e = self.explainer
        if rows is not None and e.game_name == "surrogate" and e.model is not None:
            own = torch.from_numpy(e.model.on_array(rows["raw"])).float()
            out["model_output"] = (own[..., target] if target is not None else own).tolist()
        if rows is not None and rows["unseen"]:
            out["warnings"] = [
                f"{n} value(s) of {name!r} never seen in training were explained "
                "as the 'other' category"
                for name, n in rows["unseen"].items()
            ]
        return out


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
