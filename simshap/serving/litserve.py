"""The same endpoint served by LitServe, which merges concurrent requests into one batch.

Worth it where one forward pass is expensive (large networks, a GPU). For the small tabular
networks on a CPU the in-process server of :mod:`simshap.serving.app` is faster: see its docstring.
"""

from __future__ import annotations

from typing import Any

import litserve as ls
import numpy as np
import torch
from fastapi import Depends, HTTPException

from simshap.amortized.io import load_explainer
from simshap.errors import UserError
from simshap.serving.guard import JSONGuard, api_token, authorize
from simshap.serving.handler import ExplainHandler
from simshap.serving.http import ServerLimits

__all__ = ["ExplainAPI", "build_server", "run_server"]


class ExplainAPI(ls.LitAPI):
    """LitServe API around a saved tabular explainer.

    Args:
        model_path: the explainer file.
        max_rows: the most rows one request may carry.
        max_batch_size: requests LitServe merges into one forward pass.
        batch_timeout: seconds LitServe waits to fill a batch.
        runtime: ``"onnx"`` (ONNX Runtime on the exported graph) or ``"torch"``.
    """

    def __init__(
        self,
        model_path: str,
        max_rows: int = 1024,
        max_batch_size: int = 16,
        batch_timeout: float = 0.002,
        runtime: str = "onnx",
    ) -> None:
        super().__init__(
            max_batch_size=max_batch_size, batch_timeout=batch_timeout, api_path="/explain"
        )
        self.model_path = str(model_path)
        self.max_rows = int(max_rows)
        self.runtime = runtime

    def setup(self, device: str) -> None:  # noqa: D102
        torch.set_num_threads(1)
        self.handler = ExplainHandler(
            load_explainer(self.model_path), self.max_rows, runtime=self.runtime
        )

    def authorize(self, auth: Any = Depends(authorize)) -> None:  # noqa: B008, D102
        return None

    def decode_request(self, request: dict) -> tuple[dict[str, Any], int | None]:  # noqa: D102
        try:
            return self.handler.decode(request)
        except UserError as err:
            raise HTTPException(status_code=422, detail=str(err)) from None

    def batch(self, inputs: list) -> tuple[dict[str, Any], list[int], list]:  # noqa: D102
        rows = {key: np.concatenate([r[key] for r, _ in inputs]) for key in ("raw", "encoded", "x")}
        rows["parts"] = [r for r, _ in inputs]
        return rows, [len(r["x"]) for r, _ in inputs], [t for _, t in inputs]

    def unbatch(self, output: tuple) -> list:  # noqa: D102
        (values, prediction), sizes, targets, parts = output
        return list(
            zip(
                zip(torch.split(values, sizes), torch.split(prediction, sizes), strict=True),
                targets,
                parts,
                strict=True,
            )
        )

    def predict(self, x: Any) -> Any:  # noqa: D102
        if isinstance(x, tuple) and len(x) == 3:  # a batch of requests
            rows, sizes, targets = x
            return self.handler.explain(rows), sizes, targets, rows["parts"]
        rows, target = x
        return self.handler.explain(rows), target, rows

    def encode_response(self, output: tuple) -> dict[str, Any]:  # noqa: D102
        result, target, rows = output
        return self.handler.encode(result, target, rows)


def build_server(
    model_path: str,
    max_batch_size: int = 16,
    batch_timeout_ms: float = 2.0,
    max_rows: int = 1024,
    max_body_bytes: int = 1 << 20,
    fast_queue: bool = False,
    runtime: str = "onnx",
    max_json_depth: int = 32,
) -> ls.LitServer:
    """A LitServer for a saved explainer, with the JSON guard and ``GET /metadata``.

    ``fast_queue=True`` uses LitServe's ZeroMQ queue between the HTTP server and the inference
    worker instead of a multiprocessing queue. ``runtime``: see :class:`ExplainHandler`. The
    guard checks ``$SIMSHAP_API_TOKEN`` before the body is read (a set but empty token
    refuses to start, see :func:`simshap.serving.guard.api_token`).
    """
    if runtime not in ("onnx", "torch"):
        raise UserError(f"runtime must be 'onnx' or 'torch', got {runtime!r}")
    token = api_token()
    api = ExplainAPI(
        model_path,
        max_rows=max_rows,
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout_ms / 1000.0,
        runtime=runtime,
    )
    guard = (
        JSONGuard,
        {"max_body_bytes": max_body_bytes, "token": token, "max_depth": max_json_depth},
    )
    server = ls.LitServer(
        api, accelerator="cpu", devices=1, timeout=30, middlewares=[guard], fast_queue=fast_queue
    )
    meta = ExplainHandler(load_explainer(model_path), runtime="torch").meta
    server.app.add_api_route(
        "/metadata", lambda: meta, methods=["GET"], dependencies=[Depends(authorize)]
    )
    return server


def run_server(
    server: ls.LitServer,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits | None = None,
) -> None:
    """Run a :func:`build_server` server with the same connection limits as the default backend.

    Args:
        server: the LitServer.
        host: the address to bind.
        port: the port.
        limits: see :class:`simshap.serving.http.ServerLimits` (uvicorn's h11 protocol).
    """
    options = (limits or ServerLimits()).uvicorn_options()
    # LitServe passes its own graceful-shutdown deadline to uvicorn: set it there
    server.uvicorn_graceful_timeout = options.pop("timeout_graceful_shutdown")
    server.run(host=host, port=port, generate_client_file=False, log_level="warning", **options)
