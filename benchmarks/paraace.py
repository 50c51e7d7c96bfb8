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

import torch
from _report import machine, write_section  # benchmarks/_report.py

from simshap.interactions.experiments import (
    ParaACEConfig,
    run_compression,
    run_detection,
    run_detections,
)
from simshap.interactions.paraace import paraace_num_parameters, teacher_num_parameters
from simshap.interactions.plots import plot_heatmaps, plot_pulls
from simshap.interactions.summary import (
    comparison_table,
    compression_table,
    detection_table,
    in_order,
    summarize_compression,
    summarize_detection,
    teacher_description,
    triples_text,
)
from simshap.interactions.synthetic import FUNCTIONS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTION = "## ParaACE: interaction detection and compression (issue 14)"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5, help="detection seeds (paper: 5)")
    p.add_argument("--folds", type=int, default=None,
                   help="compression folds to run out of the 5-fold split (default: all)")
    p.add_argument("--quick", action="store_true",
                   help="--seeds 2 --folds 1 and at most 120 epochs for the compression teacher")
    p.add_argument("--functions", nargs="*", default=list(FUNCTIONS))
    p.add_argument("--first-fold", type=int, default=0,
                   help="compression: start at this fold and add the folds to those in --out")
    p.add_argument("--compress-teacher-epochs", type=int, default=None)
    p.add_argument("--skip-detect", action="store_true",
                   help="compression only; keeps the detection results already in --out")
    p.add_argument("--skip-compress", action="store_true",
                   help="detection only; keeps the compression results already in --out")
    p.add_argument("--ablation", action="store_true",
                   help="also run UCB with δ = 2/sqrt(n) (the authors' code's narrower width)")
    p.add_argument("--sigma-ablation", action="store_true",
                   help="also run UCB with one σ = max_r σ̂_r for all arms (Eq. 2's single σ)")
    p.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu",
                   help="train and query the detection teachers on this device")
    p.add_argument("--teacher-hidden", type=int, nargs="+", default=None,
                   help="hidden widths of the detection teacher (default: the config's)")
    p.add_argument("--teacher-epochs", type=int, default=None)
    p.add_argument("--teacher-patience", type=int, default=None)
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant",
                   help="detection teacher's learning-rate schedule")
    p.add_argument("--jobs", type=int, default=1,
                   help="detection runs in parallel processes (spawned; for a GPU machine)")
    p.add_argument("--gpu-results", type=Path, default=RESULTS / "paraace_gpu.json",
                   help="a detection run on a GPU whose table the section shows too")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the RESULTS.md section and figures from --out, run nothing")
    p.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    p.add_argument("--out", type=Path, default=RESULTS / "paraace.json")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.folds = 2, 1
    return args


NOTES = """Notes. The formulas follow the paper's Table 4; where the authors' repository departs
from it we follow the paper: F2 uses sqrt(|x7|/(1+|x8|)) and F3/F4 the term -(x3²)^|x4|. A test
derives every ground-truth set from the formulas (exact float64 finite differences of the
noiseless functions) and finds the issue's table. Exact STII is computed on 100 training rows
(1,024 coalitions each) with the training mean as baseline; |STII| averaged over rows is its pair
score.

Algorithm 1, checked line by line (2026-11-23). Initial pulls (3 per arm), k = 20, m = 100,
δ = 2/(n³m) and the width sqrt(2σ² log(2/δ)/ℓ), 0 from m pulls on, were as printed. Fixed
(commit 49a6e27): after each pull the search tested the arm with the highest LCB, not the arm
just pulled, could accept several arms in one iteration and accepted arms before the first
iteration. Now each iteration picks the arm of S with the highest UCB (line 5), pulls it once
unless it has m pulls (lines 6-9), and tests that arm alone: accepted when its LCB exceeds
every other UCB in S (line 11). On the same teachers and seeds the fix moved the small
teacher's mean UCB AUC from 0.867 to 0.868 and its pulls from 3674 to 3670. One departure
remains by choice: Eq. (2) uses one σ = max_r σ_r of "pre-defined" σ_r; ours is per arm, half
the range of the arm's observed rewards (Hoeffding's lemma, the paper's argument for
Assumption 2). The single σ (`--sigma-ablation`) costs nearly all of the naive pulls.

Why UCB needs ~80% of the naive pulls here (paper: ~1500 of 4500). With log(2/δ) ≈ 16 the
width at ℓ pulls is 5.7σ/√ℓ, and it only drops to 0 at m. The functions have 6-15 true pairs,
so 5-14 of the k = 20 accepted arms are null pairs whose means (the teacher's spurious
interactions, ~0.005-0.01) nearly coincide: no width separates them before m pulls
(Theorem 3.2's min(σ² log(nm)/Δ², m) with Δ ≈ 0). Measured on F6 and F3 (seed 0, small
teacher): 34 and 36 of the 45 arms reach m pulls, 10 and 7 stay at their 3 initial pulls.
Those arms keep the mean of 3 draws as their score; the squared-difference rewards of kinked
terms (|·|, max, log near 0) are heavy-tailed, so a true pair with three small draws ranks low
(F3: a true pair scored 0.0016 against a k-th score of 0.0053): this is where UCB loses AUC
against the naive estimate. In the compression table below, fold 1 (2026-11-22) detected its
pairs with the search before the Algorithm 1 fix, folds 2-5 with the fixed one."""


TRIED = """Tried for the teacher, not kept (same data and seeds, small-teacher run above as the
reference): a wider CPU teacher 10-512-128-64-32-1 (81,217 parameters) with the cosine schedule
and ≤ 80 epochs (patience 80), `--teacher-hidden 512 128 64 32 --teacher-epochs 80
--teacher-patience 80 --lr-schedule cosine --sigma-ablation`, 2026-11-23 on the same 2 shared
cores: mean AUC UCB 0.871 (vs 0.868), naive 0.883 (vs 0.880), exact STII 0.902 (vs 0.910), NID
0.675 (vs 0.676), pulls 3566 (79%), at twice the teacher time (15 s vs 8 s per function and
seed, 15.9 min in all). The gains are within the ± 0.01 seed spread, so the default stays the
small teacher; only the paper-size teacher (GPU, above) moved the naive and UCB AUCs. In that
run the σ = max ablation gave AUC 0.886 with 4483 of 4500 pulls (100%)."""


def gpu_text(gpu: dict, cpu: dict) -> list[str]:
    """The paper-size-teacher run on a GPU, with a per-function comparison to the CPU run."""
    det, ov = gpu["detection"]["summary"], gpu["detection"]["summary"]["overall"]
    rows = comparison_table(cpu["detection"]["summary"], det, "small", "paper-size")
    epochs = sorted(r["teacher_best_epoch"] for r in gpu["detection"]["records"])
    return [
        "",
        f"**Paper-size teacher on a GPU** ({gpu['date']}, {gpu['machine']['device']}, "
        f"{gpu['machine']['cpus']} CPU cores; {gpu['seconds'] / 60:.1f} min for the 50 "
        f"detection runs, 14 processes sharing the GPU; run there as `PYTHONPATH=. timeout 400 "
        f"python3 …` with `--out $OUT/paraace_gpu.json`, which stopped it after the 50 runs, "
        f"before diabetes). Command: `{gpu['command']}`. Teacher: {teacher_description(gpu)} "
        f"(best epochs {epochs[0]}–{epochs[-1]}, median {epochs[len(epochs) // 2]}); same data, "
        f"seeds and UCB settings as above:",
        "",
        detection_table(det),
        "",
        "Per function, small CPU teacher (table above) against the paper-size teacher:",
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
        lines += ["", f"Ablation `--ablation`: with δ = 2/√n the width is sqrt(σ² log(n)/ℓ), the "
                  "one the authors' released code uses (its σ also shrinks with the range of the "
                  f"running mean); UCB then needs {ov['pulls_code_width']:.0f} pulls "
                  f"({100 * ov['pulls_code_width'] / ov['naive_pulls']:.0f}% of naive) at AUC "
                  f"{ov['auc']['ucb_code_width']:.3f}."]
    if "pulls_sigma_max" in ov:
        lines += ["", f"Ablation `--sigma-ablation`: with Eq. (2)'s single σ = max_r σ̂_r (of the "
                  f"initial pulls) for every arm, UCB needs {ov['pulls_sigma_max']:.0f} pulls "
                  f"({100 * ov['pulls_sigma_max'] / ov['naive_pulls']:.0f}% of naive) at AUC "
                  f"{ov['auc']['ucb_sigma_max']:.3f}."]
    per = det["per_dataset"]
    exact_s = [per[n]["exact_seconds"]["mean"] for n in per if "exact_seconds" in per[n]]
    teach_s = [per[n]["teacher_seconds"]["mean"] for n in per]
    lines += ["", f"Times per function and seed: UCB search {ov['ucb_seconds']:.1f} s, exact STII "
              f"{sum(exact_s) / max(len(exact_s), 1):.1f} s, teacher training "
              f"{sum(teach_s) / len(teach_s):.0f} s."]
    dia = res["detection"].get("diabetes")
    if dia:
        names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
        top = ", ".join(f"{names[i]}×{names[j]}" for i, j in dia["ucb"]["top_k"][:5])
        lines += ["", f"Diabetes (442 × 10, seed 0): the first five pairs UCB accepts are {top} "
                  f"({dia['ucb']['pulls']} pulls of {dia['ucb']['naive_pulls']})."]
    if gpu:
        lines += gpu_text(gpu, res)
    lines += ["", TRIED, "", NOTES]
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
            lines += ["", "(Compression results from " + "; earlier folds from ".join(runs)
                      + ".)"]
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
    cfg = ParaACEConfig(seeds=list(range(args.seeds)), run_folds=args.folds,
                        code_width_ablation=args.ablation,
                        sigma_max_ablation=args.sigma_ablation, accelerator=args.accelerator,
                        teacher_lr_schedule=args.lr_schedule,
                        teacher_patience=args.teacher_patience)  # fmt: skip
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
        for key in ("date", "machine", "config", "seeds", "teacher_params", "command",
                    "seconds", "detection"):  # fmt: skip
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
        print(f"detect {rec['dataset']} seed {rec['seed']}: AUC ucb {rec['auc']['ucb']:.3f} "
              f"naive {rec['auc'].get('naive', float('nan')):.3f} exact "
              f"{rec['auc'].get('exact', float('nan')):.3f} pulls {rec['ucb']['pulls']} "
              f"({time.perf_counter() - start:.0f}s)", flush=True)  # fmt: skip
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
            print(f"compress {name}: teacher {rec['teacher_nrmse']:.4f} paraace "
                  f"{rec['paraace_nrmse']:.4f} random {rec['random_nrmse']:.4f} CR "
                  f"{rec['compression_ratio']:.0f} ({time.perf_counter() - start:.0f}s)",
                  flush=True)  # fmt: skip
            res["compression"] = {"summary": summarize_compression(comp), "records": comp}
            save()
    save()
    text = section(res, res["command"], gpu_results(args))
    write_section(args.results_md, SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
