"""Connection edges on a real uvicorn server on loopback (issue 29, item 9): clients that never
send, dribble their headers, stall in their body or stay idle are closed within the request
timeout while honest slow clients are served; oversized headers get 431; malformed HTTP gets a
4xx; the connection limit is uvicorn's; shutdown with stalled clients ends at once, and work in
flight gets the shutdown deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time

import httpx
import pytest
from serving_helpers import LoopbackServer, free_port, read_until_closed, train_tiny

from simshap.serving.app import build_app
from simshap.serving.http import ServerLimits

TIMEOUT = 1.0  # the request timeout of the servers below, in seconds
SLACK = 0.8  # scheduling slack on 2 shared cores
LIMITS = ServerLimits(
    request_timeout=TIMEOUT, shutdown_timeout=2.0, max_header_bytes=8192, max_connections=200
)
HEAD = (
    b"POST /explain HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    path, x = train_tiny(tmp_path_factory.mktemp("edges"))
    row = [v if isinstance(v, str) else float(v) for v in x.iloc[0]]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SIMSHAP_API_TOKEN", raising=False)
        app = build_app(str(path))
    return {"path": path, "app": app, "body": json.dumps({"instances": [row]}).encode()}


@pytest.fixture
def server(model, caplog):
    caplog.set_level(logging.WARNING)
    with LoopbackServer(model["app"], LIMITS) as srv:
        yield srv
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]  # no traceback for client junk


def _request(body: bytes) -> bytes:
    return (
        b"POST /explain HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /explain HTTP/1.1\r\nHost: x\r\n", HEAD + b'{"in'],
    ids=["silent", "half-headers", "stalled-body"],
)
def test_unfinished_requests_are_closed_within_the_timeout(server, sent):
    sock = server.connect()
    sock.sendall(sent)
    data, seconds = read_until_closed(sock)
    assert data == b"" and TIMEOUT - 0.05 <= seconds <= TIMEOUT + SLACK, seconds
    assert server.healthy()


@pytest.mark.timeout(60)
def test_idle_keep_alive_connection_is_closed_after_the_timeout(server, model):
    sock = server.connect()
    sock.sendall(_request(model["body"]))
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first[:80]
    data, seconds = read_until_closed(sock)
    assert TIMEOUT - 0.05 <= seconds <= TIMEOUT + SLACK, seconds


@pytest.mark.timeout(60)
def test_slowloris_connections_are_all_closed_and_honest_slow_clients_served(server, model):
    """50 connections dribbling a header byte every 0.1 s are closed about a timeout after
    their first byte, although each byte arrives well within it; meanwhile a client that sends
    its request in pieces over 0.5 s (under the timeout) is answered."""
    selector = selectors.DefaultSelector()
    socks = [server.connect() for _ in range(50)]
    start = time.monotonic()
    for sock in socks:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed: dict = {}
    honest = server.connect()
    request = _request(model["body"])
    pieces = [
        request[i : i + len(request) // 5 + 1]
        for i in range(0, len(request), len(request) // 5 + 1)
    ]
    while len(closed) < len(socks) and time.monotonic() - start < TIMEOUT + 5:
        if pieces:
            honest.sendall(pieces.pop(0))
        for key, _ in selector.select(timeout=0.1):
            try:
                gone = key.fileobj.recv(1024) == b""
            except ConnectionResetError:
                gone = True
            if gone:
                closed[key.fileobj] = time.monotonic() - start
                selector.unregister(key.fileobj)
        for sock in socks:
            if sock not in closed:
                try:
                    sock.send(b"X")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # closed; the selector reports it
    assert len(closed) == len(socks), f"{len(socks) - len(closed)} still open"
    assert TIMEOUT - 0.05 <= min(closed.values()) and max(closed.values()) <= TIMEOUT + SLACK
    answer = honest.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    assert server.healthy()


@pytest.mark.timeout(60)
def test_oversized_headers_get_431_and_the_server_carries_on(server):
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 << 20) + b"\r\n\r\n"
    sock = server.connect()
    try:
        sock.sendall(big)  # the server answers and closes long before 20 MB are sent
    except (BrokenPipeError, ConnectionResetError):
        pass
    data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431"), data[:80]
    assert b"over 8192 bytes" in data
    under = httpx.get(server.base + "/health", headers={"X-Big": "a" * 7000})
    assert under.status_code == 200  # headers under the limit pass
    assert server.healthy()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "raw",
    [
        b"GET /health HTTP/1.1\r\n\r\n",  # no Host
        b"POST /explain HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /explain HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"POST /explain HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
        b"POST /explain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /explain HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad\x00Name: v\r\n\r\n",
        b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # an HTTP/2 preface
    ],
)
def test_malformed_http_gets_a_4xx(server, raw):
    sock = server.connect()
    sock.sendall(raw)
    data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 4"), data[:80]
    assert server.healthy()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "raw",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n",  # h11 unfolds it
        b"GET /health HTTP/1.9\r\nHost: x\r\n\r\n",  # a later minor version reads as 1.1
        # no WebSockets: an upgrade is answered as plain HTTP
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ],
)
def test_odd_but_legal_http_is_answered(server, raw):
    sock = server.connect()
    sock.sendall(raw)
    data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200"), data[:80]


@pytest.mark.timeout(60)
def test_connections_over_the_limit_get_503(model):
    limits = ServerLimits(request_timeout=5.0, max_connections=3)
    with LoopbackServer(model["app"], limits) as srv:
        held = [srv.connect() for _ in range(3)]
        time.sleep(0.2)
        assert httpx.get(srv.base + "/health").status_code == 503
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert srv.healthy()


@pytest.mark.timeout(120)
def test_sigterm_with_stalled_clients_exits_at_once(model):
    """``simshap serve`` with a 30 s request timeout and a 5 s shutdown deadline: SIGTERM
    with a stalled body, half-sent headers and an idle connection open exits in under a
    second; the stalled client gets its connection closed, not a 500."""
    port = free_port()
    env = {**os.environ, "SIMSHAP_API_TOKEN": "t0ken", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "simshap.cli",
        "serve",
        str(model["path"]),
        "--port",
        str(port),
        "--request-timeout",
        "30",
        "--shutdown-timeout",
        "5",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, "no server"
                time.sleep(0.2)
        import socket

        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        clients[0].sendall(
            HEAD.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer t0ken\r\n\r\n") + b'{"instances"'
        )
        clients[1].sendall(b"POST /explain HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        seconds = time.monotonic() - t0
        for sock in clients:
            sock.settimeout(5)
            assert read_until_closed(sock)[0] == b""  # closed without an answer (no 500)
        log = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert seconds < 1.0, seconds
    assert "Traceback" not in log and "Exception" not in log, log


@pytest.mark.timeout(60)
def test_shutdown_deadline_bounds_work_in_flight():
    """A request still being answered when shutdown begins gets ``shutdown_timeout`` seconds;
    then uvicorn cancels it and the server exits."""

    async def slow_app(scope, receive, send):
        if scope["type"] == "http":
            await asyncio.sleep(60)

    limits = ServerLimits(request_timeout=TIMEOUT, shutdown_timeout=1.5)
    with LoopbackServer(slow_app, limits) as srv:
        sock = srv.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        seconds = srv.stop()
    assert not srv.thread.is_alive()
    assert 1.5 <= seconds <= 1.5 + 1.0, seconds
