"""Aggregates of detection and compression records, and their Markdown tables."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from simshap.studies.paraace.synthetic import FUNCTIONS

__all__ = [
    "comparison_table",
    "compression_table",
    "detection_table",
    "in_order",
    "summarize_compression",
    "summarize_detection",
    "teacher_description",
    "triples_text",
]

METHODS = ("ucb", "ucb_code_width", "ucb_sigma_range", "ucb_sigma_max", "naive", "exact", "nid")
_LABELS = {
    "ucb": "UCB (ours)",
    "ucb_code_width": "UCB δ=2/√n",
    "ucb_sigma_range": "UCB σ running",
    "ucb_sigma_max": "UCB σ=max",
    "naive": "naive m·n",
    "exact": "exact STII",
    "nid": "NID",
}
# the UCB ablations: their record key, the summary key of their pulls and its column label
_ABLATIONS = (
    ("ucb_code_width", "pulls_code_width", "pulls δ=2/√n"),
    ("ucb_sigma_range", "pulls_sigma_range", "pulls σ running"),
    ("ucb_sigma_max", "pulls_sigma_max", "pulls σ=max"),
)


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
        for method, key, _ in _ABLATIONS:
            if method in recs[0]:
                row[key] = _mean_std([r[method]["pulls"] for r in recs])
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
        overall["auc"] = {
            m: float(np.mean([per[n]["auc"][m]["mean"] for n in synthetic])) for m in methods
        }
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
    for _, key, _ in _ABLATIONS:
        if all(key in per[n] for n in per):
            overall[key] = float(np.mean([per[n][key]["mean"] for n in per]))
    return {"per_dataset": per, "overall": overall}


def detection_table(summary: dict[str, Any]) -> str:
    """Markdown table: AUC per function and method, pulls and UCB seconds."""
    per = summary["per_dataset"]
    methods = [m for m in METHODS if any(m in row.get("auc", {}) for row in per.values())]
    head = "| data | " + " | ".join(f"AUC {_LABELS[m]}" for m in methods)
    extra = [(key, label) for method, key, label in _ABLATIONS if method in methods]
    lines = [
        head + " | pulls (UCB / naive) |" + "".join(f" {lab} |" for _, lab in extra) + " UCB s |",
        "| --- " * (len(methods) + 3 + len(extra)) + "|",
    ]
    for name, row in per.items():
        cells = [
            f"{row['auc'][m]['mean']:.3f} ± {row['auc'][m]['std']:.3f}" if "auc" in row else "–"
            for m in methods
        ]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {row['pulls']['mean']:.0f} / {row['naive_pulls']} "
            + "".join(f"| {row[key]['mean']:.0f} " for key, _ in extra)
            + f"| {row['ucb_seconds']['mean']:.2f} |"
        )
    ov = summary["overall"]
    if "auc" in ov:
        cells = [f"**{ov['auc'][m]:.3f}**" for m in methods]
        lines.append(
            "| **mean** | "
            + " | ".join(cells)
            + f" | {ov['pulls']:.0f} / {ov['naive_pulls']:.0f} ({100 * ov['pull_fraction']:.0f}%)"
            + "".join(f" | {ov[key]:.0f}" for key, _ in extra)
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
            "seconds": float(
                np.mean(
                    [
                        f["teacher_seconds"] + f["paraace_seconds"] + f["random_seconds"]
                        for f in folds
                    ]
                )
            ),
        }
        for name, folds in by_name.items()
    }
    synthetic = [n for n in per if n != "diabetes"]
    overall = {k: float(np.mean([per[n][k] for n in synthetic])) for k in keys} if synthetic else {}
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


def comparison_table(
    a: dict[str, Any],
    b: dict[str, Any],
    label_a: str,
    label_b: str,
    methods: tuple[str, ...] = ("ucb", "naive", "exact"),
    a_methods: tuple[str, ...] | None = None,
) -> str:
    """Markdown table of mean AUCs per function of two detection summaries, side by side.

    Args:
        a: the first summary (:func:`summarize_detection`).
        b: the second summary.
        label_a: column suffix of ``a``.
        label_b: column suffix of ``b``.
        methods: the methods of ``b`` to show.
        a_methods: the method of ``a`` beside each of ``methods`` (default: the same ones),
            e.g. an ablation of ``a`` that matches the settings of ``b``'s main method. Each
            pair of columns is labelled by ``a``'s method.
    """
    a_methods = methods if a_methods is None else a_methods
    pairs = list(zip(a_methods, methods, strict=True))
    head = " | ".join(f"{_LABELS[ma]} {lab}" for ma, _ in pairs for lab in (label_a, label_b))
    rows = [f"| data | {head} |", "| --- " * (2 * len(methods) + 1) + "|"]
    for name, row in b["per_dataset"].items():
        x, y = a["per_dataset"][name]["auc"], row["auc"]
        cells = " | ".join(f"{x[ma]['mean']:.3f} | {y[mb]['mean']:.3f}" for ma, mb in pairs)
        rows.append(f"| {name} | {cells} |")
    x, y = a["overall"]["auc"], b["overall"]["auc"]
    cells = " | ".join(f"**{x[ma]:.3f}** | **{y[mb]:.3f}**" for ma, mb in pairs)
    rows.append(f"| **mean** | {cells} |")
    return "\n".join(rows)


def teacher_description(res: dict[str, Any]) -> str:
    """One phrase describing a benchmark run's detection teacher and how it was trained.

    Args:
        res: a ``benchmarks/paraace.py`` result with ``config``, ``teacher_params`` and
            ``paper_teacher_params``.
    """
    cfg = res["config"]
    sched = cfg.get("teacher_lr_schedule", "constant")
    patience = cfg.get("teacher_patience") or cfg["patience"]
    return (
        f"ReLU MLP 10-{'-'.join(map(str, cfg['teacher_hidden']))}-1 (last hidden layer linear, "
        f"{res['teacher_params']:,} parameters; the paper's 10-5000-900-400-100-30-1 has "
        f"{res['paper_teacher_params']:,}), Adam 1e-3"
        + (" with a per-step cosine schedule to 0" if sched == "cosine" else "")
        + f", batch 500, ≤ {cfg['teacher_epochs']} epochs (patience {patience}), weights of the "
        "best epoch on a 20% validation split of the training rows"
    )


def triples_text(records: list[dict[str, Any]]) -> str:
    """The triples Algorithm 2 found for seed 0 of every function (1-indexed features)."""
    parts = []
    for rec in records:
        if rec["seed"] != 0 or not rec.get("triples"):
            continue
        found = rec["triples"][0]["detected"]
        parts.append(
            f"{rec['dataset']}: "
            + ", ".join("{" + ",".join(str(i + 1) for i in t) + "}" for t in found)
        )
    return "; ".join(parts) + " (1-indexed features)."


def in_order(res: dict[str, Any]) -> dict[str, Any]:
    """Sorts a run's detection records by function, then seed, and recomputes their summary.

    Parallel runs store records in the order they finish.
    """
    order = {name: i for i, name in enumerate([*FUNCTIONS, "diabetes"])}
    records = sorted(res["detection"]["records"], key=lambda r: (order[r["dataset"]], r["seed"]))
    res["detection"].update(records=records, summary=summarize_detection(records))
    return res
