"""A fresh machine's guarantees: crash-resume equals an uninterrupted run, caches never go stale,
two-process DDP, and user errors vs bugs on the command line.

The resume and DDP tests run real subprocesses (the `simshap` console script and a DDP script),
so each takes some seconds on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from simshap.cli import main

SCRIPTS = Path(__file__).parent / "scripts"

# the stages train long enough (30 / 24 epochs of tiny steps) to be killed in the middle
RESUME_CONFIG = {
    "dataset": "breast_cancer",
    "seed": 0,
    "model": {"max_rounds": 50},
    "surrogate": {
        "hidden": 32,
        "layers": 2,
        "batch_size": 8,
        "masks_per_row": 2,
        "max_epochs": 30,
        "patience": 1000,
        "cosine": True,
    },
    # SimSHAP: 8 sampling epochs, then 16 on its mean targets (the kill lands in either
    # phase, and a resume from the sampling epochs crosses into the memory epochs)
    "explainer": {
        "hidden": 32,
        "layers": 2,
        "n_masks": 8,
        "batch_size": 8,
        "max_epochs": 8,
        "memory_epochs": 16,
        "input_noise": 0.0,  # averaged targets (the small profile's noise would turn them off)
        "patience": 1000,
        "val_instances": 8,
        "val_budget": 512,
    },
    "evaluation": {"n_instances": 4, "threshold": 0.2, "budgets": [64]},
    "trainer": {"accelerator": "cpu", "progress_bar": False},
}


def _simshap(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "simshap.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    return out


def _last_epoch(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"])
    except Exception:  # absent, or being written right now
        return -1


def _kill_after_epochs(proc: subprocess.Popen, ckpt: Path, epochs: int) -> int:
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and proc.poll() is None:
        epoch = _last_epoch(ckpt)
        if epoch >= epochs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return epoch
        time.sleep(0.05)
    raise AssertionError(
        f"the run ended before {epochs} epochs were checkpointed: {proc.communicate()[0]}"
    )


def _weights(path: Path, key: str = "state_dict") -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)[key]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.timeout(900)
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(RESUME_CONFIG))
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    for out in (straight, crashed):
        _finish(_simshap("fit-model", str(cfg), "--out", str(out)))
    _finish(_simshap("fit-surrogate", "--out", str(straight)))
    _finish(_simshap("fit-explainer", "--out", str(straight), "--explainer", "simshap"))

    # surrogate: kill -9 after a few checkpointed epochs, rerun the same command
    proc = _simshap("fit-surrogate", "--out", str(crashed))
    ckpt = crashed / "surrogate_logs" / "checkpoints" / "last.ckpt"
    killed_at = _kill_after_epochs(proc, ckpt, 3)
    assert not (crashed / "surrogate.pt").exists() and killed_at < 29
    out = _finish(_simshap("fit-surrogate", "--out", str(crashed)))
    assert "resuming from" in out
    diff = _max_diff(_weights(straight / "surrogate.pt"), _weights(crashed / "surrogate.pt"))
    assert diff <= 1e-6

    # SimSHAP: the same, through `run` (which keeps finished stages and resumes this one)
    proc = _simshap("run", str(cfg), "--out", str(crashed))
    ckpt = crashed / "simshap_logs" / "checkpoints" / "last.ckpt"
    _kill_after_epochs(proc, ckpt, 3)
    assert not (crashed / "simshap.pt").exists()
    _finish(_simshap("fit-explainer", "--out", str(crashed), "--explainer", "simshap"))
    assert _max_diff(_weights(straight / "simshap.pt"), _weights(crashed / "simshap.pt")) <= 1e-6


@pytest.mark.timeout(600)
def test_stale_ground_truth_is_never_reused(tmp_path, monkeypatch):
    from simshap.runs.tabular import TabularRun

    cfg = tmp_path / "c.yaml"
    small = {
        **RESUME_CONFIG,
        "surrogate": {**RESUME_CONFIG["surrogate"], "max_epochs": 2},
        "explainer": {**RESUME_CONFIG["explainer"], "max_epochs": 1, "memory_epochs": 0},
    }
    cfg.write_text(yaml.safe_dump(small))
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    first = torch.load(out / "ground_truth.pt", weights_only=True)
    calls = []
    real = TabularRun._ground_truth

    def spy(self, game, method, threshold):
        est, seconds = real(self, game, method, threshold)
        calls.append(est.values)
        return est, seconds

    monkeypatch.setattr(TabularRun, "_ground_truth", spy)
    # same surrogate: the cache is reused (identical values, no recomputation needed)
    assert main(["evaluate", "--out", str(out), "--overwrite"]) == 0
    assert torch.equal(calls[-1], first["values"])
    # a new surrogate (one more epoch): the old ground truth must not be used
    run_cfg = yaml.safe_load((out / "config.yaml").read_text())
    run_cfg["surrogate"]["max_epochs"] = 3
    (out / "config.yaml").write_text(yaml.safe_dump(run_cfg))
    assert main(["fit-surrogate", "--out", str(out), "--overwrite"]) == 0
    # the explainers were trained on the old surrogate: they are stale until retrained
    assert main(["evaluate", "--out", str(out), "--overwrite"]) == 2
    assert main(["fit-explainer", "--out", str(out)]) == 0
    assert main(["evaluate", "--out", str(out), "--overwrite"]) == 0
    second = torch.load(out / "ground_truth.pt", weights_only=True)
    assert second["key"] != first["key"]
    assert not torch.allclose(calls[-1], first["values"])


@pytest.mark.timeout(600)
def test_two_process_ddp_draws_per_rank_masks_and_all_reduces(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "ddp_train.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in ("surrogate", "simshap"):
        r0, r1 = (json.loads((tmp_path / f"rank{r}_{stage}.json").read_text()) for r in (0, 1))
        assert r0["world_size"] == r1["world_size"] == 2
        assert r0["masks"] != r1["masks"]  # each rank draws its own coalitions
        assert r0["logged"] == pytest.approx(r1["logged"], abs=1e-7)  # one all-reduced value
        assert r0["logged"] == pytest.approx((r0["local"] + r1["local"]) / 2, rel=1e-5)
        assert r0["local"] != pytest.approx(r1["local"], rel=1e-3)
    # the target means: identical on both ranks, every row counted once per sampling epoch
    # (2 epochs; the third fits the means and adds nothing)
    m0, m1 = (torch.load(tmp_path / f"rank{r}_memory.bin", weights_only=True) for r in (0, 1))
    assert torch.equal(m0["sums"], m1["sums"]) and torch.equal(m0["counts"], m1["counts"])
    assert torch.equal(m0["counts"], torch.full((64,), 2.0))
    # rank 0 alone writes: one file per stage, and one checkpoint folder
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["simshap.pt", "surrogate.pt"]
    assert sorted(p.name for p in (tmp_path / "surrogate_logs" / "checkpoints").iterdir()) == [
        "best.ckpt",
        "last.ckpt",
    ]


def test_cli_user_error_is_one_line_and_bug_keeps_traceback(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"dataset": "breast_cancer", "surogate": {}}))
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simshap: error: unknown config key 'surogate'")
    assert main(["evaluate", "--out", str(tmp_path / "nothing")]) == 2
    assert "config.yaml not found" in capsys.readouterr().err

    from simshap.runs import tabular as pipeline

    def broken(self, overwrite=False):
        raise ValueError("an internal bug")

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(RESUME_CONFIG))
    monkeypatch.setattr(pipeline.TabularRun, "fit_model", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["run", str(good), "--out", str(tmp_path / "r2")])
