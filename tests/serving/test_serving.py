"""Production path: export round trips, the LitServe endpoint (happy path, every bad input, auth,
a hypothesis fuzz test) and batch explanation of files."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import simshap
from simshap.amortized import FastSHAP, SimSHAP
from simshap.amortized.io import load_explainer, save_explainer
from simshap.serving.files import explain_file

TOKEN = "s3cret-token"
TINY = {
    "surrogate": {"hidden": 32, "layers": 2, "max_epochs": 2},
    "explainer": {
        "hidden": 32,
        "layers": 2,
        "max_epochs": 1,
        "val_instances": 16,
        "val_budget": 64,
    },
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A tiny surrogate, SimSHAP and FastSHAP on breast_cancer with a string column added."""
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 30]].copy()
    frame.insert(2, "site", np.where(frame.index % 3 == 0, "north", "south"))
    x, y = frame.drop(columns="target"), frame["target"]
    model = LogisticRegression(max_iter=500).fit(x.drop(columns="site"), y)

    def proba(rows: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(rows.drop(columns="site"))

    folder = tmp_path_factory.mktemp("serving")
    out = {"x": x, "folder": folder}
    for cls in (SimSHAP, FastSHAP):
        explainer = simshap.fit(proba, x, y, method=cls.__name__.lower(), accelerator="cpu", **TINY)
        path = folder / f"{cls.__name__.lower()}.pt"
        save_explainer(explainer, path)
        out[cls.__name__] = path
    return out


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("name", ["SimSHAP", "FastSHAP"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_round_trip_equals_eager(trained, name, fmt, tmp_path):
    explainer = load_explainer(trained[name])
    rows = pd.concat([trained["x"]] * 2).iloc[:1000]
    codes = explainer.preprocessor.encode(rows).astype(np.float32)  # strings -> their codes
    sv = explainer(rows)
    want = sv.values.numpy()
    path = simshap.export_explainer(explainer, tmp_path / f"g.{fmt}", format=fmt)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path))
        got, prediction = session.run(None, {"rows": codes})
        meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    else:
        files = {"simshap.json": ""}
        graph = torch.jit.load(str(path), _extra_files=files)
        with torch.no_grad():
            got, prediction = (t.numpy() for t in graph(torch.from_numpy(codes)))
        meta = json.loads(files["simshap.json"])
    assert got.shape == (1000, 5, 2)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(prediction, sv.prediction.numpy(), atol=1e-5, rtol=0)
    # the exported values add up too: base + Σφ = prediction
    base = np.asarray(meta["base_values"], dtype=np.float32)
    np.testing.assert_allclose(base + got.sum(1), prediction, atol=1e-5, rtol=0)
    assert meta["feature_names"] == list(trained["x"].columns)
    assert meta["categories"] == {"site": ["north", "south"]}
    assert meta["version"] == 3 and meta["method"] == name and meta["game"] == "surrogate"
    with pytest.raises(FileExistsError, match="overwrite"):
        simshap.export_explainer(explainer, path, format=fmt)


def test_export_cli(trained, tmp_path):
    from simshap.cli import main

    out = tmp_path / "g.onnx"
    assert main(["export", str(trained["SimSHAP"]), "--format", "onnx", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["export", str(trained["SimSHAP"]), "--out", str(out)]) == 2  # exists


# --------------------------------------------------------------------------- batch files


def test_explain_file_streams_in_chunks(trained, tmp_path):
    rows = trained["x"].iloc[:150]
    csv = tmp_path / "rows.csv"
    rows.to_csv(csv, index=False)
    out = tmp_path / "values.parquet"
    n = explain_file(trained["SimSHAP"], csv, out, target=1, chunk_rows=64, progress=False)
    assert n == 150
    table = pd.read_parquet(out)
    sv = load_explainer(trained["SimSHAP"])(rows)
    np.testing.assert_allclose(
        table[list(rows.columns)].to_numpy(), sv.values[..., 1].numpy(), atol=1e-6
    )
    assert list(table.columns) == [*rows.columns, "base_value", "prediction"]
    # each row of the file rebuilds: base + Σφ = prediction
    np.testing.assert_allclose(
        table["base_value"] + table[list(rows.columns)].sum(1), table["prediction"], atol=1e-5
    )
    with pytest.raises(FileExistsError):
        explain_file(trained["SimSHAP"], csv, out)


# --------------------------------------------------------------------------- the server


def _stop(proc: subprocess.Popen) -> None:
    """Stop a server and every process it started (SIGTERM, then SIGKILL after 15 s)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; make sure no forked child lingers
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(trained: dict, *extra: str) -> tuple[subprocess.Popen, str, object]:
    """Start ``simshap serve`` (with the token set) and wait until /health answers."""
    port = _free_port()
    env = {**os.environ, "SIMSHAP_API_TOKEN": TOKEN, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "simshap.cli",
        "serve",
        str(trained["SimSHAP"]),
        "--port",
        str(port),
        "--max-rows",
        "50",
        "--max-body-bytes",
        "20000",
        *extra,
    ]
    log_path = trained["folder"] / f"server-{port}.log"
    log = open(log_path, "w")
    # its own process group: uvicorn workers or LitServe's forked processes must go too
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            auth = {"Authorization": f"Bearer {TOKEN}"}  # LitServe guards /health too
            if httpx.get(base + "/health", timeout=2, headers=auth).text == "ok":
                return proc, base, log
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    _stop(proc)
    log.close()
    pytest.fail("the server did not come up: " + log_path.read_text())


@pytest.fixture(scope="module")
def server(trained) -> dict:
    """The default server: FastAPI + uvicorn, inference in-process."""
    proc, base, log = _launch(trained)
    client = httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})
    yield {"client": client, "proc": proc, "x": trained["x"], "base": base}
    client.close()
    _stop(proc)
    log.close()


def _rows(x: pd.DataFrame, n: int = 3) -> list:
    return [
        [v if isinstance(v, str) else float(v) for v in r]
        for r in x.iloc[:n].itertuples(index=False)
    ]


@pytest.mark.timeout(400)
def test_server_answers_rows_and_records(server, trained):
    client, x = server["client"], server["x"]
    explainer = load_explainer(trained["SimSHAP"])
    want = explainer.explain(x.iloc[:3]).numpy()
    assert client.get("/health").text == "ok"
    meta = client.get("/metadata").json()
    assert meta["feature_names"] == list(x.columns) and meta["categories"]["site"]
    r = client.post("/explain", json={"instances": _rows(x)})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["values"]), want, atol=1e-5)
    records = x.iloc[:3].to_dict(orient="records")
    r = client.post("/explain", json={"instances": records, "target": 1})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["values"]), want[..., 1], atol=1e-5)
    assert r.json()["feature_names"] == list(x.columns)


@pytest.mark.timeout(400)
def test_server_rejects_every_bad_input_with_4xx(server):
    client, x = server["client"], server["x"]
    good = _rows(x, 1)[0]
    cases = {
        "feature count": ({"instances": [good[:3]]}, 422, "list of 5 values"),
        "unknown feature": ({"instances": [{**x.iloc[0].to_dict(), "zzz": 1}]}, 422, "unknown"),
        "missing feature": ({"instances": [{"mean radius": 1.0}]}, 422, "missing"),
        "string for number": ({"instances": [[good[0], "abc", *good[2:]]]}, 422, "number"),
        "missing value": ({"instances": [[None, *good[1:]]]}, 422, "allow_missing"),
        "empty list": ({"instances": []}, 422, "non-empty"),
        "too many rows": ({"instances": [good] * 51}, 422, "limit of 50"),
        "no instances": ({"rows": [good]}, 422, "unknown keys"),
        "bad target": ({"instances": [good], "target": 5}, 422, "target"),
        "too large for float32": ({"instances": [[1e300, *good[1:]]]}, 422, "too large"),
    }
    for name, (body, status, words) in cases.items():
        r = client.post("/explain", json=body)
        assert r.status_code == status and words in r.json()["detail"], (name, r.text)
    for value, words in (("NaN", "allow_missing"), ("Infinity", "infinite")):
        raw = json.dumps({"instances": [good]}).replace(str(good[0]), value, 1)
        r = client.post("/explain", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    # a category never seen in training is explained as 'other', with a warning and the count
    r = client.post("/explain", json={"instances": [[*good[:2], "east", *good[3:]]] * 2})
    assert r.status_code == 200 and "2 value(s) of 'site'" in r.json()["warnings"][0], r.text
    r = client.post("/explain", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = client.post("/explain", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = client.post("/explain", json={"instances": [good] * 40, "pad": "x" * 30000})
    assert r.status_code == 413
    # still healthy and answering good requests
    assert client.post("/explain", json={"instances": [good]}).status_code == 200


@pytest.mark.timeout(400)
def test_server_requires_the_token(server):
    good = _rows(server["x"], 1)
    assert httpx.get(server["base"] + "/metadata").status_code == 401
    assert httpx.post(server["base"] + "/explain", json={"instances": good}).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    r = httpx.post(server["base"] + "/explain", json={"instances": good}, headers=wrong)
    assert r.status_code == 401


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.one_of(
        _json,
        st.fixed_dictionaries({"instances": _json}),
        st.fixed_dictionaries({"instances": st.lists(st.lists(_json, max_size=7), max_size=3)}),
        st.binary(max_size=64),
    )
)
def test_fuzz_junk_never_gets_a_5xx(server, body):
    client = server["client"]
    if isinstance(body, bytes):
        r = client.post("/explain", content=body, headers={"Content-Type": "application/json"})
    else:
        r = client.post("/explain", json=body)
    assert r.status_code < 500, (body, r.status_code, r.text)


def _check_happy_and_bad(base: str, trained: dict) -> None:
    x = trained["x"]
    want = load_explainer(trained["SimSHAP"]).explain(x.iloc[:3]).numpy()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=30, headers=auth) as client:
        r = client.post("/explain", json={"instances": _rows(x), "target": 1})
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.array(r.json()["values"]), want[..., 1], atol=1e-5)
        assert client.get("/metadata").json()["feature_names"] == list(x.columns)
        r = client.post("/explain", json={"instances": [_rows(x, 1)[0][:3]]})
        assert r.status_code == 422 and "list of 5 values" in r.json()["detail"], r.text
        r = client.post("/explain", content=b"{", headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
    assert httpx.post(base + "/explain", json={"instances": _rows(x, 1)}).status_code == 401


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize(
    "extra",
    [("--workers", "2"), ("--backend", "litserve"), ("--runtime", "torch")],
    ids=["fastapi-2-workers", "litserve", "torch-runtime"],
)
def test_other_server_setups_answer_the_same(trained, extra):
    """Two uvicorn workers, the LitServe backend and the PyTorch runtime (the default is
    ONNX Runtime) give the same answers and errors."""
    proc, base, log = _launch(trained, *extra)
    try:
        _check_happy_and_bad(base, trained)
    finally:
        _stop(proc)
        log.close()


def test_serve_options_are_checked(trained, capsys):
    """LitServe-only options with the default backend are an error, not silently ignored."""
    from simshap.cli import main
    from simshap.serving.litserve import build_server

    assert build_server(str(trained["SimSHAP"]), fast_queue=True).use_zmq is True
    assert build_server(str(trained["SimSHAP"])).use_zmq is False
    for args in (
        ["--fast-queue"],
        ["--max-batch-size", "8"],
        ["--backend", "litserve", "--workers", "2"],
    ):
        assert main(["serve", str(trained["SimSHAP"]), *args]) == 2, args
        assert "to --backend" in capsys.readouterr().err, args
