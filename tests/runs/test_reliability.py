"""Nothing run, nothing lost: crafted run folders and files, kill -9 anywhere, locks, inputs.

The fault-injection test kills `simshap run` (and `export`, `explain`) with SIGKILL at more than
20 named points spread over every stage (``SIMSHAP_FAULT``, :func:`simshap.files.fault_point`),
resumes after each kill, and checks the final outputs against an uninterrupted run: weights
bitwise, results equal but for timings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from simshap.amortized.io import load_explainer
from simshap.cli import main
from simshap.errors import UserError
from simshap.runs.folder import lock_folder

TINY = {
    "dataset": "breast_cancer",
    "seed": 0,
    "model": {"max_rounds": 30},
    "surrogate": {
        "hidden": 16,
        "layers": 2,
        "batch_size": 64,
        "masks_per_row": 2,
        "max_epochs": 4,
        "patience": 100,
    },
    "explainer": {
        "methods": ["simshap", "fastshap"],
        "hidden": 16,
        "layers": 2,
        "n_masks": 4,
        "batch_size": 64,
        "max_epochs": 3,
        "patience": 100,
        "val_instances": 8,
        "val_budget": 64,
    },
    "evaluation": {"n_instances": 3, "threshold": 0.5, "budgets": [64]},
    "trainer": {"accelerator": "cpu", "progress_bar": False},
}
MARKER = "simshap-pwned"


class Payload:
    """Unpickling this runs code: it writes a marker file (what a crafted file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, MARKER))


def _config(folder: Path, **changes) -> Path:
    cfg = {**TINY, **changes}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.pop("SIMSHAP_FAULT", None)
    if fault:
        env["SIMSHAP_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "simshap.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def _same_weights(a: Path, b: Path) -> None:
    x, y = _state(a), _state(b)
    assert x.keys() == y.keys()
    for k in x:
        assert torch.equal(x[k], y[k]), (a.name, k)


def _results(path: Path) -> dict:
    """results.json without what depends on the clock (seconds) or the machine."""

    def strip(obj):
        if isinstance(obj, dict):
            return {
                k: strip(v)
                for k, v in obj.items()
                if not (
                    k.endswith("_s")
                    or "_s_" in k
                    or "seconds" in k
                    or k in ("environment", "training_s")
                )
            }
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(json.loads(path.read_text()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run of the tiny config."""
    folder = tmp_path_factory.mktemp("reference")
    proc = _cli("run", str(_config(folder)), "--out", str(folder / "run"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return folder / "run"


# --------------------------------------------------------------------------- faults


#: (point, occurrence in the resumed process): each kill lands later than the last
FAULTS = [
    ("atomic_write.before_rename", 2),
    ("run.commit", 1),  # the model stage
    ("train.epoch", 1),
    ("train.epoch", 1),
    ("atomic_write.before_rename", 2),  # surrogate
    ("run.commit", 1),
    ("train.epoch", 1),
    ("train.epoch", 1),
    ("atomic_write.before_rename", 3),  # simshap
    ("run.commit", 1),
    ("train.epoch", 2),
    ("atomic_write.before_rename", 3),
    ("run.commit", 1),  # fastshap
    ("atomic_write.before_rename", 1),  # the ground truth's cache
    ("atomic_write.before_rename", 2),
    ("atomic_write.before_rename", 3),  # results
    ("evaluate.plots", 1),
    ("atomic_write.before_rename", 2),  # between the plots
    ("run.commit", 1),  # everything written, the stage not yet recorded
]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_kill_anywhere_then_resume_equals_an_uninterrupted_run(reference, tmp_path):
    out, cfg = tmp_path / "run", _config(tmp_path)
    kills = 0
    for point, n in FAULTS:
        proc = _cli("run", str(cfg), "--out", str(out), fault=f"{point}:{n}")
        if proc.returncode == 0:
            break  # the run finished before this point
        assert proc.returncode == -signal.SIGKILL, proc.stdout[-2000:] + proc.stderr[-2000:]
        kills += 1
        # never a half-written file: every file in the folder is complete or a temp file
        assert not [
            p for p in out.rglob("*") if p.name.endswith(".tmp") and not p.name.startswith(".")
        ]
    export = tmp_path / "g.onnx"
    for n in (1,):  # export killed before its rename: no file, then the same bytes
        proc = _cli(
            "export",
            str(out / "simshap.pt"),
            "--out",
            str(export),
            fault=f"atomic_write.before_rename:{n}",
        )
        assert proc.returncode == -signal.SIGKILL and not export.exists()
        kills += 1
    rows = tmp_path / "rows.csv"
    pd.concat([_rows()] * 3).to_csv(rows, index=False)
    values = tmp_path / "values.parquet"
    proc = _cli(
        "explain",
        str(out / "simshap.pt"),
        str(rows),
        "--out",
        str(values),
        "--chunk-rows",
        "200",
        fault="explain.chunk:2",
    )
    assert proc.returncode == -signal.SIGKILL and not values.exists()
    kills += 1
    assert kills >= 20
    proc = _cli("run", str(cfg), "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("surrogate.pt", "simshap.pt", "fastshap.pt"):
        _same_weights(out / name, reference / name)
    assert (out / "model.txt").read_text() == (reference / "model.txt").read_text()
    assert _results(out / "results.json") == _results(reference / "results.json")
    for png in ("error_vs_budget.png", "simshap_bar.png", "simshap_beeswarm.png"):
        assert (out / png).stat().st_size > 1000
    assert _cli("export", str(out / "simshap.pt"), "--out", str(export)).returncode == 0
    again = tmp_path / "again.onnx"
    assert _cli("export", str(reference / "simshap.pt"), "--out", str(again)).returncode == 0
    assert export.read_bytes() == again.read_bytes()
    assert _cli("explain", str(out / "simshap.pt"), str(rows), "--out", str(values)).returncode == 0
    assert len(pd.read_parquet(values)) == 3 * len(_rows())


def _rows() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).data.iloc[:200]


# --------------------------------------------------------------------------- crafted folders


def _interrupted(tmp_path: Path) -> tuple[Path, Path]:
    """A run killed after the surrogate's second epoch (its last.ckpt on disk)."""
    out, cfg = tmp_path / "run", _config(tmp_path)
    proc = _cli("run", str(cfg), "--out", str(out), fault="train.epoch:2")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (out / "surrogate_logs" / "checkpoints" / "last.ckpt").is_file()
    return out, cfg


@pytest.mark.timeout(600)
def test_a_crafted_last_ckpt_runs_no_code(tmp_path, reference):
    out, cfg = _interrupted(tmp_path)
    marker = tmp_path / "marker.txt"
    planted = tmp_path / "elsewhere" / "best.ckpt"
    planted.parent.mkdir()
    torch.save({"state_dict": Payload(marker)}, planted)
    last = out / "surrogate_logs" / "checkpoints" / "last.ckpt"
    blob = torch.load(last, weights_only=True)
    for key, state in blob["callbacks"].items():
        if "ModelCheckpoint" in key:  # point the checkpoint at the planted file
            state["best_model_path"] = str(planted)
            state["dirpath"] = str(planted.parent)
    torch.save(blob, last)
    proc = _cli("run", str(cfg), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()  # the planted pickle was never loaded
    _same_weights(out / "surrogate.pt", reference / "surrogate.pt")  # and the run is intact


@pytest.mark.timeout(600)
def test_a_moved_run_folder_resumes_from_its_own_checkpoints(tmp_path, reference):
    out, cfg = _interrupted(tmp_path)
    moved = tmp_path / "moved"
    shutil.move(str(out), moved)
    proc = _cli("run", str(cfg), "--out", str(moved))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from" in proc.stdout
    for name in ("surrogate.pt", "simshap.pt", "fastshap.pt"):
        _same_weights(moved / name, reference / name)


@pytest.mark.parametrize(
    "name",
    [
        "simshap.pt",
        "surrogate.pt",
        "ground_truth.pt",
        "surrogate_logs/checkpoints/last.ckpt",
        "surrogate_logs/checkpoints/best.ckpt",
    ],
)
@pytest.mark.timeout(600)
def test_a_pickle_payload_in_any_file_runs_no_code(tmp_path, reference, name):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    marker = tmp_path / "marker.txt"
    torch.save({"state_dict": Payload(marker), "values": Payload(marker)}, out / name)
    with pytest.raises(UserError):
        load_explainer(out / name)
    proc = _cli("run", str(_config(tmp_path)), "--out", str(out))
    assert not marker.exists()
    # the altered stage is recomputed (or the cache rebuilt), never trusted
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not match its manifest" in proc.stdout or name.endswith(("ground_truth.pt", ".ckpt"))


@pytest.mark.timeout(300)
def test_truncated_and_bit_flipped_explainers_are_refused(tmp_path, reference):
    good = reference / "simshap.pt"
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable simshap"):
        load_explainer(cut)
    flipped = tmp_path / "flipped.pt"
    rng = np.random.default_rng(0)
    raw = bytearray(data)
    # 200 random bytes in the weights (the zip's largest record), as an altered file would have
    start = data.find(b"data/0") + 200
    for i in rng.choice(np.arange(start, min(len(raw) - 100, start + 5000)), 200, replace=False):
        raw[i] = (raw[i] + 1 + int(rng.integers(255))) % 256
    flipped.write_bytes(bytes(raw))
    with pytest.raises(UserError):
        load_explainer(flipped)
    fake = tmp_path / "fake.pt"
    fake.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # a zip header and nothing behind it
    with pytest.raises(UserError, match="not a readable simshap"):
        load_explainer(fake)
    # and through the command line: one line, no traceback
    proc = _cli("explain", str(flipped), str(cut), "--out", str(tmp_path / "v.parquet"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.timeout(600)
def test_a_truncated_stage_output_is_recomputed(tmp_path, reference):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    target = out / "results.json"
    target.write_text(target.read_text()[:100])
    proc = _cli("run", str(_config(tmp_path)), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "results.json does not match its manifest entry" in proc.stdout
    assert _results(target) == _results(reference / "results.json")


# --------------------------------------------------------------------------- identity, lock


@pytest.mark.timeout(600)
def test_editing_the_data_or_model_file_in_place_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    frame["y"] = np.where(frame["a"] + rng.normal(0, 0.3, 120) > 0, "yes", "no")
    csv = tmp_path / "t.csv"
    frame.to_csv(csv, index=False)
    cfg = _config(
        tmp_path,
        dataset={"path": str(csv), "target": "y"},
        explainer={**TINY["explainer"], "methods": ["simshap"]},
    )
    out = tmp_path / "run"
    assert _cli("run", str(cfg), "--out", str(out)).returncode == 0
    frame.loc[0, "a"] = 99.0
    frame.to_csv(csv, index=False)
    proc = _cli("run", str(cfg), "--out", str(out))
    assert proc.returncode == 2 and str(csv.resolve()) in proc.stderr
    assert "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert _cli("evaluate", "--out", str(out)).returncode == 2  # every command checks it
    assert _cli("run", str(cfg), "--out", str(out), "--overwrite").returncode == 0


def test_a_second_process_on_the_same_folder_is_refused_and_a_stale_lock_taken_over(tmp_path):
    out = tmp_path / "run"
    with lock_folder(out):
        (out / "keep").write_text("x")
        with pytest.raises(
            UserError, match=f"in use by another simshap process \\(PID {os.getpid()}\\)"
        ):
            with lock_folder(out):
                pass
    # a holder killed with SIGKILL leaves the file, not the lock: the next process takes it
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from simshap.runs.folder import lock_folder\n"
                f"with lock_folder({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"PID {holder.pid}"):
        with lock_folder(out):
            pass
    holder.kill()
    holder.wait()
    with lock_folder(out):
        assert (out / ".lock").read_text() == str(os.getpid())


# --------------------------------------------------------------------------- limits, errors


def test_an_exact_truth_out_of_reach_is_refused_before_training(tmp_path):
    cfg = _config(tmp_path, evaluation={"n_instances": 100, "ground_truth": "exact"})
    out = tmp_path / "run"
    proc = _cli("run", str(cfg), "--out", str(out))
    assert proc.returncode == 2, proc.stderr[-2000:]
    for words in (
        "exact ground truth",
        "30 players",
        "1,073,741,824",
        "ground_truth: kernel_shap",
        "evaluation.n_instances",
        "group the features",
        "max_minutes",
    ):
        assert words in proc.stderr, words
    assert not (out / "model.txt").exists()  # refused before anything was trained


def test_a_wide_game_stays_within_memory_and_its_truth_is_refused_in_time():
    from simshap.evaluation.preflight import check_ground_truth_cost, instances_per_chunk
    from simshap.evaluation.truth import ground_truth
    from simshap.games.values import FunctionGame

    d = 2000
    # the normal equations of 2,000 players: two instances per GiB chunk, not 100 at once
    assert instances_per_chunk(d, 2) == 2

    def value(masks):  # a game with interactions, so KernelSHAP needs many coalitions
        z = masks.double()
        weights = torch.linspace(-1, 1, z.shape[-1], dtype=torch.float64)
        return (z @ weights + (z[..., :5].sum(-1) > 2).double())[..., None]

    game = FunctionGame(value, d, num_instances=100)
    with pytest.raises(
        UserError,
        match="kernel_shap ground truth of 100 instances with 2000 players would take at least",
    ):
        check_ground_truth_cost(game, 100, "auto", max_minutes=0.05, classes=1, threshold=0.01)
    small = FunctionGame(value, 8, num_instances=3)
    truth = ground_truth(small, threshold=0.01)  # and a small one goes through
    assert truth.method == "exact"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"seed": "abc"}, "'seed' should be a valid integer"),
        ({"surrogate": {"max_epochs": -1}}, "surrogate.max_epochs' should be greater than 0"),
        ({"evaluation": {"n_instances": 0}}, "evaluation.n_instances' should be greater than 0"),
        ({"explainer": {"hidden": "big"}}, "explainer.hidden' should be a valid integer"),
        ({"trainer": {"progress_bar": "no"}}, "trainer.progress_bar' should be a valid boolean"),
        ({"dataset": "nope"}, "unknown tabular data set 'nope'"),
    ],
)
def test_bad_config_values_are_one_line_errors(tmp_path, capsys, change, words):
    out = tmp_path / "run"
    assert main(["run", str(_config(tmp_path, **change)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1, err
    assert not out.exists()


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50, b"a,y\n1,0\n2,1\n"]
)
def test_bad_tables_are_one_line_errors(tmp_path, capsys, content):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    cfg = _config(tmp_path, dataset={"path": str(path), "target": "y"})
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("simshap: error: ") and err.count("\n") == 1, err


def test_wine_is_a_named_data_set():
    from simshap.data.tabular import load_tabular

    data = load_tabular("wine")
    assert data.n_classes == 3 and data.n_features == 13


@pytest.mark.timeout(300)
def test_a_constant_column_is_a_dummy_player_with_exactly_zero(tmp_path):
    import simshap

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame["const"] = 7.0
    y = (frame["a"] - frame["b"] > 0).astype(int)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(frame, y)
    small = {
        "surrogate": {"hidden": 16, "layers": 2, "max_epochs": 3},
        "explainer": {
            "hidden": 16,
            "layers": 2,
            "max_epochs": 2,
            "val_instances": 8,
            "val_budget": 32,
        },
    }
    for method in ("simshap", "fastshap"):
        explainer = simshap.fit(model, frame, y, method=method, accelerator="cpu", **small)
        sv = explainer(frame.assign(const=3.0))  # even where the value differs from training
        assert torch.equal(sv[:, "const"].values, torch.zeros(300, 1, 2))
        torch.testing.assert_close(
            sv.base_values + sv.values.sum(1), sv.prediction, atol=1e-5, rtol=0
        )
        path = simshap.export_explainer(explainer, tmp_path / f"{method}.onnx")
        import onnxruntime as ort

        codes = explainer.preprocessor.encode(frame).astype(np.float32)
        values = ort.InferenceSession(str(path)).run(None, {"rows": codes})[0]
        assert (values[:, 3] == 0).all()
