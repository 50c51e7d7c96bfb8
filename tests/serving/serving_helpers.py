"""Shared by the serving tests: a tiny trained explainer and a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import uvicorn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import simshap
from simshap.amortized.io import save_explainer
from simshap.serving.http import ServerLimits


def train_tiny(folder: Path) -> tuple[Path, pd.DataFrame]:
    """A small SimSHAP on four breast_cancer columns plus a string column; (file, rows)."""
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 30]].copy()
    frame.insert(2, "site", np.where(frame.index % 3 == 0, "north", "south"))
    x, y = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(max_iter=500).fit(x.drop(columns="site"), y)

    def proba(rows: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(rows.drop(columns="site"))

    explainer = simshap.fit(
        proba,
        x,
        y,
        accelerator="cpu",
        surrogate={"hidden": 32, "layers": 2, "max_epochs": 1},
        explainer={
            "hidden": 32,
            "layers": 2,
            "max_epochs": 1,
            "val_instances": 16,
            "val_budget": 64,
        },
    )
    path = Path(folder) / "simshap.pt"
    save_explainer(explainer, path, overwrite=True)
    return path, x


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """A real uvicorn server (the limits' h11 protocol) on 127.0.0.1, in a thread.

    Its loggers propagate (``log_config=None``), so ``caplog`` sees what it logs.
    """

    def __init__(self, app: Any, limits: ServerLimits) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            **limits.uvicorn_options(),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no server"
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> float:
        """Ask the server to shut down (as SIGTERM does); seconds until it has."""
        t0 = time.monotonic()
        self.server.should_exit = True
        self.thread.join(timeout)
        return time.monotonic() - t0

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.stop()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.settimeout(10)
        return sock

    def healthy(self) -> bool:
        return httpx.get(self.base + "/health", timeout=5).text == "ok"


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds it took."""
    t0, data = time.monotonic(), b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - t0


async def asgi_request(app: Any, method: str, path: str, headers: list, chunks: list[bytes]):
    """One request through ``httpx.ASGITransport`` (the body sent as ``chunks``)."""

    async def stream():
        for chunk in chunks:
            yield chunk

    content = stream() if len(chunks) != 1 else chunks[0]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(
            method, path, headers=headers, content=content if chunks else None
        )


def call(
    app: Any,
    method: str,
    path: str,
    headers: list | None = None,
    body: bytes | None = None,
    chunks: list[bytes] | None = None,
) -> httpx.Response:
    """Synchronous :func:`asgi_request`."""
    parts = chunks if chunks is not None else ([body] if body is not None else [])
    return asyncio.run(asgi_request(app, method, path, headers or [], parts))
