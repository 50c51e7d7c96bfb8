"""Masks per step vs more steps at equal surrogate evaluations (issue 11), census ``--quick``.

Each explainer variant sees the same number of surrogate evaluations per training row,
``epochs x (n_masks + 2)`` (v(∅) and v(N) included), and is scored against exact Shapley values
(d = 12, all 4,096 coalitions) on the first test instances, on the same surrogate. The run folder
holds the model, the surrogate and the truth of ``benchmarks/tabular.py --quick``'s census job
(same config and seed); each variant retrains an explainer in it.

Writes ``benchmarks/results/tabular_schedule.json`` and this benchmark's section of
``benchmarks/RESULTS.md``.

    python benchmarks/tabular_schedule.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _report import machine, write_section  # benchmarks/_report.py
from tabular import config_for  # benchmarks/tabular.py: the --quick settings

from simshap.amortized.io import load_explainer
from simshap.evaluation.metrics import attribution_errors
from simshap.games.values import MaskedModelGame
from simshap.runs.tabular import TabularRun

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Masks per step vs more steps, census"
# (explainer, masks per step, epochs): about 1,980 surrogate evaluations per training row each
VARIANTS = [("simshap", 64, 30), ("fastshap", 64, 30), ("simshap", 16, 110), ("fastshap", 16, 110)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train every variant, score it on exact truth, write the JSON and the section."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder with adult.data")
    p.add_argument("--run-dir", default=str(ROOT / "runs" / "benchmark_schedule" / "census"))
    p.add_argument("--instances", type=int, default=50)
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tabular_schedule.json"))
    p.add_argument("--results-md", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = p.parse_args(argv)
    started = time.perf_counter()
    cfg = config_for("census", args.data_dir, quick=True)
    run = TabularRun(args.run_dir, cfg)
    if not run.path("surrogate.pt").exists():
        run.start(overwrite=True)
        run.fit_model()
        run.fit_surrogate()
    x = torch.as_tensor(run.data.x_test[: args.instances])
    raw = run.data.raw_test[: args.instances]
    classes = torch.as_tensor(run.original_probs("test", args.instances).argmax(1))
    surrogate = run.surrogate()
    game = MaskedModelGame(surrogate.masked_probs, x, groups=surrogate.groups)
    truth, _ = run._ground_truth(game, surrogate, "exact", 0.01)
    base = dict(run.config["explainer"])
    rows = []
    for which, masks, epochs in VARIANTS:
        run.config["explainer"] = {
            **base,
            "n_masks": masks,
            "max_epochs": epochs,
            "patience": 2 * epochs,
        }
        fit = run.fit_explainer(which, overwrite=True)
        explainer = load_explainer(run.path(f"{which}.pt"))
        err = attribution_errors(explainer.explain(raw), truth.values, classes)
        rows.append(
            {
                "explainer": which,
                "n_masks": masks,
                "epochs": fit["epochs"],
                "evals_per_row": epochs * (masks + 2),
                "l2": err["l2"],
                "val_l2": fit["val_l2"],
                "train_s": fit["train_s"],
            }
        )
        print(rows[-1], flush=True)
    report = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": " ".join(["python", *sys.argv]),
        "instances": args.instances,
        "ground_truth": "exact",
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
    Path(args.json).write_text(json.dumps(report, indent=2))
    write_section(Path(args.results_md), SECTION, section(report))
    return report


def section(report: dict[str, Any]) -> str:
    """The RESULTS.md section: one row per variant, with its ratio to FastSHAP's l2 at 64 x 30."""
    m = report["machine"]
    anchor = {(r["explainer"], r["n_masks"]): r["l2"] for r in report["rows"]}
    lines = [
        SECTION,
        "",
        f"- date: {report['date']} (job wall time {report['wall_s']:.0f} s)",
        f"- machine: {m['cpu']} ({m['cpus']} CPUs), {m['platform']}, Python {m['python']}, "
        f"torch {m['torch']} ({m['torch_threads']} threads)",
        f"- command: `{report['command']}`",
        f"- ground truth: exact Shapley values, {report['instances']} test instances; the "
        "census `--quick` surrogate and explainer settings of benchmarks/tabular.py, with "
        "`n_masks` and `max_epochs` as below (no early stopping)",
        "",
        "| explainer | masks per step | epochs | evaluations per row | l2 | / FastSHAP at "
        "the same schedule | val l2 | training s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["rows"]:
        fast = anchor.get(("fastshap", r["n_masks"]))
        ratio = f"{r['l2'] / fast:.2f}" if fast else "–"
        lines.append(
            f"| {r['explainer']} | {r['n_masks']} | {r['epochs']} | "
            f"{r['evals_per_row']:,} | {r['l2']:.4f} | {ratio} | {r['val_l2']:.4f} | "
            f"{r['train_s']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
