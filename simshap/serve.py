"""Serve a tabular explainer over HTTP with LitServe (dynamic batching of concurrent requests).

Endpoints: ``GET /health``, ``GET /metadata``, ``POST /explain`` with
``{"instances": [[...], ...]}`` (rows in feature order) or ``{"instances": [{name: value}, ...]}``
(records), and an optional ``"target"`` (class index or name). The answer is
``{"values", "base_values", "feature_names", "class_names"}`` with values ``(B, d, C)``, or
``(B, d)`` for one target.

Bad input always gets a 4xx with a JSON ``detail`` that names the problem: a wrong content
type (415), a body over the size limit (413), malformed JSON (400), a missing or empty
``instances`` list, too many rows, wrong feature counts or names, NaN or infinite values,
strings where numbers belong, an unknown target (422). When ``SIMSHAP_API_TOKEN`` is set,
every endpoint answers 401 to a request without ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import litserve as ls
import pandas as pd
import torch
from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from simshap.errors import UserError
from simshap.io import load_explainer

__all__ = ["ExplainAPI", "JSONGuard", "build_server", "metadata"]

TOKEN_ENV = "SIMSHAP_API_TOKEN"
_bearer = HTTPBearer(auto_error=False)


def metadata(explainer: Any) -> dict[str, Any]:
    """Feature names, class names, categories and base values of a loaded explainer."""
    prep = explainer.preprocessor
    c = explainer.net.spec["num_classes"]
    return {
        "method": type(explainer).__name__,
        "feature_names": list(prep.feature_names),
        "categories": dict(prep.categories),
        "class_names": explainer.hparams.class_names or [str(i) for i in range(c)],
        "base_values": [float(v) for v in explainer.base_value.cpu()],
    }


class JSONGuard:
    """ASGI middleware: only JSON bodies of bounded size reach the API, or a clear 4xx.

    Args:
        app: the wrapped application.
        max_body_bytes: the largest request body accepted (413 above it).
    """

    def __init__(self, app: Any, max_body_bytes: int = 1 << 20) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    @staticmethod
    async def _reject(send: Any, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:  # noqa: D102
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            await self._reject(send, 415, "the body must be JSON: send Content-Type: "
                                          "application/json")  # fmt: skip
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(send, 413, f"the body is over the {self.max_body_bytes}-byte "
                                          "limit; send fewer rows per request")  # fmt: skip
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                await self._reject(send, 413, f"the body is over the {self.max_body_bytes}-byte "
                                              "limit; send fewer rows per request")  # fmt: skip
                return
        body = b"".join(chunks)
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            await self._reject(send, 400, f"malformed JSON: {err}")
            return
        if not isinstance(parsed, dict):
            await self._reject(send, 422, 'the body must be a JSON object {"instances": [...]}')
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _finite_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {json.dumps(value)[:40]}")
    if not math.isfinite(value):
        raise UserError(f"{where} is NaN or infinite; impute or drop it")
    return float(value)


class ExplainAPI(ls.LitAPI):
    """LitServe API around a saved tabular explainer (``simshap.io.load_explainer``).

    Args:
        model_path: the explainer file.
        max_rows: the most rows one request may carry.
        max_batch_size: requests LitServe merges into one forward pass.
        batch_timeout: seconds LitServe waits to fill a batch.
    """

    def __init__(self, model_path: str, max_rows: int = 1024, max_batch_size: int = 16,
                 batch_timeout: float = 0.002) -> None:  # fmt: skip
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout,
                         api_path="/explain")  # fmt: skip
        self.model_path = str(model_path)
        self.max_rows = int(max_rows)

    def setup(self, device: str) -> None:  # noqa: D102
        torch.set_num_threads(1)
        self.explainer = load_explainer(self.model_path)
        if self.explainer.preprocessor is None:
            raise UserError(f"{self.model_path} holds no preprocessing: serve a tabular "
                            "explainer trained by `simshap run` or SimSHAP.fit")  # fmt: skip
        self.meta = metadata(self.explainer)

    def authorize(self, auth: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:  # noqa: B008, D102
        token = os.environ.get(TOKEN_ENV)
        if token and (auth is None or auth.credentials != token):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token")

    # ------------------------------------------------------------------ request -> rows
    def _rows(self, instances: Any) -> pd.DataFrame:
        names = self.meta["feature_names"]
        cats = self.meta["categories"]
        if not isinstance(instances, list) or not instances:
            raise UserError('"instances" must be a non-empty list of rows or records')
        if len(instances) > self.max_rows:
            raise UserError(f"{len(instances)} rows is over this server's limit of "
                            f"{self.max_rows} per request")  # fmt: skip
        rows = []
        for i, inst in enumerate(instances):
            if isinstance(inst, dict):
                missing = [n for n in names if n not in inst]
                unknown = [k for k in inst if k not in names]
                if missing or unknown:
                    raise UserError(f"instance {i}: missing features {missing[:5]}, unknown "
                                    f"features {unknown[:5]}")  # fmt: skip
                inst = [inst[n] for n in names]
            if not isinstance(inst, list) or len(inst) != len(names):
                raise UserError(f"instance {i} must be a list of {len(names)} values in the "
                                f"order {names[:5]}... or a record of them")  # fmt: skip
            row = []
            for name, value in zip(names, inst, strict=True):
                if name in cats:
                    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                        raise UserError(f"instance {i}, feature {name!r}: expected one of "
                                        f"{cats[name][:5]}")  # fmt: skip
                    row.append(str(value))
                else:
                    row.append(_finite_number(value, f"instance {i}, feature {name!r}"))
            rows.append(row)
        return pd.DataFrame(rows, columns=names)

    def _target(self, target: Any) -> int | None:
        if target is None:
            return None
        classes = self.meta["class_names"]
        if isinstance(target, str) and target in classes:
            return classes.index(target)
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(classes):
            return target
        raise UserError(f'"target" must be a class index 0..{len(classes) - 1} or one of '
                        f"{classes}")  # fmt: skip

    def decode_request(self, request: dict) -> tuple[torch.Tensor, int | None]:  # noqa: D102
        try:
            unknown = set(request) - {"instances", "target"}
            if unknown:
                raise UserError(f"unknown keys {sorted(unknown)}; send instances and target")
            if "instances" not in request:
                raise UserError('the body needs "instances": a list of rows or records')
            target = self._target(request.get("target"))
            x = self.explainer.preprocessor.transform(self._rows(request["instances"]))
        except UserError as err:
            raise HTTPException(status_code=422, detail=str(err)) from None
        return x, target

    # ------------------------------------------------------------------ batching
    def batch(self, inputs: list) -> tuple[torch.Tensor, list[int], list]:  # noqa: D102
        rows = torch.cat([x for x, _ in inputs])
        return rows, [len(x) for x, _ in inputs], [t for _, t in inputs]

    def unbatch(self, output: tuple) -> list:  # noqa: D102
        values, sizes, targets = output
        return list(zip(torch.split(values, sizes), targets, strict=True))

    def predict(self, x: Any) -> Any:  # noqa: D102
        if isinstance(x, tuple) and len(x) == 3:  # a batch of requests
            rows, sizes, targets = x
            with torch.no_grad():
                return self.explainer.attributions(rows), sizes, targets
        rows, target = x
        with torch.no_grad():
            return self.explainer.attributions(rows), target

    def encode_response(self, output: tuple) -> dict[str, Any]:  # noqa: D102
        values, target = output
        base = self.meta["base_values"]
        if target is not None:
            values, base = values[..., target], base[target]
        return {"values": values.tolist(), "base_values": base,
                "feature_names": self.meta["feature_names"],
                "class_names": self.meta["class_names"]}  # fmt: skip


def build_server(
    model_path: str,
    max_batch_size: int = 16,
    batch_timeout_ms: float = 2.0,
    max_rows: int = 1024,
    max_body_bytes: int = 1 << 20,
    fast_queue: bool = False,
) -> ls.LitServer:
    """A LitServer for a saved explainer, with the JSON guard and ``GET /metadata``.

    ``fast_queue=True`` uses LitServe's ZeroMQ queue between the HTTP server and the inference
    worker instead of a multiprocessing queue.
    """
    api = ExplainAPI(model_path, max_rows=max_rows, max_batch_size=max_batch_size,
                     batch_timeout=batch_timeout_ms / 1000.0)  # fmt: skip
    guard = (JSONGuard, {"max_body_bytes": max_body_bytes})
    server = ls.LitServer(api, accelerator="cpu", devices=1, timeout=30, middlewares=[guard],
                          fast_queue=fast_queue)  # fmt: skip
    meta = metadata(load_explainer(model_path))
    server.app.add_api_route("/metadata", lambda: meta, methods=["GET"],
                             dependencies=[Depends(api.authorize)])  # fmt: skip
    return server
