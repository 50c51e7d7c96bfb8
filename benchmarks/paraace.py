"""ParaACE (issue 14): UCB interaction detection on F1–F10 and ParaACE compression.

Detection: per function and seed, a ReLU teacher on n = 10,000 noisy rows, then Algorithm 1
(k = 20, h = 0.8, m = 100, 3 initial pulls, δ = 2/(n³m)), the naive m·n estimate, exact STII
of order 2 on the teacher's baseline game at the training mean, NID from the teacher's
weights, and triples by Algorithm 2. Compression: 1,000 rows, 5-fold CV, a teacher of at least
100× ParaACE's size, ParaACE on the top-20 detected pairs and on 20 random pairs (model
selection on a validation split of the training folds), on F1–F10 and on sklearn's diabetes.

Writes benchmarks/results/paraace.json, paraace_pulls.png, paraace_heatmaps.png and this
benchmark's section of benchmarks/RESULTS.md. The paper's protocol is the default:

    OMP_NUM_THREADS=1 python benchmarks/paraace.py              # 5 seeds, 5 folds
    OMP_NUM_THREADS=1 python benchmarks/paraace.py --quick      # 2 seeds, 1 of the 5 folds
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from _report import machine, write_section  # benchmarks/_report.py

from simshap.studies.paraace.experiments import (
    ParaACEConfig,
    run_compression,
    run_detection,
    run_detections,
)
from simshap.studies.paraace.paraace import paraace_num_parameters, teacher_num_parameters
from simshap.studies.paraace.plots import plot_heatmaps, plot_pulls
from simshap.studies.paraace.summary import (
    comparison_table,
    compression_table,
    detection_table,
    in_order,
    summarize_compression,
    summarize_detection,
    teacher_description,
    triples_text,
)
from simshap.studies.paraace.synthetic import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTION = "## ParaACE: interaction detection and compression"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5, help="detection seeds (paper: 5)")
    p.add_argument(
        "--folds",
        type=int,
        default=None,
        help="compression folds to run out of the 5-fold split (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="--seeds 2 --folds 1 and at most 120 epochs for the compression teacher",
    )
    p.add_argument("--functions", nargs="*", default=list(FUNCTIONS))
    p.add_argument(
        "--first-fold",
        type=int,
        default=0,
        help="compression: start at this fold and add the folds to those in --out",
    )
    p.add_argument("--compress-teacher-epochs", type=int, default=None)
    p.add_argument(
        "--skip-detect",
        action="store_true",
        help="compression only; keeps the detection results already in --out",
    )
    p.add_argument(
        "--skip-compress",
        action="store_true",
        help="detection only; keeps the compression results already in --out",
    )
    p.add_argument(
        "--ablation",
        action="store_true",
        help="also run UCB with δ = 2/sqrt(n) (the authors' code's narrower width)",
    )
    p.add_argument(
        "--range-ablation",
        action="store_true",
        help="also run UCB with σ_r re-estimated after every pull (half the running "
        "range of the arm's rewards; the default before 2026-11-23 04:40 UTC)",
    )
    p.add_argument(
        "--sigma-ablation",
        action="store_true",
        help="also run UCB with one σ = max_r σ̂_r for all arms (Eq. 2's single σ)",
    )
    p.add_argument(
        "--accelerator",
        choices=["cpu", "gpu"],
        default="cpu",
        help="train and query the detection teachers on this device",
    )
    p.add_argument(
        "--teacher-hidden",
        type=int,
        nargs="+",
        default=None,
        help="hidden widths of the detection teacher (default: the config's)",
    )
    p.add_argument("--teacher-epochs", type=int, default=None)
    p.add_argument("--teacher-patience", type=int, default=None)
    p.add_argument(
        "--lr-schedule",
        choices=["constant", "cosine"],
        default="constant",
        help="detection teacher's learning-rate schedule",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="detection runs in parallel processes (spawned; for a GPU machine)",
    )
    p.add_argument(
        "--gpu-results",
        type=Path,
        default=RESULTS / "paraace_gpu.json",
        help="a detection run on a GPU whose table the section shows too",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite the RESULTS.md section and figures from --out, run nothing",
    )
    p.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    p.add_argument("--out", type=Path, default=RESULTS / "paraace.json")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.folds = 2, 1
    return args


NOTES = """Notes. Formulas and inputs, checked term by term against Table 4 (2026-11-23 04:30
UTC): all ten match, with inputs U(-1, 1) except F1's (Sorokina et al.: x4, x5, x8, x10 ~
U(0.6, 1), the rest U(0, 1)) and noise 0.1·N(0, 1). As the issue mandates, F2 takes
sqrt(|x7|/(1+|x8|)) (the printed root of x7/(1+|x8|) is not real for x7 < 0 on U(-1, 1)) and
F3/F4 the term -(x3²)^|x4| (the authors' repository has -x3²·|x4|). The repository's F2 also
reads x9/1 + |x10| where the paper prints x9/(1+|x10|) (operator precedence), which makes x9
and x10 additive inside their factor, so its {9,10} pair has zero strength; we follow the
paper. A test derives every ground-truth set from the noiseless formulas (exact float64 finite
differences, h = 0.05, interior points) and finds the issue's table: every listed pair nonzero,
every other pair zero. Several true pairs are nonetheless weak on the stated domains. Mean
strengths of the noiseless functions at the benchmark's step (h = 0.8 on standardized
features, 20,000 points): F2 {8,10} 9e-5, {7,8} 3e-4, {7,10} 1.0e-3, {8,9} 1.2e-3, {9,10}
4.4e-3, against 0.45 for {1,2}; F7's ten pairs inside {4,5,6,7,8} about 5e-4 (the paper's own
F7 AUC is 0.714); F9's {1,3}, {1,4}, {2,3}, {2,4} 1.4e-3; F5's {1,2}, {1,3}, {2,3} 3.7e-3; F6's
{8,9}, {8,10}, {9,10} 5e-3. The teacher's spurious strengths on null pairs are about
0.003-0.01 (naive estimate, F3 seed 0), so these true pairs rank among the null pairs for
every detector, exact STII included: that, not a departure in F2's formula or inputs, holds F2
near 0.8 (5 of its 11 true pairs are at or below the null level). Exact STII is computed on
100 training rows (1,024 coalitions each) with the training mean as baseline; |STII| averaged
over rows is its pair score.

Algorithm 1, checked line by line again (2026-11-23 04:40 UTC). As printed: 3 initial pulls
per arm (line 1; §5.2), k = 20, m = 100, δ = 2/(n³m) with n = 45 arms (supplement C), the
width sqrt(2σ² log(2/δ)/ℓ) (Eq. 2), the pick of the arm of S with the highest UCB (line 5),
one pull of it while it has fewer than m (lines 6-7), the test of that arm alone against every
other UCB in S (line 11; fixed in commit 49a6e27), the stop at |B| = k (line 14) and the final
means as scores (§5.2). Two departures were fixed in this run. (1) Eq. (2) keeps the width for
ℓ ≤ m (0 only for ℓ > m), and line 9 sets C_r = 0 when an arm with m pulls is picked again; we
zeroed the width at the m-th pull itself. Now the arm keeps C(m) until line 9 zeroes it, in an
iteration without a pull. On 20 cached small teachers (F1–F10, seeds 0-1) the pulls and AUCs
were identical. (2) The paper's σ_r are "pre-defined parameters" (Assumption 2) and Eq. (2)'s
C(ℓ) depends on ℓ alone; we re-estimated σ_r after every pull as half the range of all the
arm's rewards, so a pull that drew a new extreme widened the interval. Now σ_r is half the
range of the arm's 3 initial rewards (the rewards of line 1's initial interval), then fixed
(`sigma: init_range`); the earlier rule is the `--range-ablation` column. On those 20 teachers
this moved the pulls from 3689 to 3088 (82% to 69%) and the UCB AUC from 0.865 to 0.858. One
departure remains by choice: Eq. (2) uses one σ = max_r σ_r; ours is per arm. The single σ
(`--sigma-ablation`) costs nearly all of the naive pulls (4483 of 4500 in the run of
2026-11-23 with the 81,217-parameter teacher, "Tried" (a) above)."""


def why_text(res: dict) -> str:
    """Why UCB spends most of the naive pulls: the pull profile of F3 and F6 (seed 0)."""
    cfg, per = res["config"], res["detection"]["summary"]["per_dataset"]
    by = {(r["dataset"], r["seed"]): r for r in res["detection"]["records"]}
    counts = []
    for name in ("F6", "F3"):
        rec = by.get((name, 0))
        if rec:
            pulls = rec["ucb"]["pulls_per_pair"]
            at_m = sum(v >= cfg["m"] for v in pulls)
            at_init = sum(v == cfg["n_init"] for v in pulls)
            counts.append(
                f"{name}: {at_m} of the 45 arms reach m pulls, {at_init} stay at their "
                f"{cfg['n_init']} initial pulls"
            )
    fraction = np.mean([per[n]["pulls"]["mean"] / per[n]["naive_pulls"] for n in per])
    return (
        f"Why UCB needs ~{100 * fraction:.0f}% of the naive pulls here (paper: ~1500 of 4500). "
        "With log(2/δ) ≈ 16 the width at ℓ pulls is 5.7σ/√ℓ, and it only drops to 0 at m. The "
        "functions have 6-15 true pairs, so 5-14 of the k = 20 accepted arms are null pairs "
        "whose means (the teacher's spurious interactions, ~0.003-0.01) nearly coincide: no "
        "width separates them before m pulls (Theorem 3.2's min(σ² log(nm)/Δ², m) with Δ ≈ 0). "
        "Measured in this run (seed 0, small teacher): " + "; ".join(counts) + ". Those arms "
        "keep the mean of 3 draws as their score; the squared-difference rewards of kinked "
        "terms (|·|, max, log near 0) are heavy-tailed, so a true pair with three small draws "
        "ranks low: this is where UCB loses AUC against the naive estimate. In the compression "
        "table below, every fold detected its pairs with σ_r re-estimated after every pull "
        "(the rule before this run), fold 1 (2026-11-22) also before the line-11 fix of commit "
        "49a6e27."
    )


TRIED = """Tried, not kept. (a) A wider CPU teacher 10-512-128-64-32-1 (81,217 parameters) with
the cosine schedule and ≤ 80 epochs (patience 80), `--teacher-hidden 512 128 64 32
--teacher-epochs 80 --teacher-patience 80 --lr-schedule cosine --sigma-ablation`, 2026-11-23
on the same 2 shared cores, against the small-teacher run of 02:03 UTC that day (σ_r then
re-estimated after every pull): mean AUC UCB 0.871 (vs 0.868), naive 0.883 (vs 0.880), exact
STII 0.902 (vs 0.910), NID 0.675 (vs 0.676), pulls 3566 (79%), at twice the teacher time (15 s
vs 8 s per function and seed, 15.9 min in all). The gains are within the ± 0.01 seed spread, so
the default stays the small teacher; only the paper-size teacher (GPU, above) moved the naive
and UCB AUCs. In that run the σ = max ablation gave AUC 0.886 with 4483 of 4500 pulls (100%).
(b) Kaiming initialization: §5.1 says every network was "initialized with Kaiming's strategy",
while our teachers keep PyTorch's default Linear initialization. He-normal weights (fan-in,
ReLU gain) and zero biases on the small teacher, F1–F10 × seeds 0-1 (2026-11-23 04:40 UTC,
σ_r from the initial pulls): naive AUC 0.830 against 0.887, UCB 0.814 against 0.858, with the
best validation epochs at the 60-epoch cap. Not adopted for the thin CPU teacher; the
paper-size teacher was not retrained with it (no GPU was lent to this task)."""


def gpu_text(gpu: dict, cpu: dict) -> list[str]:
    """The paper-size-teacher run on a GPU, with a per-function comparison to the CPU run."""
    det, ov = gpu["detection"]["summary"], gpu["detection"]["summary"]["overall"]
    sigma = gpu["config"].get("sigma", "range")
    cpu_det = cpu["detection"]["summary"]
    # the GPU run's UCB beside the CPU run's UCB with the same σ rule
    same = "ucb" if cpu["config"].get("sigma") == sigma else f"ucb_sigma_{sigma}"
    if same not in cpu_det["overall"]["auc"]:
        same = "ucb"
    rows = comparison_table(
        cpu_det, det, "small", "paper-size", ("ucb", "naive", "exact"), (same, "naive", "exact")
    )
    earlier = (
        f" An earlier run than the CPU table above: its UCB used σ = {sigma!r} (σ_r re-estimated "
        "after every pull) and zeroed an arm's width at its m-th pull, before the two Algorithm 1 "
        "changes described in the notes below; naive m·n, exact STII and NID do not depend on "
        "them."
        if sigma != cpu["config"].get("sigma")
        else ""
    )
    epochs = sorted(r["teacher_best_epoch"] for r in gpu["detection"]["records"])
    return [
        "",
        f"**Paper-size teacher on a GPU** ({gpu['date']}, {gpu['machine']['device']}, "
        f"{gpu['machine']['cpus']} CPU cores; {gpu['seconds'] / 60:.1f} min for the 50 "
        f"detection runs, 14 processes sharing the GPU; run there as `PYTHONPATH=. timeout 400 "
        f"python3 …` with `--out $OUT/paraace_gpu.json`, which stopped it after the 50 runs, "
        f"before diabetes). Command: `{gpu['command']}`. Teacher: {teacher_description(gpu)} "
        f"(best epochs {epochs[0]}–{epochs[-1]}, median {epochs[len(epochs) // 2]}); same data, "
        f"seeds, k, h, m and δ as above.{earlier}",
        "",
        detection_table(det),
        "",
        "Per function, small CPU teacher (table above) against the paper-size teacher (the UCB "
        f"columns both with σ = {sigma!r}):",
        "",
        rows,
        "",
        f"With the paper-size teacher, mean UCB AUC {ov['auc']['ucb']:.3f} with "
        f"{100 * ov['pull_fraction']:.0f}% of the naive pulls: goal ≥ 0.945 with ≤ 50% "
        + ("met." if ov["auc"]["ucb"] >= 0.945 and ov["pull_fraction"] <= 0.5 else "**missed**")
        + f" (AUC short by {max(0.945 - ov['auc']['ucb'], 0):.3f}, pulls over by "
        f"{max(100 * ov['pull_fraction'] - 50, 0):.0f} points). Figures: "
        "`results/paraace_gpu_pulls.png`, `results/paraace_gpu_heatmaps.png`.",
    ]


def section(res: dict, command: str, gpu: dict | None = None) -> str:
    det, comp, cfg = res["detection"]["summary"], res.get("compression"), res["config"]
    ov = det["overall"]
    lines = [
        SECTION,
        "",
        f"{res['date']} · {res['machine']['cpu']} ({res['machine']['cpus']} cores shared with "
        f"other jobs, torch threads {res['machine']['torch_threads']}) · "
        f"total {res['seconds'] / 60:.1f} min",
        "",
        f"Command: `{command}`",
        "",
        f"**Detection** ({res['seeds']} seed(s) per function; the paper runs 5). Teacher: "
        f"{teacher_description(res)}, n = {cfg['n_train']:,}. UCB: k = {cfg['k']}, h = {cfg['h']}, "
        f"m = {cfg['m']}, {cfg['n_init']} initial pulls, δ = 2/(n³m), σ = {cfg['sigma']!r}. "
        f"ROC-AUC mean ± std over seeds:",
        "",
        detection_table(det),
        "",
        f"Mean UCB AUC {ov['auc']['ucb']:.3f} (± {ov['ucb_auc_seed_std']:.3f} over seeds; paper "
        f"0.945) with {100 * ov['pull_fraction']:.0f}% of the naive pulls (paper: ~1500/4500). "
        f"Goal ≥ 0.945 with ≤ 50%: "
        + ("met." if ov["auc"]["ucb"] >= 0.945 and ov["pull_fraction"] <= 0.5 else "**missed**.")
        + " Figures: `results/paraace_pulls.png`, `results/paraace_heatmaps.png`.",
    ]
    if "pulls_code_width" in ov:
        lines += [
            "",
            f"Ablation `--ablation`: with δ = 2/√n the width is sqrt(σ² log(n)/ℓ), the "
            "one the authors' released code uses (it sets δ = 1/n without the factor 2; its σ_r "
            "is also half the range of the 3 initial rewards); UCB then needs "
            f"{ov['pulls_code_width']:.0f} pulls "
            f"({100 * ov['pulls_code_width'] / ov['naive_pulls']:.0f}% of naive) at AUC "
            f"{ov['auc']['ucb_code_width']:.3f}.",
        ]
    if "pulls_sigma_range" in ov:
        lines += [
            "",
            f"Ablation `--range-ablation`: with σ_r re-estimated after every pull (half the range "
            "of all the arm's rewards so far, this benchmark's rule before 2026-11-23 04:40 UTC), "
            f"UCB needs {ov['pulls_sigma_range']:.0f} pulls "
            f"({100 * ov['pulls_sigma_range'] / ov['naive_pulls']:.0f}% of naive) at AUC "
            f"{ov['auc']['ucb_sigma_range']:.3f}.",
        ]
    if "pulls_sigma_max" in ov:
        lines += [
            "",
            f"Ablation `--sigma-ablation`: with Eq. (2)'s single σ = max_r σ̂_r (of the "
            f"initial pulls) for every arm, UCB needs {ov['pulls_sigma_max']:.0f} pulls "
            f"({100 * ov['pulls_sigma_max'] / ov['naive_pulls']:.0f}% of naive) at AUC "
            f"{ov['auc']['ucb_sigma_max']:.3f}.",
        ]
    per = det["per_dataset"]
    exact_s = [per[n]["exact_seconds"]["mean"] for n in per if "exact_seconds" in per[n]]
    teach_s = [per[n]["teacher_seconds"]["mean"] for n in per]
    lines += [
        "",
        f"Times per function and seed: UCB search {ov['ucb_seconds']:.1f} s, exact STII "
        f"{sum(exact_s) / max(len(exact_s), 1):.1f} s, teacher training "
        f"{sum(teach_s) / len(teach_s):.0f} s.",
    ]
    dia = res["detection"].get("diabetes")
    if dia:
        names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
        top = ", ".join(f"{names[i]}×{names[j]}" for i, j in dia["ucb"]["top_k"][:5])
        lines += [
            "",
            f"Diabetes (442 × 10, seed 0): the first five pairs UCB accepts are {top} "
            f"({dia['ucb']['pulls']} pulls of {dia['ucb']['naive_pulls']}).",
        ]
    if gpu:
        lines += gpu_text(gpu, res)
    lines += ["", TRIED, "", NOTES, "", why_text(res)]
    tri = res["detection"].get("triples")
    if tri:
        lines += ["", f"Triples (Algorithm 2, k(3) = {cfg['triples']}, seed 0): " + tri]
    if comp:
        ccfg = comp["records"][0].get("config", cfg)  # the compression run's own settings
        ov = comp["summary"]["overall_synthetic"]
        met = ov["paraace_nrmse"] <= ov["teacher_nrmse"] and ov["compression_ratio"] >= 100
        lines += [
            "",
            f"**Compression** ({res['folds_run']} of 5 folds per data set; the paper averages all "
            f"5). {ccfg['n_compress']:,} rows (diabetes: 442), top-{cfg['k']} detected pairs; "
            f"teacher 10-{'-'.join(map(str, ccfg['compress_teacher_hidden']))}-1, "
            f"≤ {ccfg['compress_teacher_epochs']} epochs; ParaACE with the 15-unit fix-up block "
            f"({res['paraace_params']:,} parameters), ≤ {ccfg['paraace_epochs']} × "
            f"{ccfg['paraace_passes']} passes; every model selected on a validation split of the "
            f"training folds, never on the test fold. NRMSE = RMSE/(y_max − y_min) on the test "
            f"fold (noisy targets):",
            "",
            compression_table(comp["summary"]),
            "",
            f"Goal: mean ParaACE NRMSE ≤ teacher's at CR ≥ 100: {'met' if met else '**missed**'} "
            f"(paper: 0.026 vs 0.038 at CR 283).",
        ]
        src, runs = res.get("compression_from"), []
        while src:
            cmd = src.get("command") or "OMP_NUM_THREADS=1 python benchmarks/paraace.py --quick"
            runs.append(f"the run of {src['date']}: `{cmd}` ({src['seconds'] / 60:.1f} min)")
            src = src.get("earlier")
        if runs:
            lines += ["", "(Compression results from " + "; earlier folds from ".join(runs) + ".)"]
    return "\n".join(lines)


def figures(res: dict, out: Path) -> None:
    """The pulls-vs-naive figure and the heat maps, next to ``out`` (``<stem>_pulls.png``)."""
    records = res["detection"]["records"]
    plot_pulls(res["detection"]["summary"], out.with_name(f"{out.stem}_pulls.png"))
    first = {r["dataset"]: r for r in reversed(records)}
    plot_heatmaps(dict(reversed(list(first.items()))), out.with_name(f"{out.stem}_heatmaps.png"))


def gpu_results(args: argparse.Namespace) -> dict | None:
    """The GPU run's results when they exist and are not the run being written."""
    path = args.gpu_results
    if path.resolve() == args.out.resolve() or not path.is_file():
        return None
    return in_order(json.loads(path.read_text()))


def report_only(args: argparse.Namespace) -> int:
    res = in_order(json.loads(args.out.read_text()))
    figures(res, args.out)
    quick = res["seeds"] == 2 and res["folds_run"] == 1
    default = "OMP_NUM_THREADS=1 python benchmarks/paraace.py" + (" --quick" if quick else "")
    text = section(res, res.get("command") or default, gpu_results(args))
    write_section(args.results_md, SECTION, text)
    print(text)
    return 0


def main() -> int:
    args = parse()
    if args.report_only:
        return report_only(args)
    torch.set_num_threads(1)
    start = time.perf_counter()
    cfg = ParaACEConfig(
        seeds=list(range(args.seeds)),
        run_folds=args.folds,
        code_width_ablation=args.ablation,
        sigma_max_ablation=args.sigma_ablation,
        sigma_range_ablation=args.range_ablation,
        accelerator=args.accelerator,
        teacher_lr_schedule=args.lr_schedule,
        teacher_patience=args.teacher_patience,
    )
    if args.teacher_hidden:
        cfg = replace(cfg, teacher_hidden=list(args.teacher_hidden))
    if args.teacher_epochs:
        cfg = replace(cfg, teacher_epochs=args.teacher_epochs)
    if args.quick:
        cfg = replace(cfg, compress_teacher_epochs=120)
    if args.compress_teacher_epochs:
        cfg = replace(cfg, compress_teacher_epochs=args.compress_teacher_epochs)
    cfg = replace(cfg, first_fold=args.first_fold)
    res: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "config": asdict(cfg),
        "seeds": args.seeds,
        "folds_run": args.folds or cfg.folds,
        "teacher_params": teacher_num_parameters(10, cfg.teacher_hidden),
        "paper_teacher_params": teacher_num_parameters(10),
        "paraace_params": paraace_num_parameters(10, cfg.k),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.skip_compress and "compression" in previous:
        res["compression"] = previous["compression"]
        res["compression_from"] = previous.get("compression_from") or {
            k: previous.get(k) for k in ("date", "command", "folds_run", "seconds")
        }  # the run that computed them, also when ``previous`` kept them from an older one
        res["folds_run"] = previous.get("folds_run", res["folds_run"])
    command = "OMP_NUM_THREADS=1 python benchmarks/paraace.py " + " ".join(sys.argv[1:])
    if os.environ.get("OMP_NUM_THREADS") is None:
        command = command.replace("OMP_NUM_THREADS=1 ", "")
    res["command"] = command.strip()
    this_run = {"date": res["date"], "command": res["command"], "folds_run": res["folds_run"]}
    if args.skip_detect:  # the header, config and detection stay those of the earlier run
        if "detection" not in previous:
            raise SystemExit(f"--skip-detect: no detection results in {args.out}")
        for key in (
            "date",
            "machine",
            "config",
            "seeds",
            "teacher_params",
            "command",
            "seconds",
            "detection",
        ):
            res[key] = previous[key]

    def save() -> None:
        if args.skip_detect:
            this_run["seconds"] = time.perf_counter() - start
        else:
            res["seconds"] = time.perf_counter() - start
        args.out.write_text(json.dumps(res, indent=1, default=float))

    records: list[dict] = []

    def done(rec: dict) -> None:
        records.append(rec)
        print(
            f"detect {rec['dataset']} seed {rec['seed']}: AUC ucb {rec['auc']['ucb']:.3f} "
            f"naive {rec['auc'].get('naive', float('nan')):.3f} exact "
            f"{rec['auc'].get('exact', float('nan')):.3f} pulls {rec['ucb']['pulls']} "
            f"({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
        res["detection"] = {"summary": summarize_detection(records), "records": records}
        save()

    if not args.skip_detect:
        records[:] = run_detections(cfg, list(args.functions), args.jobs, done)  # in task order
        res["detection"] = {"summary": summarize_detection(records), "records": records}
        diabetes = run_detection(replace(cfg, triples=0), "diabetes", 0)
        res["detection"]["diabetes"] = diabetes
        res["detection"]["triples"] = triples_text(records)
        figures(res, args.out)
        save()
    if not args.skip_compress:
        earlier = previous.get("compression", {}).get("records", []) if args.first_fold else []
        if args.first_fold:  # folds before first_fold come from the earlier run(s)
            this_run["earlier"] = previous.get("compression_from") or {
                k: previous.get(k) for k in ("date", "command", "folds_run", "seconds")
            }
            res["compression_from"] = this_run
        comp = list(earlier)
        for name in [*args.functions, "diabetes"]:
            rec = run_compression(replace(cfg, seeds=[0]), name, 0)
            comp.append(rec)
            print(
                f"compress {name}: teacher {rec['teacher_nrmse']:.4f} paraace "
                f"{rec['paraace_nrmse']:.4f} random {rec['random_nrmse']:.4f} CR "
                f"{rec['compression_ratio']:.0f} ({time.perf_counter() - start:.0f}s)",
                flush=True,
            )
            res["compression"] = {"summary": summarize_compression(comp), "records": comp}
            save()
    save()
    text = section(res, res["command"], gpu_results(args))
    write_section(args.results_md, SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
