"""The HTTP connection limits of ``simshap serve``: uvicorn's own settings, on its h11 protocol.

:class:`ServerLimits` turns four numbers into uvicorn ``Config`` options:

- ``request_timeout`` -> ``timeout_keep_alive``: the seconds a connection may sit idle, and the
  seconds a client gets to send a whole request (request line, headers and body);
- ``max_header_bytes`` -> ``h11_max_incomplete_event_size``: the request line and headers
  together (431 above it);
- ``max_connections`` -> ``limit_concurrency``: connections at once (503 above it, uvicorn's
  answer to overload);
- ``shutdown_timeout`` -> ``timeout_graceful_shutdown``: on SIGTERM, the seconds requests being
  answered get to finish.

Why a protocol subclass (:class:`H11Protocol`). uvicorn 0.54 arms its keep-alive timer only
after a response completes and cancels it on every chunk received. A new connection that never
sends, one that dribbles its headers a byte at a time (slowloris) or one that stops halfway
through its body is therefore never timed out: the issue held 50 slowloris connections and
1,100 stalled bodies open, and a stalled body kept a SIGTERM'd server alive indefinitely. The
subclass adds one timer with uvicorn's ``timeout_keep_alive`` for what uvicorn leaves open: it
runs from the connection's start, and again from the first byte of each request until that
request's headers and body are in; no chunk resets it, and on expiry it closes the
connection through uvicorn's own ``timeout_keep_alive_handler`` (the app, if it was waiting for
the body, sees ``http.disconnect``). It also closes, when shutdown begins, connections still
sending a request (none of their work has started; waiting for them is how a stalled body
blocked shutdown), and answers an oversized header block with 431 and a JSON ``detail``
instead of uvicorn's bare 400.

Why h11 is pinned (``http=H11Protocol``, not ``"auto"``, which picks httptools when it is
installed): h11 bounds the header block (``h11_max_incomplete_event_size``); httptools has no
such limit (a 20 MB header was accepted), and the state the timer reads (``their_state``, the
receive buffer) is h11's public API. The subclass relies on uvicorn's ``H11Protocol``
internals named above; ``pyproject.toml`` pins uvicorn below 0.55 and the tests on a real
server on loopback check every behaviour.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http import h11_impl

from simshap.errors import UserError

__all__ = ["H11Protocol", "ServerLimits"]


class H11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 protocol with a deadline on receiving each request (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ state
    def _receiving(self) -> bool:
        """Part of a request is in: its headers (buffered) or its body (``SEND_BODY``)."""
        their = self.conn.their_state
        return their is h11.SEND_BODY or (their is h11.IDLE and bool(self.conn.trailing_data[0]))

    def _idle(self) -> bool:
        """Nothing under way: waiting for the next request's first byte."""
        return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE

    def _track(self, restart: bool = False) -> None:
        """Arm, restart or stop the deadline to match the connection's state."""
        if self.transport.is_closing():
            want = False
        elif self._receiving():
            want = True
        else:  # uvicorn's keep-alive timer covers an idle connection after a response
            want = self._idle() and self.timeout_keep_alive_task is None
        if self._deadline is not None and (restart or not want):
            self._deadline.cancel()
            self._deadline = None
        if want and self._deadline is None:
            self._deadline = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.conn.our_state is h11.IDLE:  # uvicorn's handler: a clean h11 close
            self.timeout_keep_alive_handler()
        else:  # a response is owed but its request never finished arriving
            self.transport.close()

    # ------------------------------------------------------------------ uvicorn hooks
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # noqa: D102
        super().connection_made(transport)
        self._track()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        first = self._idle() and not self._receiving()  # a new request starts with these bytes
        super().data_received(data)
        self._track(restart=first)

    def on_response_complete(self) -> None:  # noqa: D102
        super().on_response_complete()  # may start a pipelined request already buffered
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        super().connection_lost(exc)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def shutdown(self) -> None:
        """Graceful shutdown: also close a connection whose request is still arriving."""
        receiving = self._receiving()
        super().shutdown()
        if receiving and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer a request h11 refused: 431 for an oversized header block, else 400."""
        limit = self.config.h11_max_incomplete_event_size
        limit = h11_impl.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if limit is None else limit
        if len(self.conn.trailing_data[0]) > limit:
            status, detail = (
                431,
                (f"the request line and headers are over {limit} bytes; send smaller headers"),
            )
        else:
            status, detail = 400, "malformed HTTP request: the request line or headers are invalid"
        body = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
            (b"content-length", str(len(body)).encode()),
        ]
        event = h11.Response(
            status_code=status, headers=headers, reason=h11_impl.STATUS_PHRASES[status]
        )
        for part in (event, h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(part))
        self.transport.close()


@dataclass(frozen=True)
class ServerLimits:
    """Connection limits of the HTTP server (uvicorn options, see the module docstring).

    Args:
        request_timeout: seconds a connection may sit idle, and seconds a client gets to send
            a whole request (headers and body); then the connection is closed.
        shutdown_timeout: on SIGTERM, seconds requests being answered get to finish.
        max_header_bytes: the request line and headers together (431 above it).
        max_connections: connections at once (503 above it).
    """

    request_timeout: float = 10.0
    shutdown_timeout: float = 10.0
    max_header_bytes: int = 16384
    max_connections: int = 1000

    def __post_init__(self) -> None:
        for name in ("request_timeout", "shutdown_timeout", "max_header_bytes", "max_connections"):
            if not getattr(self, name) > 0:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} must be positive, got {getattr(self, name)}")

    def uvicorn_options(self) -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run``.

        h11 is pinned, and WebSockets are off (the API has none: an upgrade request is
        answered as plain HTTP, by the same guard).
        """
        return {
            "http": H11Protocol,
            "ws": "none",
            "timeout_keep_alive": self.request_timeout,
            "h11_max_incomplete_event_size": int(self.max_header_bytes),
            "limit_concurrency": int(self.max_connections),
            "timeout_graceful_shutdown": self.shutdown_timeout,
        }
