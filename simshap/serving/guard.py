"""What every request passes before the explainer sees it: the bearer token, then the JSON body.

One bearer check (:func:`bearer_ok`) serves both servers: :class:`JSONGuard` (ASGI middleware,
in front of the Starlette app and of LitServe's) and :func:`authorize` (the FastAPI dependency
LitServe's own routes use). The guard checks the token from the request's headers before it
reads a byte of the body, so a client without the token costs the server nothing but a 401.
The token is compared with :func:`hmac.compare_digest` (time independent of where the first
mismatch lies), and the scheme is matched case-insensitively (``bearer`` works, RFC 7235).

:func:`api_token` reads ``$SIMSHAP_API_TOKEN`` and refuses a set but empty (or blank, or
non-printable) token, which would otherwise silently turn authentication off.

The rows themselves are checked by the explainer's preprocessing
(:meth:`simshap.data.preprocessing.Preprocessor.encode`), as in Python and ``simshap explain``.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from typing import Any

import numpy as np
from fastapi import HTTPException
from starlette.requests import Request

from simshap.errors import UserError

__all__ = [
    "TOKEN_ENV",
    "JSONGuard",
    "api_token",
    "authorize",
    "bearer_ok",
    "json_depth",
]

TOKEN_ENV = "SIMSHAP_API_TOKEN"
PARSED = "simshap.json"  # where JSONGuard leaves the parsed body in the ASGI scope
UNAUTHORIZED = "missing or wrong bearer token: send the header Authorization: Bearer <token>"
# a JSON string, or an unterminated one up to the end: every match succeeds without
# backtracking, so stripping strings is linear in the body even for hostile input
_STRING = re.compile(rb'"(?:[^"\\]|\\.|\\\Z)*(?:"|\Z)', re.DOTALL)
_LONG_INT = 4000  # digits; longer integers parse as (infinite) floats, not Python's ValueError


def api_token() -> str | None:
    """The bearer token from ``$SIMSHAP_API_TOKEN`` (``None``: the variable is unset).

    Raises:
        UserError: the variable is set but empty, blank or not printable ASCII without spaces
            (an empty token would turn authentication off without a word).
    """
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        return None
    if not token or not all("!" <= ch <= "~" for ch in token):
        raise UserError(
            f"{TOKEN_ENV} is set but {'empty' if not token else 'not a usable token'}"
            ": set it to a token of printable ASCII characters without spaces, or "
            "unset it to serve without authentication"
        )
    return token


def bearer_ok(header: bytes | str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (any case of ``Bearer``).

    Args:
        header: the header's value (raw bytes, or a ``str`` as Starlette decodes it: latin-1).
        token: the expected token.
    """
    if header is None:
        return False
    raw = header.encode("latin-1", "replace") if isinstance(header, str) else header
    scheme, _, credentials = raw.strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), token.encode())


async def authorize(request: Request) -> None:
    """FastAPI dependency (LitServe's routes): 401 unless :func:`bearer_ok` (with a token set).

    Args:
        request: the request (FastAPI fills it in).
    """
    token = api_token()
    if token is not None and not bearer_ok(request.headers.get("authorization"), token):
        raise HTTPException(
            status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
        )


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, without parsing it.

    Brackets inside strings do not count. For malformed text the answer is an upper bound of
    the depth a parser reaches before it fails, so the check is safe to run before parsing.
    """
    if b'"' in body:
        body = _STRING.sub(b"", body)
    marks = np.frombuffer(body, dtype=np.uint8)
    step = np.isin(marks, (0x5B, 0x7B)).astype(np.int32) - np.isin(marks, (0x5D, 0x7D))
    return int(np.cumsum(step).max(initial=0))


def lone_surrogate(value: Any) -> bool:
    """Whether a parsed JSON value holds a string with an unpaired UTF-16 surrogate.

    JSON's escapes of the code units D800 to DFFF parse into such strings, which are not
    Unicode text: pandas' Arrow strings and any UTF-8 writer refuse them. (A proper pair of
    escapes parses to one character.)
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _parse_int(digits: str) -> int | float:
    return float(digits) if len(digits) > _LONG_INT else int(digits)


class JSONGuard:
    """ASGI middleware: a clear 4xx unless the request has the token and a bounded JSON body.

    Order of checks, each answered before the next begins: the bearer token (401, from the
    headers alone: no byte of the body is read), then for ``POST`` the content type (415),
    the declared and actual body size (413), the nesting depth (400, checked on the raw
    bytes before parsing, so a deeply nested body cannot exhaust the parser's recursion),
    JSON syntax and encoding (400), a JSON object (422). The parsed object is left in the
    ASGI scope (``scope["simshap.json"]``) and the body replayed for LitServe's parser.

    Args:
        app: the wrapped application.
        max_body_bytes: the largest request body accepted.
        token: the bearer token required on every path but ``open_paths`` (``None``: none).
        open_paths: paths served without the token (health probes).
        max_depth: the deepest nesting of arrays and objects accepted.
    """

    def __init__(
        self,
        app: Any,
        max_body_bytes: int = 1 << 20,
        token: str | None = None,
        open_paths: tuple[str, ...] = ("/health",),
        max_depth: int = 32,
    ) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)
        self.token = token
        self.open_paths = tuple(open_paths)
        self.max_depth = int(max_depth)

    @staticmethod
    async def _reject(send: Any, status: int, detail: str, headers: tuple = ()) -> None:
        body = json.dumps({"detail": detail}).encode()  # ASCII: safe for any client's text
        head = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def _read(self, receive: Any, send: Any) -> bytes | None:
        """The whole body, or ``None`` after a 413 (or when the client went away)."""
        too_big = (
            f"the body is over the {self.max_body_bytes}-byte limit; send fewer rows per request"
        )
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body_bytes:
                await self._reject(send, 413, too_big)
                return None
        return b"".join(chunks)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:  # noqa: D102
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # names are lower case in ASGI
        if self.token is not None and not bearer_ok(headers.get(b"authorization"), self.token):
            await self._reject(send, 401, UNAUTHORIZED, ((b"www-authenticate", b"Bearer"),))
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if media != b"application/json":
            await self._reject(
                send, 415, "the body must be JSON: send Content-Type: application/json"
            )
            return
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject(
                send,
                413,
                f"the body is over the {self.max_body_bytes}-byte "
                "limit; send fewer rows per request",
            )
            return
        body = await self._read(receive, send)
        if body is None:
            return
        opens = body.count(b"[") + body.count(b"{")  # a bound: skips the scan for most bodies
        if opens > self.max_depth and json_depth(body) > self.max_depth:
            await self._reject(
                send,
                400,
                f"the JSON nests deeper than {self.max_depth} levels; "
                'send {"instances": [[...], ...]}',
            )
            return
        try:
            parsed = json.loads(body, parse_int=_parse_int)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            await self._reject(send, 400, f"malformed JSON: {err}")
            return
        if re.search(rb"\\u[dD][89a-fA-F]", body) and lone_surrogate(parsed):
            await self._reject(
                send, 400, "malformed JSON: a \\uD800-\\uDFFF escape without its pair is not text"
            )
            return
        if not isinstance(parsed, dict):
            await self._reject(send, 422, 'the body must be a JSON object {"instances": [...]}')
            return
        scope[PARSED] = parsed
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
