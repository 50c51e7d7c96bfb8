"""The helpers every benchmark script shares (``benchmarks/_report.py``, ``--set`` overrides)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from simshap.errors import UserError
from simshap.runs.config_files import load_config, merge_config

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from _report import write_section  # noqa: E402


def test_write_section_replaces_in_place_and_appends_new(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# R\n\n## A\n\na\n\n## B\n\nb\n\n### B.1\n\nb1\n\n## C\n\nc\n")
    write_section(path, "## B", "## B\n\nnew b\n")
    write_section(path, "## C", "## C\n\nnew c")
    write_section(path, "## D", "## D\n\nd")
    assert path.read_text() == "# R\n\n## A\n\na\n\n## B\n\nnew b\n\n## C\n\nnew c\n\n## D\n\nd\n"


def test_cifar10_set_overrides_are_validated_like_yaml_keys() -> None:
    import cifar10

    cfg = load_config(
        Path(__file__).resolve().parents[1] / "simshap" / "runs" / "configs" / "cifar10-subset.yaml"
    )
    out = merge_config(cfg, cifar10.parse_override("explainer.methods=[simshap, fastshap]"))
    assert out["explainer"]["methods"] == ["simshap", "fastshap"]
    assert out["explainer"]["n_masks"] == cfg["explainer"]["n_masks"]
    with pytest.raises(UserError, match="explainer.max_epoch"):
        merge_config(cfg, cifar10.parse_override("explainer.max_epoch=3"))
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        cifar10.parse_override("explainer.max_epochs")


@pytest.mark.timeout(60)
def test_minutes_to_fastshap_val_l2_reads_the_csv_logs(tmp_path: Path) -> None:
    from tabular import minutes_to_reach

    def log(name: str, vals: list[float]) -> None:
        folder = tmp_path / f"{name}_logs" / "logs" / "version_0"
        folder.mkdir(parents=True)
        rows = ["epoch,step,train_loss,val_l2"]
        for e, v in enumerate(vals):  # Lightning writes train and val metrics on separate rows
            rows += [f"{e},{10 * e},,{v}", f"{e},{10 * e},0.1,"]
        (folder / "metrics.csv").write_text("\n".join(rows) + "\n")

    log("fastshap", [0.5, 0.3, 0.2, 0.25])  # best 0.2
    log("simshap", [0.4, 0.19, 0.1, 0.1])  # reaches it at epoch 1 of 4
    log("labels", [0.3, 0.25, 0.21, 0.21])  # never
    stages = {
        "model": {},
        "surrogate": {},
        "fastshap": {"train_s": 120.0, "epochs": 4},
        "simshap": {"train_s": 240.0, "epochs": 4},
        "labels": {"train_s": 180.0, "label_s": 60.0, "epochs": 4},
    }
    out = minutes_to_reach(tmp_path, stages)
    assert out["fastshap"] == pytest.approx(3 / 4 * 120 / 60)  # its best, at epoch 2
    assert out["simshap"] == pytest.approx(2 / 4 * 240 / 60)
    assert out["labels"] is None

    # with logged epoch seconds, uneven epochs (memory epochs that call no surrogate) count
    # by their share of the logged time: 3 + 1 of 3 + 1 + 1 + 1 seconds
    timed = tmp_path / "simshap_logs" / "logs" / "version_0" / "metrics.csv"
    timed.write_text(
        timed.read_text()
        + "".join(f"{e},{10 * e},,,{s}\n" for e, s in enumerate([3.0, 1.0, 1.0, 1.0]))
    )
    timed.write_text(timed.read_text().replace("train_loss,val_l2", "train_loss,val_l2,epoch_s"))
    assert minutes_to_reach(tmp_path, stages)["simshap"] == pytest.approx(4 / 6 * 240 / 60)


def test_schedule_variants_spend_equal_evaluations_and_ratios_pair_schedules() -> None:
    """benchmarks/tabular_schedule.py: every variant spends about the same surrogate
    evaluations per row; each row's ratio is to FastSHAP at the same masks per step."""
    import tabular_schedule

    evals = [epochs * (masks + 2) for _, masks, epochs in tabular_schedule.VARIANTS]
    assert max(evals) - min(evals) <= 0.01 * max(evals)
    rows = [
        {
            "explainer": e,
            "n_masks": m,
            "epochs": k,
            "evals_per_row": k * (m + 2),
            "l2": l2,
            "val_l2": l2,
            "train_s": 1.0,
        }
        for (e, m, k), l2 in zip(
            tabular_schedule.VARIANTS, (0.01, 0.008, 0.006, 0.0075), strict=True
        )
    ]
    machine = {
        "cpu": "x",
        "cpus": 2,
        "platform": "p",
        "python": "3",
        "torch": "t",
        "torch_threads": 1,
    }
    text = tabular_schedule.section(
        {
            "date": "d",
            "machine": machine,
            "command": "c",
            "instances": 50,
            "rows": rows,
            "wall_s": 1.0,
        }
    )
    assert "| simshap | 64 | 30 | 1,980 | 0.0100 | 1.25 |" in text
    assert "| simshap | 16 | 110 | 1,980 | 0.0060 | 0.80 |" in text


@pytest.mark.timeout(60)
def test_images_user_model_budget_split_fits_the_budget() -> None:
    import copy

    import images_user_model as bench

    cfg = {
        "surrogate": {},
        "explainer": {"val_instances": 64, "val_budget": 2048},
        "evaluation": {"images": 50, "budgets": [512, 2048], "truth_max_evals": 10240},
    }
    plan = bench.plan_budget(copy.deepcopy(cfg), 1800.0, 3000.0, 49)
    stages = {k: v for k, v in plan.items() if k.endswith("_s") and k != "seconds_left_at_plan"}
    assert sum(stages.values()) == pytest.approx(1800.0)  # every second is planned once
    assert plan["simshap_s"] == plan["fastshap_s"] > 0.3 * 1800  # the bulk goes to them
    assert plan["ground_truth_s"] == pytest.approx(1.25 * 50 * 10240 / 3000)
    sized = copy.deepcopy(cfg)
    bench.plan_budget(sized, 1800.0, 3000.0, 49)
    assert sized["explainer"]["max_minutes"] == pytest.approx(plan["simshap_s"] / 60)
    with pytest.raises(SystemExit, match="raise --budget-minutes"):
        bench.plan_budget(copy.deepcopy(cfg), 400.0, 3000.0, 49)
