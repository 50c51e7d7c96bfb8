"""The hostile-client rows of ``benchmarks/serving.py`` (issue 29), on loopback only.

- a soak: a fixed number of single-row requests at fixed concurrency; errors and the server's
  resident memory before and after;
- p99 of normal requests while slow clients hold connections open (half dribble their headers
  a byte a second, half stall in their body), against the p99 without them, in one run;
- the seconds from SIGTERM to exit with stalled clients connected.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from _loopback import free_port, load, run, start, stop

HALF_HEADERS = b"POST /explain HTTP/1.1\r\nHost: bench\r\nX-Slow: "
STALLED_BODY = (
    b"POST /explain HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100000\r\n\r\n{"instances": ['
)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def drive_count(base: str, rows: np.ndarray, concurrency: int, count: int) -> dict:
    """``count`` single-row requests from ``concurrency`` aiohttp connections, back to back."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    issued = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:

        async def worker() -> None:
            nonlocal errors, issued
            while issued < count:
                i = issued
                issued += 1
                t0 = time.perf_counter()
                try:
                    body = {"instances": [rows[i % len(rows)].tolist()]}
                    async with session.post("/explain", json=body) as r:
                        await r.read()
                        errors += r.status != 200
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000.0
    return {
        "concurrency": concurrency,
        "requests": len(lat),
        "errors": int(errors),
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "throughput_rps": len(lat) / wall,
    }


def soak(
    base: str,
    pid: int,
    rows: np.ndarray,
    count: int = 30_000,
    concurrency: int = 32,
    warmup: int = 3_000,
) -> dict:
    """``warmup`` requests, then the server's RSS, ``count`` requests, and its RSS again."""
    run(drive_count(base, rows, concurrency, warmup))
    before = rss_bytes(pid)
    out = run(drive_count(base, rows, concurrency, count))
    after = rss_bytes(pid)
    out.update(
        {
            "warmup_requests": warmup,
            "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20,
            "rss_growth_pct": 100.0 * (after - before) / before,
        }
    )
    return out


async def _slow_client(port: int, kind: bytes, stop: asyncio.Event, stats: dict) -> None:
    """Hold one connection open by sending a byte a second; reconnect when the server closes."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(0.2)
            continue
        stats["open"] += 1
        stats["opened"] += 1
        writer.write(kind)
        try:
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(1024), 1.0)
                except asyncio.TimeoutError:
                    writer.write(b"x" if kind is HALF_HEADERS else b" ")
                    continue
                stats["closed_by_server" if not data else "answered"] += 1
                break
        except (ConnectionError, OSError):
            stats["closed_by_server"] += 1
        finally:
            stats["open"] -= 1
            writer.close()


async def with_slow_clients(port: int, n_slow: int, measure: Callable[[], Awaitable[dict]]) -> dict:
    """Run ``measure()`` while ``n_slow`` slow clients hold connections open."""
    stop = asyncio.Event()
    stats = {"open": 0, "opened": 0, "closed_by_server": 0, "answered": 0, "refused": 0}
    tasks = [
        asyncio.create_task(_slow_client(port, (HALF_HEADERS, STALLED_BODY)[k % 2], stop, stats))
        for k in range(n_slow)
    ]
    await asyncio.sleep(2.0)  # all connected
    samples: list[int] = []

    async def sample() -> None:
        while not stop.is_set():
            samples.append(stats["open"])
            await asyncio.sleep(0.5)

    sampler = asyncio.create_task(sample())
    out = await measure()
    stop.set()
    await asyncio.gather(*tasks, sampler, return_exceptions=True)
    out["slow_clients"] = {
        **{k: v for k, v in stats.items() if k != "open"},
        "held_open_min": min(samples),
        "held_open_mean": float(np.mean(samples)),
    }
    return out


def p99_under_slow_clients(
    base: str, rows: np.ndarray, concurrency: int = 16, seconds: float = 15.0, n_slow: int = 200
) -> dict:
    """p99 at ``concurrency`` without slow clients, with ``n_slow`` of them, and without again."""
    port = int(base.rsplit(":", 1)[1])
    before = run(load(base, rows, concurrency, seconds))
    during = run(with_slow_clients(port, n_slow, lambda: load(base, rows, concurrency, seconds)))
    after = run(load(base, rows, concurrency, seconds))
    baseline = (before["p99_ms"] + after["p99_ms"]) / 2
    return {
        "without": before,
        "with_slow": during,
        "without_again": after,
        "n_slow": n_slow,
        "p99_ratio": during["p99_ms"] / baseline,
    }


def shutdown_with_stalled_clients(cmd: list[str], port: int, env: dict, deadline: float) -> dict:
    """Seconds from SIGTERM to exit of ``simshap serve`` with stalled clients connected.

    Connected at SIGTERM: a stalled body, half-sent headers, an idle keep-alive connection
    and a connection that never sent a byte. What each stalled client then received is kept.
    """
    import httpx

    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        socks[0].sendall(STALLED_BODY)
        socks[1].sendall(HALF_HEADERS)
        socks[2].sendall(b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks[2].recv(4096)
        time.sleep(0.5)
        t0 = time.perf_counter()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=deadline + 60)
        seconds = time.perf_counter() - t0
        received = []
        for sock in socks:
            sock.settimeout(2)
            try:
                received.append(sock.recv(4096).decode("latin-1")[:40])
            except OSError as err:
                received.append(type(err).__name__)
            sock.close()
        log = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return {
        "deadline_s": deadline,
        "seconds": seconds,
        "received": received,
        "traceback_logged": "Traceback" in log,
        "goal_s": deadline + 1.0,
    }


def hostile_clients(model: Path, rows: np.ndarray, seconds: float) -> dict:
    """The issue-29 rows: soak, p99 under slow connections, shutdown with stalled clients."""
    out = {}
    proc, base = start(model, "uvicorn")
    try:
        out["soak"] = soak(base, proc.pid, rows)
        print("soak", json.dumps(out["soak"]), flush=True)
        out["slow"] = p99_under_slow_clients(base, rows, seconds=seconds)
        print("slow", json.dumps(out["slow"]), flush=True)
    finally:
        stop(proc)
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SIMSHAP_API_TOKEN", None)
    deadline = 5.0
    cmd = [
        sys.executable,
        "-m",
        "simshap.cli",
        "serve",
        str(model),
        "--port",
        str(port),
        "--request-timeout",
        "30",
        "--shutdown-timeout",
        str(deadline),
    ]
    out["shutdown"] = shutdown_with_stalled_clients(cmd, port, env, deadline)
    s, d = out["soak"], out["shutdown"]
    out["goals"] = {
        "soak": s["errors"] == 0 and s["rss_growth_pct"] < 5.0,
        "slow": out["slow"]["p99_ratio"] <= 3.0,
        "shutdown": d["seconds"] <= d["goal_s"],
    }
    return out


def summary_lines(h: dict[str, Any]) -> list[str]:
    """The RESULTS.md lines of these rows."""
    s, p, d = h["soak"], h["slow"], h["shutdown"]
    sc = p["with_slow"]["slow_clients"]
    return [
        "| row | figures | goal | met |",
        "| --- | --- | --- | --- |",
        f"| soak: {s['requests']:,} requests at c = {s['concurrency']} (after "
        f"{s['warmup_requests']:,} warm-up) | {s['errors']} errors, p50 {s['p50_ms']:.1f} ms, "
        f"p99 {s['p99_ms']:.1f} ms, "
        f"{s['throughput_rps']:.0f} req/s; server RSS {s['rss_before_mb']:.1f} -> "
        f"{s['rss_after_mb']:.1f} MB ({s['rss_growth_pct']:+.2f}%) | 0 errors, RSS growth < 5% | "
        f"{h['goals']['soak']} |",
        f"| p99 at c = {p['without']['concurrency']} with {p['n_slow']} slow connections held "
        f"open | without {p['without']['p99_ms']:.1f} ms, with {p['with_slow']['p99_ms']:.1f} ms, "
        f"without again {p['without_again']['p99_ms']:.1f} ms (ratio {p['p99_ratio']:.2f}); "
        f"req/s {p['without']['throughput_rps']:.0f} / {p['with_slow']['throughput_rps']:.0f} / "
        f"{p['without_again']['throughput_rps']:.0f}; errors {p['with_slow']['errors']}; slow "
        f"connections open: min {sc['held_open_min']}, mean {sc['held_open_mean']:.0f}, closed "
        f"by the server at the request timeout {sc['closed_by_server']} times, answered "
        f"{sc['answered']} | ratio <= 3 | {h['goals']['slow']} |",
        f"| shutdown (SIGTERM) with a stalled body, half-sent headers, an idle and a silent "
        f"connection, `--shutdown-timeout {d['deadline_s']:.0f}` | {d['seconds']:.2f} s; the "
        f"clients received {d['received']}; traceback logged: {d['traceback_logged']} | <= "
        f"{d['goal_s']:.0f} s | {h['goals']['shutdown']} |",
    ]
