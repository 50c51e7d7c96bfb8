"""Causal explanation-vs-prediction study (issue 15): summary tables of finished study runs.

The study itself is the CLI (resumable; the zoo is the expensive part):

    OMP_NUM_THREADS=1 simshap study causal configs/causal_digits.yaml --out runs/causal_digits
    OMP_NUM_THREADS=1 simshap study causal configs/causal_fmnist.yaml --out runs/causal

This script reads each run's ``results.json`` and writes ``benchmarks/results/causal_<data>.json``
(zoo size, cost per model, correlation tables with bootstrap CIs, direct vs total, the checks of
the paper's findings) and this benchmark's section of ``benchmarks/RESULTS.md``.

    python benchmarks/causal.py digits=runs/causal_digits fashion_mnist=runs/causal
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine, write_section  # benchmarks/_report.py

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Do explanations follow predictions? Causal study on a CNN zoo (issue 15)"
GRADIENT = ("gradient", "smoothgrad", "integrated_gradients", "gradcam")
LABEL = {
    "identity": "Identity",
    "gradient": "Grad",
    "smoothgrad": "SG",
    "integrated_gradients": "IG",
    "gradcam": "Grad-CAM",
    "shapley": "Shapley",
}
CONFIGS = {
    "digits": "simshap/runs/configs/causal_digits.yaml",
    "fashion_mnist": "simshap/runs/configs/causal_fmnist.yaml",
}


def _ci(point: float, draws: list[float], level: float) -> list[float]:
    """Half-sampling interval of a difference of correlations, centered on the point estimate."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if not len(d):
        return [float("nan"), float("nan")]
    a, med = (1 - level) / 2, float(np.median(d))
    return [float(point + np.quantile(d, a) - med), float(point + np.quantile(d, 1 - a) - med)]


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Tables and checks of one run's results."""
    level = res["ci"]
    methods = res["methods"]
    buckets = res["buckets"]
    corr: dict[str, dict[str, Any]] = {}
    for b in buckets:
        corr[b["name"]] = {
            m: {
                k: b["corr"][m][k]
                for k in ("total_pearson", "total_spearman", "direct_pearson", "mediated_pearson")
            }
            for m in methods
        }
    # finding 1: gradient methods' |Pearson| at most about 0.5
    cells = [
        (b["name"], m, b["corr"][m]["total_pearson"])
        for b in buckets
        for m in GRADIENT
        if m in methods
    ]
    f1 = {
        "cells": len(cells),
        "abs_le_0.5": sum(abs(c["value"]) <= 0.5 for _, _, c in cells),
        "ci_entirely_above_0.5": [f"{n}/{m}" for n, m, c in cells if c["ci"][0] > 0.5],
        "max_abs": max(abs(c["value"]) for _, _, c in cells) if cells else None,
    }
    # finding 2: the gap to the identity (1 - corr) widens in the top buckets; paired bootstrap
    # difference of corr between the top 10% and the 0-80% quintiles (negative = wider gap)
    names = [b["name"] for b in buckets]
    low = [b for b in buckets if b["bounds"][1] <= 80]
    top = next((b for b in buckets if b["bounds"] == [90, 100]), None)
    f2: dict[str, Any] = {}
    if top is not None and low:
        for m in methods:
            if m == "identity":
                continue
            # different buckets hold different models: independent resamples, so the draws of
            # the difference pair the r-th draw of each
            top_d = np.asarray(top["bootstrap_draws"][m]["total_pearson"])
            low_d = np.mean([b["bootstrap_draws"][m]["total_pearson"] for b in low], axis=0)
            point = top["corr"][m]["total_pearson"]["value"] - float(
                np.mean([b["corr"][m]["total_pearson"]["value"] for b in low])
            )
            f2[m] = {"top10_minus_lower_mean": point, "ci": _ci(point, list(top_d - low_d), level)}
    # ours: Shapley against the gradient methods, paired within each bucket
    f3: dict[str, Any] = {}
    if "shapley" in methods:
        for b in buckets:
            sh = np.asarray(b["bootstrap_draws"]["shapley"]["total_pearson"])
            row = {}
            for m in GRADIENT:
                if m in methods:
                    other = np.asarray(b["bootstrap_draws"][m]["total_pearson"])
                    diff = (
                        b["corr"]["shapley"]["total_pearson"]["value"]
                        - b["corr"][m]["total_pearson"]["value"]
                    )
                    row[m] = {"diff": diff, "ci": _ci(diff, list(sh - other), level)}
            f3[b["name"]] = row
    # the paper's Fig. 4 (third column): Identity's mediated part minus the method's, paired
    # within a bucket (every method shares the bucket's resamples)
    f4: dict[str, Any] = {}
    for b in buckets:
        ident = np.asarray(b["bootstrap_draws"]["identity"]["mediated_pearson"])
        row = {}
        for m in methods:
            if m == "identity":
                continue
            gap = (
                b["corr"]["identity"]["mediated_pearson"]["value"]
                - b["corr"][m]["mediated_pearson"]["value"]
            )
            other = np.asarray(b["bootstrap_draws"][m]["mediated_pearson"])
            row[m] = {"gap": gap, "ci": _ci(gap, list(ident - other), level)}
        f4[b["name"]] = row
    return {
        "n_models_trained": res["n_models_trained"],
        "n_models_requested": res["n_models_requested"],
        "train_seconds_per_model": res["train_seconds_per_model"],
        "explain_seconds_per_model": res["explain_seconds_per_model"],
        "shapley_game_evaluations": res["shapley_game_evaluations"],
        "accuracy": {
            "min": min(res["accuracy"]),
            "median": float(np.median(res["accuracy"])),
            "max": max(res["accuracy"]),
        },
        "buckets": [
            {"name": b["name"], "n_models": b["n_models"], "accuracy_range": b["accuracy_range"]}
            for b in buckets
        ],
        "bucket_names": names,
        "methods": methods,
        "n_bootstrap": res["n_bootstrap"],
        "ci": level,
        "corr": corr,
        "finding_gradient_abs_le_0.5": f1,
        "finding_top_bucket_change": f2,
        "shapley_minus_gradient": f3,
        "mediated_gap_to_identity": f4,
    }


def _cell(stat: dict[str, Any]) -> str:
    lo, hi = stat["ci"]
    return f"{stat['value']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def markdown(name: str, s: dict[str, Any], command: str) -> str:
    """One data set's part of the RESULTS.md section."""
    m = s["methods"]
    head = "| bucket (models, acc.) | " + " | ".join(LABEL.get(x, x) for x in m) + " |"
    sep = "| --- " * (len(m) + 1) + "|"
    lines = [
        f"### {name}",
        "",
        f"- command: `{command}`",
        "- figures (Figs. 2, 3, 4 analogues): " + ", ".join(s.get("figures", [])),
        f"- zoo: {s['n_models_trained']} of {s['n_models_requested']} models trained; "
        f"{s['train_seconds_per_model']:.1f} s training + {s['explain_seconds_per_model']:.1f} s "
        "explaining (all methods, total + direct) per model; test accuracy "
        f"{s['accuracy']['min']:.3f} / {s['accuracy']['median']:.3f} / {s['accuracy']['max']:.3f} "
        "(min / median / max)",
        f"- Shapley: KernelSHAP on the 4x4-patch baseline game, {s['shapley_game_evaluations']} "
        "game evaluations per image (incl. ∅ and N)",
        f"- intervals: {int(100 * s['ci'])}% half-sampling intervals: {s['n_bootstrap']} random "
        "halves of each bucket's models (no duplicates), spread centered on the estimate",
        "",
        "Pearson corr(ITE_Y, ITE_E), total effect:",
        "",
        head,
        sep,
    ]
    for b in s["buckets"]:
        lo, hi = b["accuracy_range"]
        row = [f"{b['name']} ({b['n_models']}, {lo:.2f}-{hi:.2f})"]
        row += [_cell(s["corr"][b["name"]][x]["total_pearson"]) for x in m]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Spearman corr(ITE_Y, ITE_E), total effect:", "", head, sep]
    for b in s["buckets"]:
        row = [b["name"]] + [_cell(s["corr"][b["name"]][x]["total_spearman"]) for x in m]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Direct effect (explained target permuted across models) — Pearson; and "
        "total − direct (mediated through Y):",
        "",
        head,
        sep,
    ]
    for b in s["buckets"]:
        row = [b["name"]] + [
            f"{s['corr'][b['name']][x]['direct_pearson']['value']:+.2f}; "
            f"{_cell(s['corr'][b['name']][x]['mediated_pearson'])}"
            for x in m
        ]
        lines.append("| " + " | ".join(row) + " |")
    others = [x for x in m if x != "identity"]
    lines += [
        "",
        "Identity's mediated part minus the method's (the paper's Fig. 4, right; "
        "larger = further from the ideal):",
        "",
        "| bucket | " + " | ".join(LABEL.get(x, x) for x in others) + " |",
        "| --- " * len(m) + "|",
    ]
    for b in s["buckets"]:
        gaps = s["mediated_gap_to_identity"][b["name"]]
        lines.append(
            "| "
            + " | ".join(
                [b["name"]]
                + [_cell({"value": gaps[x]["gap"], "ci": gaps[x]["ci"]}) for x in others]
            )
            + " |"
        )
    if "shapley_exact_check" in s:
        ec = s["shapley_exact_check"]
        lines += [
            "",
            f"- Shapley budget check: KernelSHAP at {ec['budget_evals']} evaluations vs "
            f"exact ({ec['exact_evals']}) on {ec['n_models']} models x {ec['n_images']} "
            f"images: relative l2 error {ec['relative_l2_error_mean']:.3f} mean, "
            f"{ec['relative_l2_error_max']:.3f} max; preprocessed maps correlate "
            f"{ec['preprocessed_map_corr_mean']:.3f} with the exact ones; exact costs "
            f"{ec['exact_seconds_per_image']:.1f} s per image",
        ]
    f1 = s["finding_gradient_abs_le_0.5"]
    lines += [
        "",
        f"- gradient methods (Grad, SG, IG, Grad-CAM): |Pearson| <= 0.5 in {f1['abs_le_0.5']} of "
        f"{f1['cells']} bucket/method cells (max |r| = {f1['max_abs']:.2f}); cells whose whole CI "
        f"lies above 0.5: {', '.join(f1['ci_entirely_above_0.5']) or 'none'}",
    ]
    if s["finding_top_bucket_change"]:
        parts = [
            f"{LABEL.get(k, k)} {_cell({'value': v['top10_minus_lower_mean'], 'ci': v['ci']})}"
            for k, v in s["finding_top_bucket_change"].items()
        ]
        lines.append(
            "- Pearson in the top 10% minus the mean over the 0-80% quintiles "
            "(negative = wider gap to Identity among the best models): " + "; ".join(parts)
        )
    if s["shapley_minus_gradient"]:
        wins = [
            (b, g)
            for b, row in s["shapley_minus_gradient"].items()
            for g, v in row.items()
            if v["ci"][0] > 0
        ]
        losses = [
            (b, g)
            for b, row in s["shapley_minus_gradient"].items()
            for g, v in row.items()
            if v["ci"][1] < 0
        ]
        total = sum(len(r) for r in s["shapley_minus_gradient"].values())
        lines.append(
            f"- Shapley minus gradient-method Pearson (paired half-samples): CI above 0 in "
            f"{len(wins)} of {total} bucket/method pairs, below 0 in {len(losses)}"
        )
    return "\n".join(lines)


def exact_check(folder: str, n_models: int, n_images: int) -> dict[str, Any]:
    """KernelSHAP at the study's budget against exact Shapley values (all 2^16 coalitions).

    Uses the first ``n_models`` models of the stored zoo and the first ``n_images`` explained
    images; reports the relative l2 error over (patches, classes) and the Pearson correlation of
    the preprocessed maps of the predicted class.
    """
    import torch

    from simshap.studies.causal.data import load_study_data
    from simshap.studies.causal.explanations import clip_and_normalize, shapley_patches
    from simshap.studies.causal.zoo import load_zoo

    cfg = json.loads((Path(folder) / "results.json").read_text())["config"]
    data = load_study_data(
        cfg["dataset"],
        cfg["n_train"],
        cfg["n_test"],
        cfg["n_explain"],
        cfg["seed"],
        cfg["data_dir"],
    )
    zoo = load_zoo(Path(folder) / "zoo", cfg["grid"], cfg["stride"], n_models)
    x = data.x_explain[:n_images]
    g, budget = cfg["explanations"]["shapley_grid"], cfg["explanations"]["shapley_samples"]
    rel, cor, secs = [], [], []
    for k in range(len(zoo)):
        model = zoo.model(k)
        t0 = time.perf_counter()
        exact, n_exact = shapley_patches(model, x, g, 2 ** (g * g) - 2, seed=0)
        secs.append(time.perf_counter() - t0)
        approx, n_evals = shapley_patches(model, x, g, budget, seed=0)
        scale = exact.flatten(1).norm(dim=1).clamp_min(1e-12)
        err = (approx - exact).flatten(1).norm(dim=1) / scale
        rel += err.tolist()
        with torch.no_grad():
            pred = model(x).argmax(-1)
        rows = torch.arange(len(x))
        a = clip_and_normalize(approx[rows, :, pred].float(), True)
        e = clip_and_normalize(exact[rows, :, pred].float(), True)
        for i in range(len(x)):
            u, v = a[i] - a[i].mean(), e[i] - e[i].mean()
            den = float(u.norm() * v.norm())
            if den > 0:
                cor.append(float((u * v).sum()) / den)
    return {
        "n_models": len(zoo),
        "n_images": n_images,
        "budget_evals": n_evals,
        "exact_evals": n_exact,
        "exact_seconds_per_image": sum(secs) / (len(zoo) * n_images),
        "relative_l2_error_mean": float(np.mean(rel)),
        "relative_l2_error_max": float(np.max(rel)),
        "preprocessed_map_corr_mean": float(np.mean(cor)) if cor else float("nan"),
    }


def main() -> None:  # noqa: D103
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="NAME=RUN_FOLDER pairs (NAME: digits, fashion_mnist)")
    ap.add_argument(
        "--exact-check",
        type=int,
        nargs=2,
        metavar=("MODELS", "IMAGES"),
        help="compare the Shapley budget with exact values on the first run's zoo",
    )
    args = ap.parse_args()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mach = machine()
    parts = [
        SECTION,
        "",
        f"- date: {when}",
        f"- machine: {mach['cpu']} ({mach['cpus']} CPUs, shared), {mach['platform']}, Python "
        f"{mach['python']}, torch {mach['torch']} (OMP_NUM_THREADS={mach['OMP_NUM_THREADS']})",
        "- estimand: kernelized Eq. (4), RBF MMD² (median-heuristic bandwidth per image and "
        "bucket) between models with h_i = n and h_i ≠ n (control values weighted equally) within "
        "an accuracy bucket; corr pools all (hyperparameter value, image) pairs of a bucket; "
        "100 fixed test images",
        "- summary: `python benchmarks/causal.py " + " ".join(args.runs) + "`",
        "",
    ]
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for pair in args.runs:
        name, folder = pair.split("=", 1)
        res = json.loads((Path(folder) / "results.json").read_text())
        s = summarize(res)
        s.update(date=when, machine=mach, run_folder=folder)
        if args.exact_check and pair == args.runs[0]:
            s["shapley_exact_check"] = exact_check(folder, *args.exact_check)
        (out_dir / f"causal_{name}.json").write_text(json.dumps(s, indent=1))
        command = (
            f"OMP_NUM_THREADS=1 nice -n 10 simshap study causal {CONFIGS.get(name, '?')} "
            f"--out {folder}"
        )
        figs = []
        for fig in ("fig2_ite_scatter", "fig3_correlations", "fig4_direct_total"):
            src = Path(folder) / f"{fig}.png"
            if src.is_file():
                shutil.copyfile(src, out_dir / f"causal_{name}_{fig}.png")
                figs.append(f"`benchmarks/results/causal_{name}_{fig}.png`")
        s["figures"] = figs
        parts += [markdown(name, s, command), ""]
    write_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, "\n".join(parts))


if __name__ == "__main__":
    main()
