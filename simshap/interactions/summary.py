"""Aggregates of detection and compression records, and their Markdown tables."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

__all__ = [
    "compression_table",
    "detection_table",
    "summarize_compression",
    "summarize_detection",
]

METHODS = ("ucb", "ucb_code_width", "ucb_sigma_max", "naive", "exact", "nid")
_LABELS = {"ucb": "UCB (ours)", "ucb_code_width": "UCB δ=2/√n",
           "ucb_sigma_max": "UCB σ=max", "naive": "naive m·n",
           "exact": "exact STII", "nid": "NID"}  # fmt: skip


def _mean_std(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize_detection(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-dataset and overall mean ± std (over seeds) of AUCs, pulls and times."""
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_name[rec["dataset"]].append(rec)
    per: dict[str, Any] = {}
    for name, recs in by_name.items():
        row: dict[str, Any] = {
            "pulls": _mean_std([r["ucb"]["pulls"] for r in recs]),
            "naive_pulls": recs[0]["ucb"]["naive_pulls"],
            "ucb_seconds": _mean_std([r["ucb"]["seconds"] for r in recs]),
            "teacher_seconds": _mean_std([r["teacher_seconds"] for r in recs]),
        }
        if "ucb_code_width" in recs[0]:
            row["pulls_code_width"] = _mean_std([r["ucb_code_width"]["pulls"] for r in recs])
        if "ucb_sigma_max" in recs[0]:
            row["pulls_sigma_max"] = _mean_std([r["ucb_sigma_max"]["pulls"] for r in recs])
        if "exact" in recs[0]:
            row["exact_seconds"] = _mean_std([r["exact"]["seconds"] for r in recs])
        if "auc" in recs[0]:
            row["auc"] = {
                m: _mean_std([r["auc"][m] for r in recs]) for m in METHODS if m in recs[0]["auc"]
            }
        per[name] = row
    synthetic = [n for n in per if "auc" in per[n]]
    overall: dict[str, Any] = {}
    if synthetic:
        methods = per[synthetic[0]]["auc"].keys()
        overall["auc"] = {m: float(np.mean([per[n]["auc"][m]["mean"] for n in synthetic]))
                          for m in methods}  # fmt: skip
        # std over seeds of the per-seed mean across functions (the paper's ± of "average")
        seeds = sorted({r["seed"] for r in records if r["dataset"] in synthetic})
        seed_means = [
            np.mean([r["auc"]["ucb"] for r in records if r["seed"] == s and "auc" in r])
            for s in seeds
        ]
        overall["ucb_auc_seed_std"] = float(np.std(seed_means))
    overall["pulls"] = float(np.mean([per[n]["pulls"]["mean"] for n in per]))
    overall["naive_pulls"] = float(np.mean([per[n]["naive_pulls"] for n in per]))
    overall["pull_fraction"] = overall["pulls"] / overall["naive_pulls"]
    overall["ucb_seconds"] = float(np.mean([per[n]["ucb_seconds"]["mean"] for n in per]))
    for key in ("pulls_code_width", "pulls_sigma_max"):
        if all(key in per[n] for n in per):
            overall[key] = float(np.mean([per[n][key]["mean"] for n in per]))
    return {"per_dataset": per, "overall": overall}


def detection_table(summary: dict[str, Any]) -> str:
    """Markdown table: AUC per function and method, pulls and UCB seconds."""
    per = summary["per_dataset"]
    methods = [m for m in METHODS if any(m in row.get("auc", {}) for row in per.values())]
    head = "| data | " + " | ".join(f"AUC {_LABELS[m]}" for m in methods)
    wide = "ucb_code_width" in methods
    single = "ucb_sigma_max" in methods
    lines = [head + " | pulls (UCB / naive) |" + (" pulls δ=2/√n |" if wide else "")
             + (" pulls σ=max |" if single else "") + " UCB s |",
             "| --- " * (len(methods) + 3 + wide + single) + "|"]  # fmt: skip
    for name, row in per.items():
        cells = [
            f"{row['auc'][m]['mean']:.3f} ± {row['auc'][m]['std']:.3f}" if "auc" in row else "–"
            for m in methods
        ]
        lines.append(
            f"| {name} | " + " | ".join(cells)
            + f" | {row['pulls']['mean']:.0f} / {row['naive_pulls']} "
            + (f"| {row['pulls_code_width']['mean']:.0f} " if wide else "")
            + (f"| {row['pulls_sigma_max']['mean']:.0f} " if single else "")
            + f"| {row['ucb_seconds']['mean']:.2f} |"
        )
    ov = summary["overall"]
    if "auc" in ov:
        cells = [f"**{ov['auc'][m]:.3f}**" for m in methods]
        lines.append(
            "| **mean** | " + " | ".join(cells)
            + f" | {ov['pulls']:.0f} / {ov['naive_pulls']:.0f} ({100 * ov['pull_fraction']:.0f}%)"
            + (f" | {ov['pulls_code_width']:.0f}" if wide else "")
            + (f" | {ov['pulls_sigma_max']:.0f}" if single else "")
            + f" | {ov['ucb_seconds']:.2f} |"
        )
    return "\n".join(lines)


def summarize_compression(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-dataset means (over seeds and folds) and the mean over synthetic functions."""
    keys = ("teacher_nrmse", "paraace_nrmse", "random_nrmse", "compression_ratio")
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_name[rec["dataset"]].extend(rec["folds"])
    per = {
        name: {
            **{k: float(np.mean([f[k] for f in folds])) for k in keys},
            "folds": len(folds),
            "teacher_params": folds[0]["teacher_params"],
            "paraace_params": folds[0]["paraace_params"],
            "seconds": float(np.mean([f["teacher_seconds"] + f["paraace_seconds"]
                                      + f["random_seconds"] for f in folds])),  # fmt: skip
        }
        for name, folds in by_name.items()
    }
    synthetic = [n for n in per if n != "diabetes"]
    overall = (
        {k: float(np.mean([per[n][k] for n in synthetic])) for k in keys} if synthetic else {}
    )
    return {"per_dataset": per, "overall_synthetic": overall}


def compression_table(summary: dict[str, Any]) -> str:
    """Markdown table of NRMSE (teacher / ParaACE / random pairs) and compression ratio."""
    lines = [
        "| data | folds | NRMSE teacher | NRMSE ParaACE | NRMSE ParaACE (random pairs) "
        "| params teacher / ParaACE | CR | s per fold |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in summary["per_dataset"].items():
        lines.append(
            f"| {name} | {r['folds']} | {r['teacher_nrmse']:.4f} | {r['paraace_nrmse']:.4f} "
            f"| {r['random_nrmse']:.4f} | {r['teacher_params']:,} / {r['paraace_params']:,} "
            f"| {r['compression_ratio']:.0f} | {r['seconds']:.0f} |"
        )
    ov = summary["overall_synthetic"]
    if ov:
        lines.append(
            f"| **mean F1–F10** | | **{ov['teacher_nrmse']:.4f}** | **{ov['paraace_nrmse']:.4f}** "
            f"| **{ov['random_nrmse']:.4f}** | | {ov['compression_ratio']:.0f} | |"
        )
    return "\n".join(lines)
