"""Loopback servers and load generators shared by ``benchmarks/serving.py``'s rows."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

SCRIPT = Path(__file__).with_name("serving.py")  # its hidden --kernel-server and
# --httptools-server modes serve the anchor and the pre-issue-29 server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(model: Path, mode: str = "uvicorn", threads: int = 1) -> tuple[subprocess.Popen, str]:
    """Start a server (``uvicorn``, ``torch``, ``litserve``, ``kernel`` or ``httptools``) on a
    loopback port."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("SIMSHAP_API_TOKEN", None)
    if mode in ("kernel", "httptools"):
        cmd = [
            sys.executable,
            SCRIPT,
            f"--{mode}-server",
            str(model),
            "--port",
            str(port),
            "--threads",
            str(threads),
        ]
    else:
        cmd = [sys.executable, "-m", "simshap.cli", "serve", str(model), "--port", str(port)]
        if mode == "litserve":
            cmd += ["--backend", "litserve", "--max-batch-size", "64", "--batch-timeout", "2"]
        if mode == "torch":
            cmd += ["--runtime", "torch"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )  # a group: LitServe forks its workers
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/health", timeout=2).text == "ok":
                return proc, base
        except httpx.HTTPError:
            time.sleep(1)
    stop(proc)
    raise RuntimeError(f"server for {model} did not start")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server's whole process group (LitServe's forked workers included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(coroutine):
    """Run a load generator on uvloop when it is installed (less client CPU per request)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _summary(latencies: list[float], errors: int, concurrency: int, wall: float) -> dict:
    lat = np.array(latencies) * 1000.0
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": int(errors),
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)),
        "throughput_rps": len(lat) / wall,
    }


async def _drive(post, rows: np.ndarray, concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients calling ``post(body) -> status`` with one row each, back to
    back, for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < stop:
            body = {"instances": [rows[i % len(rows)].tolist()]}
            t0 = time.perf_counter()
            status = await post(body)
            latencies.append(time.perf_counter() - t0)
            errors += status != 200
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return _summary(latencies, errors, concurrency, time.perf_counter() - t0)


async def load(base: str, rows: np.ndarray, concurrency: int, seconds: float) -> dict:
    """Single-row requests from an aiohttp client with ``concurrency`` connections."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def post(body: dict) -> int:
            async with session.post("/explain", json=body) as r:
                await r.read()
                return r.status

        return await _drive(post, rows, concurrency, seconds)


async def load_httpx(base: str, rows: np.ndarray, concurrency: int, seconds: float) -> dict:
    """The same load from httpx's async client (whose pool costs more CPU per request)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def post(body: dict) -> int:
            return (await client.post("/explain", json=body)).status_code

        return await _drive(post, rows, concurrency, seconds)
