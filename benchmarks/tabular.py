"""Tabular benchmark: the paper's Fig. 2 table and Table 4's tabular timing.

For each data set (census and news by default) the whole tabular job of ``simshap.runs.tabular``
runs in one folder per data set: LightGBM original model, surrogate, SimSHAP and FastSHAP
explainers, KernelSHAP ground truth (paired, threshold 0.01) on the first test instances, and
every stochastic estimator at matched budgets of surrogate evaluations. All methods are compared
on the same surrogate game in the same run.

Reported per data set:

- Fig. 2: mean l2 to the ground truth of KernelSHAP, paired KernelSHAP, permutation and
  antithetic permutation sampling at each budget, and of SimSHAP / FastSHAP (one forward pass).
- Table 4 (tabular rows): inference seconds per instance of SimSHAP, FastSHAP and the KernelSHAP
  ground truth, and the training seconds of the surrogate and of each explainer.
- Ratios against anchors of the same run: SimSHAP l2 / FastSHAP l2, SimSHAP l2 / paired
  KernelSHAP l2 at 2048 evaluations (goals: both <= 1) and ground-truth time / SimSHAP time.

``--quick`` shrinks the networks, the coalitions per step (16 masks x 110 epochs, then 100
SimSHAP epochs on its mean targets that call no surrogate) and the explained instances for two
CPU cores: one data set at a time with ``OMP_NUM_THREADS=2``, census takes 25-29 minutes and
news 12-16, depending on the machine's day; without it the paper-sized ``configs/<name>.yaml``
are used as they are (meant for a GPU).

Writes ``benchmarks/results/tabular.json`` and this benchmark's section of
``benchmarks/RESULTS.md``; the run folders go to ``--runs`` (default ``runs/benchmark_tabular``,
ignored by git).

    OMP_NUM_THREADS=2 python benchmarks/tabular.py --data-dir ../shared/data --quick
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _report import machine, write_section  # benchmarks/_report.py

from simshap.evaluation.report import AMORTIZED, METHOD_LABELS
from simshap.runs.config_files import load_config  # noqa: E402
from simshap.runs.tabular import TabularRun

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Tabular: census and news"
FAMILIES = (
    "kernelshap",
    "kernelshap_paired",
    "kernelshap_leverage",
    "permutation",
    "permutation_antithetic",
    "simshap+kernelshap",
    "labels+kernelshap",
)
GOAL_BUDGET = 2048

# Smaller settings for --quick (merged over configs/<name>.yaml; every key exists there).
QUICK: dict[str, dict[str, Any]] = {
    "census": {
        "surrogate": {
            "hidden": 256,
            "layers": 3,
            "batch_size": 256,
            "masks_per_row": 4,
            "max_epochs": 12,
            "patience": 4,
        },
        # 16 masks x 110 epochs: at the same 1,980 evaluations per row, more epochs of fewer
        # masks beat 64 x 30 for every explainer (benchmarks/RESULTS.md, masks per step)
        "explainer": {
            "hidden": 512,
            "layers": 3,
            "n_masks": 16,
            "lr": 0.001,
            "weight_decay": 0.05,
            "cosine": True,
            "batch_size": 128,
            "max_epochs": 110,
            "patience": 400,
            "val_instances": 128,
            "val_budget": 2048,
            # SimSHAP: then 100 epochs on its mean targets, no surrogate call
            "memory_epochs": 100,
            "methods": ["simshap", "simshap_paper", "fastshap", "labels"],
            # labels at SimSHAP's surrogate evaluations: paired KernelSHAP at
            # 110 epochs x (16 + 2) = 1,980 evaluations for every training row
            # (exact labels, 4,096 each, would cover only 12,594 of the 26,048
            # rows: l2 0.0065 against 0.0041, benchmarks/RESULTS.md)
            "label_budget": 1980,
            # a labels epoch calls no surrogate: 300 epochs cost 181 s on 2 threads
            "label_epochs": 300,
        },
        "evaluation": {"n_instances": 50, "budgets": [32, 64, 128, 256, 512, 1024, 2048, 4096]},
    },
    "news": {
        "surrogate": {
            "hidden": 256,
            "layers": 3,
            "batch_size": 128,
            "masks_per_row": 4,
            "max_epochs": 20,
            "patience": 5,
        },
        "explainer": {
            "hidden": 512,
            "layers": 3,
            "n_masks": 16,
            "lr": 0.001,
            "weight_decay": 0.05,
            "cosine": True,
            "batch_size": 64,
            "max_epochs": 110,
            "patience": 400,
            "val_instances": 128,
            "val_budget": 2048,
            "memory_epochs": 100,
            "methods": ["simshap", "simshap_paper", "fastshap", "labels"],
            # labels at SimSHAP's surrogate evaluations: paired KernelSHAP at
            # 110 epochs x (16 + 2) = 1,980 evaluations for every training row
            "label_budget": 1980,
            "label_epochs": 300,
        },
        "evaluation": {"n_instances": 20, "budgets": [32, 64, 128, 256, 512, 1024, 2048, 4096]},
    },
}


def _deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if key not in out:
            raise KeyError(f"quick override {key!r} is not a config key")
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) else value
    return out


def config_for(name: str, data_dir: str | None, quick: bool) -> dict[str, Any]:
    """The merged config of ``configs/<name>.yaml`` (with the quick overrides)."""
    cfg = load_config(ROOT / "simshap" / "runs" / "configs" / f"{name}.yaml")
    if data_dir is not None:
        cfg["data_dir"] = data_dir
    if quick:
        cfg = _deep_update(cfg, QUICK.get(name, {}))
    cfg["trainer"]["progress_bar"] = False
    return cfg


def run_dataset(name: str, cfg: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The whole tabular job on one data set; returns results.json plus the stage reports."""
    run = TabularRun(folder, cfg)
    run.start(overwrite=True)
    t0 = time.perf_counter()
    stages: dict[str, Any] = {"model": run.fit_model(), "surrogate": run.fit_surrogate()}
    print(f"[{name}] model {stages['model']}\n[{name}] surrogate {stages['surrogate']}", flush=True)
    for explainer in run.explainer_names:  # SimSHAP (default and paper targets), FastSHAP
        stages[explainer] = run.fit_explainer(explainer)
        print(f"[{name}] {explainer} {stages[explainer]}", flush=True)
    results = run.evaluate()
    print(run.table(results), flush=True)
    results["stages"] = stages
    results["minutes_to_fastshap_val_l2"] = minutes_to_reach(folder, stages)
    results["wall_s"] = time.perf_counter() - t0
    results["config"] = cfg
    return results


def _metrics(folder: Path, name: str) -> list[dict[str, str]]:
    """The rows of one explainer's Lightning CSV log in the run folder ([] when absent)."""
    import csv

    logs = sorted((folder / f"{name}_logs" / "logs").glob("version_*/metrics.csv"))
    if not logs:
        return []
    with logs[-1].open() as f:
        return list(csv.DictReader(f))


def val_curve(folder: Path, name: str) -> list[tuple[int, float]]:
    """``(epoch, val_l2)`` of one explainer, from its Lightning CSV log in the run folder."""
    return [
        (int(r["epoch"]), float(r["val_l2"])) for r in _metrics(folder, name) if r.get("val_l2")
    ]


def epoch_seconds(folder: Path, name: str) -> dict[int, float]:
    """``{epoch: wall seconds}`` of one explainer (``epoch_s``, logged by ``fit_module``)."""
    return {
        int(r["epoch"]): float(r["epoch_s"]) for r in _metrics(folder, name) if r.get("epoch_s")
    }


def minutes_to_reach(
    folder: Path, stages: dict[str, Any], reference: str = "fastshap"
) -> dict[str, float | None]:
    """Training minutes until each explainer's validation l2 first reaches ``reference``'s best.

    The time of epoch e is the label time (``labels``) plus the fit time times the share of
    the logged epoch seconds up to e: SimSHAP's memory epochs call no surrogate and cost
    less than its sampling epochs. Logs without ``epoch_s`` count every epoch the same.
    ``None``: never reached.
    """
    curves = {
        name: val_curve(folder, name) for name in stages if name not in ("model", "surrogate")
    }
    if not curves.get(reference):
        return {}
    target = min(v for _, v in curves[reference])
    out: dict[str, float | None] = {}
    for name, curve in curves.items():
        st = stages[name]
        label_s = float(st.get("label_s", 0.0))
        fit_s, epochs = float(st["train_s"]) - label_s, max(int(st["epochs"]), 1)
        hit = next((e for e, v in curve if v <= target), None)
        if hit is None:
            out[name] = None
            continue
        secs = epoch_seconds(folder, name)
        if secs and all(e in secs for e in range(hit + 1)):
            share = sum(secs[e] for e in range(hit + 1)) / sum(secs.values())
        else:
            share = (hit + 1) / epochs
        out[name] = (label_s + share * fit_s) / 60.0
    return out


def summary(res: dict[str, Any]) -> dict[str, Any]:
    """Anchored ratios and the goals for one data set."""
    m = res["methods"]
    sim, fast = m["simshap"], m["fastshap"]
    paired = m.get(f"kernelshap_paired@{GOAL_BUDGET}")
    gt_s = res["ground_truth"]["seconds_per_instance"]
    out = {
        "simshap_over_fastshap_l2": sim["l2"] / fast["l2"],
        "simshap_over_kernelshap_paired_2048_l2": sim["l2"] / paired["l2"] if paired else None,
        "ground_truth_over_simshap_time": gt_s / sim["inference_s_per_instance"],
        "ground_truth_over_fastshap_time": gt_s / fast["inference_s_per_instance"],
    }
    out["goal_simshap_le_fastshap"] = out["simshap_over_fastshap_l2"] <= 1.0
    # the goals
    out["goal_simshap_le_0.8_fastshap"] = out["simshap_over_fastshap_l2"] <= 0.8
    if "simshap_paper" in m:
        out["simshap_paper_over_fastshap_l2"] = m["simshap_paper"]["l2"] / fast["l2"]
    if "labels" in m:  # regression on labels computed once, at SimSHAP's evaluations
        out["labels_over_fastshap_l2"] = m["labels"]["l2"] / fast["l2"]
        out["labels_over_simshap_l2"] = m["labels"]["l2"] / sim["l2"]
    ks512 = m.get("kernelshap_paired@512")
    if ks512:
        out["simshap_over_kernelshap_paired_512_l2"] = sim["l2"] / ks512["l2"]
        if "simshap+kernelshap@64" in m:
            out["budget64_over_kernelshap_paired_512_l2"] = (
                m["simshap+kernelshap@64"]["l2"] / ks512["l2"]
            )
        if "labels+kernelshap@64" in m:
            out["labels_budget64_over_kernelshap_paired_512_l2"] = (
                m["labels+kernelshap@64"]["l2"] / ks512["l2"]
            )
        if "labels" in m:
            out["labels_over_kernelshap_paired_512_l2"] = m["labels"]["l2"] / ks512["l2"]
    for prefix in ("simshap", "labels"):  # amortized + budget worse than the better source
        if prefix not in m:
            continue
        worse = []
        for key, entry in m.items():
            if key.startswith(f"{prefix}+kernelshap@"):
                b = key.split("@")[1]
                ks = m.get(f"kernelshap_paired@{b}")
                best = min(m[prefix]["l2"], ks["l2"]) if ks else m[prefix]["l2"]
                if entry["l2"] > best:
                    worse.append(f"{b}: {entry['l2']:.4f} > {best:.4f}")
        out[
            "budget_worse_than_best_of_both"
            if prefix == "simshap"
            else "labels_budget_worse_than_best_of_both"
        ] = worse
    ratio = out["simshap_over_kernelshap_paired_2048_l2"]
    out["goal_simshap_le_kernelshap_paired_2048"] = None if ratio is None else ratio <= 1.0
    return out


def _budgets(res: dict[str, Any]) -> list[int]:
    return sorted({int(k.split("@")[1]) for k in res["methods"] if "@" in k})


def _minutes(res: dict[str, Any], name: str) -> str:
    table = res.get("minutes_to_fastshap_val_l2") or {}
    if name not in table:
        return "—"
    return "never" if table[name] is None else f"{table[name]:.2f}"


def section(report: dict[str, Any]) -> str:
    """This benchmark's markdown section of RESULTS.md."""
    env = report["environment"]
    settings = (
        "--quick (smaller networks, 16 masks per step, fewer instances than configs/)"
        if report["quick"]
        else "configs/<name>.yaml as is"
    )
    lines = [
        SECTION,
        "",
        f"- date: {report['date']}",
        f"- machine: {env['cpu']} ({env['cpus']} CPUs, shared), {env['platform']}, Python "
        f"{env['python']}, torch {env['torch']} ({env['torch_threads']} threads, "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}), device {env['device']}",
        f"- command: `{report['command']}`",
        f"- settings: {settings}",
        "- l2: per instance over the d attributions of the original model's predicted class, "
        "mean over the explained test instances; ground truth on the same surrogate game: "
        "`evaluation.ground_truth: auto` (exact Shapley values for d <= 16, otherwise paired "
        "KernelSHAP to Covert & Lee's per-class threshold 0.01).",
        "",
    ]
    for name, res in report["datasets"].items():
        gt, m, s = res["ground_truth"], res["methods"], report["summary"][name]
        budgets = _budgets(res)
        st = res["stages"]
        lines += [
            f"### {name} (d = {res['n_features']}, {gt['n_instances']} test instances)",
            "",
            f"Ground truth: up to {gt.get('max_n_evals', '?')} evaluations per instance.",
            "",
            f"Original LightGBM test accuracy {st['model']['test_accuracy']:.4f}; surrogate "
            f"full-mask accuracy {st['surrogate']['surrogate_full_mask_accuracy']:.4f}, "
            f"validation loss {st['surrogate']['val_loss']:.4f}; SimSHAP {st['simshap']['epochs']} "
            f"epochs, FastSHAP {st['fastshap']['epochs']} epochs; job wall time "
            f"{res['wall_s']:.0f} s.",
            "",
            "Fig. 2 — mean l2 to the ground truth by evaluations per instance:",
            "",
            "| method | " + " | ".join(str(b) for b in budgets) + " |",
            "| --- |" + " ---: |" * len(budgets),
        ]
        for fam in FAMILIES:
            cells = [f"{m[f'{fam}@{b}']['l2']:.4f}" if f"{fam}@{b}" in m else "" for b in budgets]
            lines.append(f"| {fam} | " + " | ".join(cells) + " |")
        for ex in AMORTIZED:
            if ex in m:
                lines.append(
                    f"| {METHOD_LABELS[ex]} (1 forward pass) | "
                    + " | ".join([f"{m[ex]['l2']:.4f}"] * len(budgets))
                    + " |"
                )
        t = res["training_s"]
        lines += [
            "",
            "Table 4 (tabular) — seconds:",
            "",
            "| | inference s / instance | training s | minutes to FastSHAP's best val l2 |",
            "| --- | ---: | ---: | ---: |",
            *[
                f"| {METHOD_LABELS[ex]} | {m[ex]['inference_s_per_instance']:.3g} | "
                f"{t.get(f'{ex}_train_s', float('nan')):.1f} | {_minutes(res, ex)} |"
                for ex in AMORTIZED
                if ex in m
            ],
            f"| KernelSHAP ground truth | {gt['seconds_per_instance']:.3g} | — | — |",
            f"| surrogate | — | {t.get('surrogate_train_s', float('nan')):.1f} | — |",
            "",
            "Minutes to FastSHAP's best validation l2 (to KernelSHAP@val_budget targets): "
            "label time plus the epochs until the explainer's validation l2 first reaches "
            "it, each epoch at its logged wall time; 'never' if it does not within its "
            "schedule.",
            "",
            f"Ratios in this run: SimSHAP l2 / FastSHAP l2 = {s['simshap_over_fastshap_l2']:.3f} "
            f"(goal <= 1: {'met' if s['goal_simshap_le_fastshap'] else 'MISSED'}); "
            f"SimSHAP l2 / paired KernelSHAP@{GOAL_BUDGET} l2 = "
            + (
                f"{s['simshap_over_kernelshap_paired_2048_l2']:.3f} (goal <= 1: "
                f"{'met' if s['goal_simshap_le_kernelshap_paired_2048'] else 'MISSED'})"
                if s["simshap_over_kernelshap_paired_2048_l2"] is not None
                else "n/a"
            )
            + f"; ground truth / SimSHAP inference time = "
            f"{s['ground_truth_over_simshap_time']:.3g}x, ground truth / FastSHAP = "
            f"{s['ground_truth_over_fastshap_time']:.3g}x.",
            "",
            "Goals: "
            + ", ".join(
                f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in s.items()
                if k.startswith(
                    (
                        "goal_simshap_le_0.8",
                        "simshap_over_kernelshap_paired_512",
                        "budget",
                        "labels",
                    )
                )
            ),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with adult.data and the news CSV (default: SIMSHAP_DATA)",
    )
    p.add_argument("--datasets", nargs="+", default=["census", "news"])
    p.add_argument("--quick", action="store_true", help="smaller settings for CPUs")
    p.add_argument(
        "--runs",
        default=str(ROOT / "runs" / "benchmark_tabular"),
        help="folder for the run folders (one per data set)",
    )
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tabular.json"))
    p.add_argument("--results-md", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    args = p.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS") == "1":
        torch.set_num_threads(1)

    report: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/tabular.py", *sys.argv[1:]])
        if argv is None
        else " ".join(["python", "benchmarks/tabular.py", *argv]),
        "quick": args.quick,
        "environment": machine(),
        "datasets": {},
        "summary": {},
    }
    for name in args.datasets:
        cfg = config_for(name, args.data_dir, args.quick)
        res = run_dataset(name, cfg, Path(args.runs) / name)
        report["datasets"][name] = res
        report["summary"][name] = summary(res)
        print(f"[{name}] {report['summary'][name]}", flush=True)
        # write after each data set so a partial run still leaves its numbers
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    write_section(Path(args.results_md), SECTION, section(report))
    print(f"wrote {args.json} and {args.results_md}")


if __name__ == "__main__":
    main()
