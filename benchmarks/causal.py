"""Causal explanation-vs-prediction study: summaries of finished study runs.

The study itself is the CLI (resumable; the zoo is the expensive part):

    OMP_NUM_THREADS=1 simshap study causal causal_fmnist --out runs/causal
    OMP_NUM_THREADS=1 simshap study causal causal_digits --out runs/causal_digits

This script reads each run's ``results.json`` and writes ``benchmarks/results/causal_<data>.json``
(zoo size and accuracy percentiles against the paper's Table 2, cost, correlation tables with
intervals, the paper's claims checked, Shapley against gradient saliency) and this benchmark's
section of ``benchmarks/RESULTS.md``, with ``causal_epochs.json`` (how the epochs were chosen)
and ``causal_throughput.json`` (batched trainer against the one-model loops) when present.

    python benchmarks/causal.py fashion_mnist=runs/causal digits=runs/causal_digits
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
from causal_claims import (
    accuracy_percentiles,
    paper_claims,
    shapley_vs_gradient,
    table2_check,
)
from causal_tables import markdown

from simshap.studies.causal.plots import FIGURES

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTION = "## Causal study on a CNN zoo"
CONFIGS = {
    "digits": "simshap/runs/configs/causal_digits.yaml",
    "fashion_mnist": "simshap/runs/configs/causal_fmnist.yaml",
}


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """Tables and checks of one run's results."""
    pct = accuracy_percentiles(res["accuracy"])
    corr = {
        b["name"]: {
            m: {
                k: b["corr"][m][k]
                for k in ("total_pearson", "total_spearman", "direct_pearson", "mediated_pearson")
            }
            for m in res["methods"]
        }
        for b in res["buckets"]
    }
    cfg = res["config"]
    cpu = res.get("train_chunk_cpu_seconds") or []
    cost = None
    if cpu:  # CPU time of the process that trained each chunk: the cost on a core of its own
        per_model = sum(cpu) / res["n_models_trained"]
        cost = {
            "cpu_seconds_per_model": per_model,
            "cpu_seconds_per_model_epoch": per_model / cfg["epochs"],
            "projected_minutes_1000_models_on_2_cores": 1000 * per_model / 2 / 60,
            "basis": "training + test scoring CPU seconds of the chunk processes (one thread "
            "each), summed, per model; projection = 1000 x that / 2 cores, assuming two "
            "one-thread workers on two otherwise idle cores scale linearly (not timed)",
        }
    sub = cfg.get("explain_subset") or {"per_bucket": None}
    whole = res.get("n_models_trained_this_call") == res["n_models_trained"]  # one timed call
    return {
        "n_models_trained": res["n_models_trained"],
        "n_models_explained": res["n_models_explained"],
        "n_models_requested": res["n_models_requested"],
        "epochs": cfg["epochs"],
        "batch_size": cfg["batch_size"],
        "n_train": cfg["n_train"],
        "n_val": cfg["n_val"],
        "workers": cfg["workers"],
        "model_seeds": cfg["model_seeds"],
        "train_chunk_seconds": res["train_chunk_seconds"],
        "train_chunk_cpu_seconds": res.get("train_chunk_cpu_seconds"),
        "train_cost": cost,
        "train_wall_minutes_whole_zoo": res["train_wall_seconds_this_call"] / 60 if whole else None,
        "explain_seconds_per_model": res["explain_seconds_per_model"],
        "explain_subset": sub if sub.get("per_bucket") is not None else None,
        "explained_models": res.get("explained_models", "all"),
        "shapley_game_evaluations": res["shapley_game_evaluations"],
        "accuracy": pct,
        "table2": table2_check(pct) if res["config"]["dataset"] == "fashion_mnist" else None,
        "buckets": [
            {"name": b["name"], "n_models": b["n_models"], "accuracy_range": b["accuracy_range"]}
            for b in res["buckets"]
        ],
        "methods": res["methods"],
        "n_bootstrap": res["n_bootstrap"],
        "ci": res["ci"],
        "corr": corr,
        "paper_claims": paper_claims(res),
        "shapley_minus_gradient": shapley_vs_gradient(res),
    }


def exact_check(folder: str, n_models: int, n_images: int) -> dict[str, Any]:
    """KernelSHAP at the study's budget against exact Shapley values (all 2^16 coalitions).

    Uses the first ``n_models`` models of the stored zoo and the first ``n_images`` explained
    images; reports the relative l2 error over (patches, classes) and the Pearson correlation of
    the preprocessed maps of the predicted class.
    """
    import torch

    from simshap.studies.causal.chunks import load_zoo
    from simshap.studies.causal.explanations import clip_and_normalize, shapley_patches
    from simshap.studies.causal.workers import load_config_data

    cfg = json.loads((Path(folder) / "results.json").read_text())["config"]
    data = load_config_data(cfg)
    zoo = load_zoo(Path(folder) / "zoo", cfg["grid"], cfg["stride"], n_models)
    ids = list(range(len(zoo)))
    params, acts = zoo.group(ids), zoo.activations(ids)
    x = data.x_explain[:n_images]
    g, budget = cfg["explanations"]["shapley_grid"], cfg["explanations"]["shapley_samples"] + 2
    t0 = time.perf_counter()
    exact, n_exact = shapley_patches(params, acts, cfg["stride"], x, g, 2 ** (g * g))
    secs = time.perf_counter() - t0
    approx, n_evals = shapley_patches(params, acts, cfg["stride"], x, g, budget, int(cfg["seed"]))
    scale = exact.flatten(2).norm(dim=2).clamp_min(1e-12)
    rel = ((approx - exact).flatten(2).norm(dim=2) / scale).flatten()
    cor = []
    for m in ids:
        with torch.no_grad():
            pred = zoo.model(m)(x).argmax(-1)
        rows = torch.arange(len(x))
        a = clip_and_normalize(approx[m][rows, :, pred].float(), True)
        e = clip_and_normalize(exact[m][rows, :, pred].float(), True)
        for i in range(len(x)):
            u, v = a[i] - a[i].mean(), e[i] - e[i].mean()
            den = float(u.norm() * v.norm())
            if den > 0:
                cor.append(float((u * v).sum()) / den)
    return {
        "n_models": len(ids),
        "n_images": n_images,
        "budget_evals": n_evals,
        "exact_evals": n_exact,
        "exact_seconds_per_image": secs / (len(ids) * n_images),
        "relative_l2_error_mean": float(rel.mean()),
        "relative_l2_error_max": float(rel.max()),
        "preprocessed_map_corr_mean": float(np.mean(cor)) if cor else float("nan"),
    }


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


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
    ap.add_argument(
        "--conditions",
        default="",
        help="how the runs were made (machine load, wall times), for RESULTS.md",
    )
    args = ap.parse_args()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mach = machine()
    parts = [
        SECTION,
        "",
        f"- summary written: {when}; machine: {mach['cpu']} ({mach['cpus']} CPUs, shared with "
        f"other work), {mach['platform']}, Python {mach['python']}, torch {mach['torch']}",
        "- estimand: kernelized Eq. (4), RBF MMD² (median-heuristic bandwidth per image and "
        "bucket) between models with h_i = n and h_i ≠ n (control values weighted equally) within "
        "an accuracy bucket (within-bucket control groups); corr pools all (hyperparameter value, "
        "image) pairs of a bucket; 100 fixed test images",
        "- summary: `python benchmarks/causal.py " + " ".join(args.runs) + "`",
    ]
    if args.conditions:
        parts.append(f"- conditions: {args.conditions}")
    parts.append("")
    epochs, throughput = _load("causal_epochs.json"), _load("causal_throughput.json")
    for pair in args.runs:
        name, folder = pair.split("=", 1)
        res = json.loads((Path(folder) / "results.json").read_text())
        s = summarize(res)
        s.update(date=when, machine=mach, run_folder=folder)
        if args.exact_check and pair == args.runs[0]:
            s["shapley_exact_check"] = exact_check(folder, *args.exact_check)
        figs = []
        for fig in FIGURES:
            src = Path(folder) / f"{fig}.png"
            if src.is_file():
                shutil.copyfile(src, RESULTS / f"causal_{name}_{fig}.png")
                figs.append(f"`benchmarks/results/causal_{name}_{fig}.png`")
        s["figures"] = figs
        tmp = RESULTS / f"causal_{name}.json.tmp"
        tmp.write_text(json.dumps(s, indent=1))
        tmp.replace(RESULTS / f"causal_{name}.json")
        command = f"OMP_NUM_THREADS=1 simshap study causal {CONFIGS.get(name, '?')} --out {folder}"
        fm = name == "fashion_mnist"
        report = (name, s, command, epochs if fm else None, throughput if fm else None)
        full = RESULTS / f"causal_{name}.md"
        full.with_suffix(".md.tmp").write_text(markdown(*report) + "\n")
        full.with_suffix(".md.tmp").replace(full)
        parts += [
            markdown(*report, full=False),
            "",
            "- every table (the paper's findings, Spearman, direct effects, Shapley minus "
            f"method per bucket): `benchmarks/results/causal_{name}.md`",
            "",
        ]
    write_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, "\n".join(parts))


if __name__ == "__main__":
    main()
