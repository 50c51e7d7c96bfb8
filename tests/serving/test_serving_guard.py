"""What reaches the explainer (issue 29, items 2, 9 and 10), in process: the JSON depth limit,
the token checked before the body is read, the bearer scheme and comparison, an empty token
refused, non-finite rows refused by ``simshap explain``, and a hypothesis fuzz test of hostile
requests that must never get a 5xx, with and without a token."""

from __future__ import annotations

import asyncio
import json
import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from serving_helpers import call, train_tiny

import simshap.serving.guard as guard_module
from simshap.errors import UserError
from simshap.serving.app import build_app
from simshap.serving.files import explain_file
from simshap.serving.guard import TOKEN_ENV, JSONGuard, json_depth

pytestmark = pytest.mark.timeout(120)  # each test; the fuzz tests say their own

TOKEN = "fuzz-T0ken_42"
JSON = [(b"content-type", b"application/json")]
AUTH = [(b"authorization", f"Bearer {TOKEN}".encode())]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> dict:
    path, x = train_tiny(tmp_path_factory.mktemp("guard"))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(TOKEN_ENV, raising=False)
        open_app = build_app(str(path))
        mp.setenv(TOKEN_ENV, TOKEN)
        token_app = build_app(str(path))
    row = [v if isinstance(v, str) else float(v) for v in x.iloc[0]]
    return {"path": path, "x": x, "row": row, "apps": {False: open_app, True: token_app}}


# --------------------------------------------------------------------------- JSON depth


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_tricky = st.text(alphabet='[]{}"\\ab\u00e9\ud7ff\n', max_size=12)
_values = st.recursive(
    st.none() | st.integers() | st.floats(allow_nan=False) | _tricky,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_tricky, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(value=_values, indent=st.sampled_from([None, 1]))
def test_json_depth_equals_the_parsed_depth(value, indent):
    """Brackets, quotes and backslashes inside strings do not count; escapes are followed."""
    text = json.dumps(value, indent=indent, ensure_ascii=indent is None).encode()
    assert json_depth(text) == _depth(value)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet='[]{}"\\,:1 a', max_size=60))
def test_json_depth_bounds_what_the_parser_reaches(text):
    """On any text (mostly malformed), a parse that succeeds nests no deeper than the scan."""
    try:
        value = json.loads(text)
    except ValueError:
        return
    assert json_depth(text.encode()) >= _depth(value)


@pytest.mark.timeout(60)
def test_json_depth_is_linear_on_hostile_strings():
    """Unterminated strings full of escaped quotes: each must be scanned once, not once per
    quote (a quadratic scan of 1 MB would take hours)."""
    import time

    body = b'["' + b'\\"' * 500_000 + b"\\"
    t0 = time.perf_counter()
    assert json_depth(body) == 1
    assert time.perf_counter() - t0 < 5


@pytest.mark.timeout(60)
def test_deep_nesting_gets_a_400_not_a_500(model):
    app = model["apps"][False]
    for body in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b"[" * 50_000,
        b'{"instances": ' + b"[" * 33 + b"]" * 33 + b"}",
    ):
        r = call(app, "POST", "/explain", JSON, body)
        assert r.status_code == 400 and "nests deeper than 32" in r.json()["detail"], r.text
    # 32 levels pass the guard (and fail as rows); brackets inside a string do not count
    for body in (
        b'{"instances": ' + b"[" * 31 + b"]" * 31 + b"}",
        json.dumps({"instances": ["[" * 5000]}).encode(),
    ):
        r = call(app, "POST", "/explain", JSON, body)
        assert r.status_code == 422, r.text


def test_an_unpaired_surrogate_escape_is_a_400_and_a_pair_is_text(model):
    """The fuzz test found it: "\\ud800" parses to a string no UTF-8 writer accepts, and
    pandas' Arrow strings raised inside the handler (a 500)."""
    app, row = model["apps"][False], model["row"]
    site = row.index("north")
    for escape in ("\\ud800", "\\uDC00x", "x\\udbff"):
        cells = [json.dumps(v) for v in row]
        cells[site] = '"' + escape + '"'
        body = '{"instances": [[' + ", ".join(cells) + "]]}"
        r = call(app, "POST", "/explain", JSON, body.encode())
        assert r.status_code == 400 and "without its pair" in r.json()["detail"], r.text
    cells = [json.dumps(v) for v in row]
    cells[site] = '"\\ud83d\\ude00"'  # a proper pair: one character, an unseen category
    body = '{"instances": [[' + ", ".join(cells) + "]]}"
    r = call(app, "POST", "/explain", JSON, body.encode())
    assert r.status_code == 200, r.text


def test_parse_errors_are_4xx_with_a_detail(model):
    app, row = model["apps"][False], model["row"]
    cases = {
        b"{not json": (400, "malformed JSON"),
        b"\xff\xfe\x00garbage": (400, "malformed JSON"),
        b"": (400, "malformed JSON"),
        b"[1, 2]": (422, "JSON object"),
        # 5,000 digits: Python's int() would refuse it with a ValueError; it is a number
        b'{"instances": [[' + b"9" * 5000 + b', 1, "north", 1, 1]]}': (422, "infinite"),
        b'{"instances": [{"\\ud800": 1}]}': (400, "without its pair"),  # not text, even as a key
        json.dumps({"instances": [row], "instances ": 1}).encode(): (422, "unknown keys"),
    }
    for body, (status, words) in cases.items():
        r = call(app, "POST", "/explain", JSON, body)
        assert r.status_code == status and words in r.json()["detail"], (body[:40], r.text)
    r = call(
        app,
        "POST",
        "/explain",
        [(b"content-type", b"Application/JSON; charset=UTF-8")],
        json.dumps({"instances": [row]}).encode(),
    )  # media types are case-insensitive
    assert r.status_code == 200, r.text
    r = call(app, "DELETE", "/explain")
    assert r.status_code == 405 and "POST /explain" in r.json()["detail"]
    r = call(app, "GET", "/nope")
    assert r.status_code == 404 and "GET /health" in r.json()["detail"]


# --------------------------------------------------------------------------- the token


def test_token_is_checked_before_the_body_is_read():
    """Without the token, the guard answers 401 from the headers and never calls receive()."""
    reads, answers = [], []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app ran without the token")

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"[" * 100_000, "more_body": False}

    async def send(message):
        answers.append(message)

    guard = JSONGuard(app, token=TOKEN)
    for auth in ([], [(b"authorization", b"Bearer wrong")]):
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/explain",
            "headers": [*JSON, (b"content-length", b"200000"), *auth],
        }
        asyncio.run(guard(scope, receive, send))
        assert answers[0]["status"] == 401 and not reads
        answers.clear()
    scope["headers"] = [*JSON, *AUTH]  # with the token, the body is read (and refused: depth)
    asyncio.run(guard(scope, receive, send))
    assert reads and answers[0]["status"] == 400


@pytest.mark.parametrize(
    "header,ok",
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"BEARER {TOKEN}", True),
        (f"bEaReR   {TOKEN}  ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (f"Bearer{TOKEN}", False),
        (TOKEN, False),
        ("Bearer", False),
        ("", False),
        ("Bearer \u00e9\u00ff", False),
    ],
)
def test_bearer_scheme_is_case_insensitive_and_the_token_exact(model, header, ok):
    r = call(
        model["apps"][True], "GET", "/metadata", [(b"authorization", header.encode("latin-1"))]
    )
    assert r.status_code == (200 if ok else 401), r.text
    if not ok:
        assert r.headers["www-authenticate"] == "Bearer" and "Bearer <token>" in r.text
    assert call(model["apps"][True], "GET", "/health").status_code == 200  # open for probes


def test_token_is_compared_with_compare_digest(model, monkeypatch):
    seen = []

    def spy(a, b):
        seen.append((a, b))
        return guard_module.hmac.compare_digest.__wrapped__(a, b)

    import hmac

    spy.__wrapped__ = hmac.compare_digest
    monkeypatch.setattr(guard_module.hmac, "compare_digest", spy)
    assert call(model["apps"][True], "GET", "/metadata", AUTH).status_code == 200
    assert seen == [(TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize("value", ["", " ", "two words", "tab\there", "caf\u00e9"])
def test_an_unusable_token_refuses_to_start(model, monkeypatch, capsys, value):
    from simshap.cli import main

    monkeypatch.setenv(TOKEN_ENV, value)
    with pytest.raises(UserError, match=TOKEN_ENV):
        build_app(str(model["path"]))
    assert main(["serve", str(model["path"]), "--port", "1"]) == 2  # refused before binding
    assert TOKEN_ENV in capsys.readouterr().err
    monkeypatch.delenv(TOKEN_ENV)
    assert guard_module.api_token() is None  # unset: no authentication, as documented


@pytest.mark.parametrize(
    "flag",
    [
        "--request-timeout",
        "--shutdown-timeout",
        "--max-header-bytes",
        "--max-connections",
        "--max-json-depth",
        "--max-rows",
        "--max-body-bytes",
    ],
)
def test_limits_must_be_positive(model, monkeypatch, capsys, flag):
    from simshap.cli import main

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["serve", str(model["path"]), "--port", "1", flag, "0"]) == 2
    assert f"{flag} must be positive" in capsys.readouterr().err


# --------------------------------------------------------------------------- files


def test_explain_file_refuses_values_that_overflow_float32(model, tmp_path):
    """1e300 is finite as a float64 and infinite as the network's float32: refused by name,
    with no output file left behind; the server refuses the same row."""
    from simshap.cli import main

    rows = model["x"].iloc[:20].copy()
    rows.iloc[7, 0] = 1e300
    csv, out = tmp_path / "rows.csv", tmp_path / "values.parquet"
    rows.to_csv(csv, index=False)
    with pytest.raises(UserError, match=r"row 7, feature 'mean radius'.*float32"):
        explain_file(model["path"], csv, out, chunk_rows=5, progress=False)
    assert not out.exists() and not (tmp_path / "values.parquet.partial").exists()
    assert main(["explain", str(model["path"]), str(csv), "--out", str(out)]) == 2
    row = [1e300, *model["row"][1:]]
    r = call(
        model["apps"][False], "POST", "/explain", JSON, json.dumps({"instances": [row]}).encode()
    )
    assert r.status_code == 422 and "float32" in r.json()["detail"]
    rows.iloc[7, 0] = 1e30  # large but finite after the cast: explained
    rows.to_csv(csv, index=False)
    assert explain_file(model["path"], csv, out, progress=False) == 20


# --------------------------------------------------------------------------- fuzz

_digits = st.integers(1, 20_000).map(lambda n: "9" * n)
_number = st.one_of(
    st.sampled_from(
        [
            "1e999",
            "-1e400",
            "1e-400",
            "NaN",
            "Infinity",
            "-Infinity",
            "-0",
            "0e0",
            "1E+308",
            "2.5e-324",
            "0." + "0" * 400 + "1",
        ]
    ),
    _digits,
    _digits.map(lambda d: "-" + d + ".5e-3"),
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
    st.integers(-(10**40), 10**40).map(str),
)
_string = st.one_of(
    st.text(max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.sampled_from(
        [
            '"north"',
            '"south"',
            '"\\ud800"',
            '"\\udfff\\ud800x"',
            '"\\u0000"',
            '"unterminated',
            '"\\x"',
            '"\u202e\u0000\ufeff"',
        ]
    ),
)
_cell = st.one_of(
    _number, _string, st.sampled_from(["null", "true", "false", "[]", "{}", "[1, [2]]", '{"a": 1}'])
)
_names = st.sampled_from(
    ["mean radius", "mean texture", "site", "mean perimeter", "mean area", "zzz", "", "site "]
)
_row = st.one_of(
    st.lists(_cell, max_size=7).map(lambda c: "[" + ", ".join(c) + "]"),
    st.lists(st.tuples(_names, _cell), max_size=7).map(  # records, duplicate keys included
        lambda kv: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in kv) + "}"
    ),
)
_instances = st.one_of(
    st.lists(_row, max_size=4).map(lambda r: "[" + ", ".join(r) + "]"), _cell, _row
)


def _body_from(parts: tuple) -> str:
    instances, target, extra, duplicate = parts
    body = '{"instances": ' + instances
    body += f', "target": {target}' if target is not None else ""
    body += f', "instances": {duplicate}' if duplicate is not None else ""
    return body + (f", {json.dumps(extra)}: 1" if extra is not None else "") + "}"


def _nested(parts: tuple) -> str:
    n, opener, closed = parts
    closer = {"[": "]", '{"a":': "}", '{"instances": ': "}", "[{": "}]"}[opener]
    return opener * n + "1" + (closer * n if closed else "")


def _encode(parts: tuple) -> bytes:
    text, encoding = parts
    return text.encode(encoding, "surrogatepass")


_big = st.tuples(
    st.sampled_from([(1 << 20) - 2, (1 << 20) + 1, 10 << 20]),
    st.sampled_from([b" ", b"[", b"1", b'[1, 2, "north", 3, 4], ']),
).map(lambda p: (b'{"instances": [' + p[1] * (p[0] // len(p[1])))[: p[0]])
_bodies = st.one_of(
    st.tuples(
        _instances, st.none() | _cell, st.none() | st.text(max_size=5), st.none() | _instances
    )
    .map(_body_from)
    .map(str.encode),
    st.tuples(
        st.integers(1, 200_000),
        st.sampled_from(["[", '{"a":', '{"instances": ', "[{"]),
        st.booleans(),
    )
    .map(_nested)
    .map(str.encode),
    st.tuples(
        st.text(max_size=40), st.sampled_from(["utf-8", "utf-16", "utf-32", "utf-16-be"])
    ).map(_encode),  # unicode, lone surrogates as invalid UTF-8
    st.tuples(
        st.text(max_size=40).map(lambda s: '{"instances": [["' + s + '"]]}'),
        st.sampled_from(["utf-8", "utf-16"]),
    ).map(_encode),
    st.binary(max_size=200),
    _big,
)
_auth = st.one_of(
    st.sampled_from(
        [
            (f"Bearer {TOKEN}", True),
            (f"bearer {TOKEN}", True),
            (None, False),
            ("Bearer nope", False),
            (f"Basic {TOKEN}", False),
            ("", False),
            (f"Bearer {TOKEN} {TOKEN}", False),
        ]
    ),
    st.text(alphabet=string.printable.strip() + "\u00e9\u00ff ", max_size=30).map(
        lambda s: (
            s,
            s.strip().lower().split(" ", 1)[0] == "bearer"
            and s.strip().split(" ", 1)[-1].strip() == TOKEN,
        )
    ),
)
_content_type = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        None,
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        ";",
        "application/json;;;",
        "\u00e9/json",
    ]
)
_latin = st.text(alphabet=string.ascii_letters + string.digits + " -_;=/,\u00e9\u00ff", max_size=30)
_GOOD = ["17.99", "10.38", '"north"', "122.8", "1001.0"]


def _one_bad_cell(parts: tuple) -> bytes:
    """Good rows with one cell replaced, and maybe a target: the body reaches the explainer."""
    where, cell, copies, target = parts
    row = "[" + ", ".join([*_GOOD[:where], cell, *_GOOD[where + 1 :]]) + "]"
    tail = f', "target": {target}' if target is not None else ""
    return ('{"instances": [' + ", ".join([row] * copies) + "]" + tail + "}").encode()


_near_valid = st.tuples(st.integers(0, 4), _cell, st.integers(1, 3), st.none() | _cell).map(
    _one_bad_cell
)
_envelope = {
    "method": st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    "path": st.sampled_from(
        ["/explain", "/metadata", "/health", "/", "/explain/", "/nope", "/EXPLAIN", "/explain?x=1"]
    ),
    "auth": _auth,
    "content_type": _content_type,
    "content_length": st.none() | st.sampled_from(["0", "5", "abc", "-1", "1" * 30]),
    "extra": st.lists(
        st.tuples(
            st.sampled_from(
                ["x-junk", "accept", "content-encoding", "transfer-encoding", "expect"]
            ),
            _latin,
        ),
        max_size=3,
    ),
}
_right = {
    "method": st.just("POST"),
    "path": st.just("/explain"),
    "auth": st.just((f"Bearer {TOKEN}", True)),
    "content_type": st.just("application/json"),
    "content_length": st.none(),
    "extra": st.just([]),
}
# half the requests get the envelope right, so that the body reaches the parser and the
# explainer; the other half get the envelope (method, path, token, headers) wrong too
_requests = st.one_of(
    st.fixed_dictionaries(
        {**_right, "body": _bodies | _near_valid, "chunk": st.none() | st.integers(1, 1 << 20)}
    ),
    st.fixed_dictionaries(
        {**_envelope, "body": _bodies | _near_valid, "chunk": st.none() | st.integers(1, 1 << 20)}
    ),
)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("with_token", [False, True], ids=["no-token", "token"])
@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(req=_requests)
def test_fuzz_hostile_requests_never_get_a_5xx(model, with_token, req):
    """500 hostile requests per setting (1,000 in all): deep nesting, duplicate keys, huge
    numbers, unicode in every encoding, 1 to 10 MB bodies sent whole or in chunks, lying
    Content-Length, wrong methods, paths and content types, junk headers. No request gets a
    5xx or raises in the app; every error has a JSON detail; with a token, a request without
    it gets 401 on every path but /health."""
    headers = [(k.encode(), v.encode("latin-1")) for k, v in req["extra"]]
    auth, auth_ok = req["auth"]
    if auth is not None:
        headers.append((b"authorization", auth.encode("latin-1")))
    if req["content_type"] is not None:
        headers.append((b"content-type", req["content_type"].encode("latin-1")))
    if req["content_length"] is not None:
        headers.append((b"content-length", req["content_length"].encode()))
    body, size = req["body"], req["chunk"]
    chunks = (
        [body]
        if size is None
        else [
            body[i : i + max(size, len(body) // 64)]
            for i in range(0, len(body), max(size, len(body) // 64))
        ]
    )
    r = call(model["apps"][with_token], req["method"], req["path"], headers, chunks=chunks)
    event(f"status {r.status_code}")  # the spread shows with --hypothesis-show-statistics
    assert r.status_code < 500, (req["method"], req["path"], body[:80], r.status_code, r.text)
    path = req["path"].split("?")[0]
    if with_token and path != "/health" and not auth_ok:
        assert r.status_code == 401, (req["path"], auth, r.status_code)
    if r.status_code >= 400 and req["method"] != "HEAD":
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]
