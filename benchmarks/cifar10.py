"""CIFAR-10 image benchmark: Table 3, the Table 4 row and target-computation throughput.

Runs on one GPU, stage by stage, in a run folder per data set (``benchmarks/runs/<dataset>``), so
it can span several separate invocations: every stage writes its output and is skipped once that
output exists. Each training stage is capped at 9 minutes (``trainer.max_time``), so no stage
runs past 10 minutes; evaluation caches every method's attributions and resumes where it stopped.

Data sets: the real 6,102-image subset (``cifar10-subset.npz``, always) and full CIFAR-10 (when
torchvision's ``cifar-10-batches-py`` is in the data folder).

Stages, in order: model, surrogate, simshap, fastshap, throughput, evaluate, report.

    python benchmarks/cifar10.py --data-dir ../shared/data            # every pending stage
    python benchmarks/cifar10.py --data-dir ../shared/data --next     # only the next one
    python benchmarks/cifar10.py --data-dir ../shared/data --stage throughput --overwrite
    python benchmarks/cifar10.py --write-pending                       # RESULTS.md: not measured
    python benchmarks/cifar10.py --allow-cpu --data-dir ../shared/data # tiny CPU smoke run

``report`` writes ``benchmarks/results/cifar10.json`` and this benchmark's section of
``benchmarks/RESULTS.md`` (other sections are left as they are). Without CUDA the script refuses
unless ``--allow-cpu``, which runs a tiny smoke version (widths 4, a few images) into
``benchmarks/runs/smoke-*`` and writes nothing under ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _report import write_section  # noqa: E402 (benchmarks/ sits on sys.path)

from simshap.data.tabular import resolve_data_dir  # noqa: E402
from simshap.evaluation.throughput import measure_target_throughput  # noqa: E402
from simshap.runs.config_files import load_config, merge_config  # noqa: E402
from simshap.runs.image import EXPLAINERS, ImageRun  # noqa: E402

RESULTS_JSON = ROOT / "benchmarks" / "results" / "cifar10.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## CIFAR-10 on a GPU"
STAGES = ("model", "surrogate", "simshap", "simshap_paper", "fastshap", "throughput", "evaluate")
OUTPUTS = {
    "model": "classifier.pt",
    "surrogate": "surrogate.pt",
    "simshap": "simshap.pt",
    "simshap_paper": "simshap_paper.pt",
    "fastshap": "fastshap.pt",
    "throughput": "throughput.json",
    "evaluate": "results.json",
}
STAGE_MINUTES = 9  # default Lightning max_time per training stage (--stage-minutes)
COMMAND = "python benchmarks/cifar10.py --data-dir ../shared/data"

SMOKE = {
    "data": {"train_size": 48, "num_workers": 0, "val_size": 16},
    "model": {"width": 4, "batch_size": 16, "max_epochs": 1},
    "surrogate": {"width": 4, "batch_size": 16, "max_epochs": 1},
    "explainer": {
        "base_width": 4,
        "depth": 2,
        "batch_size": 8,
        "max_epochs": 1,
        "val_instances": 2,
        "val_budget": 512,
    },
    "evaluation": {
        "n_images": 3,
        "batch_size": 257,
        "figure_images": 2,
        "ig": {"budget": 4},
        "smoothgrad": {"budget": 2, "samples_batch_size": 2},
        "kernelshap": {"budget": 302},
        "kernelshap_s": {"budget": 302},
        "deepshap": {"budget": 4, "background_size": 4},
    },
    "trainer": {"accelerator": "cpu", "precision": "32-true"},
}


def deep_update(base: dict, new: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in new.items():
        nested = isinstance(v, dict) and isinstance(out.get(k), dict)
        out[k] = deep_update(out[k], v) if nested else v
    return out


def parse_override(item: str) -> dict:
    """``"a.b=3"`` -> ``{"a": {"b": 3}}``; the value is parsed as YAML."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"--set expects KEY=VALUE (e.g. explainer.max_epochs=300), got {item!r}")
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)
    return out


def datasets(data_dir: str | None) -> list[str]:
    folder = resolve_data_dir(data_dir)
    names = []
    if (folder / "cifar10-subset.npz").is_file():
        names.append("cifar10-subset")
    if (folder / "cifar-10-batches-py").is_dir():
        names.append("cifar10")
    if not names:
        raise SystemExit(f"neither cifar10-subset.npz nor cifar-10-batches-py found in {folder}")
    return names


def make_run(name: str, args: argparse.Namespace, smoke: bool) -> ImageRun:
    cfg = load_config(ROOT / "simshap" / "runs" / "configs" / f"{name}.yaml")
    cfg["data_dir"] = str(resolve_data_dir(args.data_dir))
    minutes = int(args.stage_minutes)
    cfg["trainer"]["max_time"] = f"00:{minutes // 60:02d}:{minutes % 60:02d}:00"
    cfg["trainer"]["progress_bar"] = False
    for item in args.set:
        cfg = merge_config(cfg, parse_override(item))  # unknown keys raise, as in a YAML file
    if smoke:
        cfg = deep_update(cfg, SMOKE)
    out = Path(args.run_root) / (f"smoke-{name}" if smoke else name)
    run = ImageRun(out, cfg)
    cfg_file = out / "config.yaml"
    if not cfg_file.is_file():
        run.start(overwrite=True)
    elif load_config(cfg_file) != cfg:
        if not args.overwrite:
            raise SystemExit(f"{out} holds a run with another config; pass --overwrite to restart")
        run.start(overwrite=True)
    return run


def stage_throughput(run: ImageRun, overwrite: bool, smoke: bool = False) -> dict[str, Any]:
    target = run.path("throughput.json")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite")
    surrogate = run.surrogate()
    run.speed_up(surrogate.net, compile_net=run.config["surrogate"]["compile"])
    explainer = run.build_explainer("simshap", surrogate).to(run.device)
    x_all, _ = run.data.test_tensors(512, split="train")
    rows = []
    sizes = {int(run.config["explainer"]["batch_size"])} | (set() if smoke else {64, 128, 256})
    iters, warmup = (2, 1) if smoke else (20, 5)
    for b in sorted(sizes):
        if b > len(x_all):
            continue
        res = measure_target_throughput(explainer, x_all[:b].to(run.device), iters, warmup)
        rows.append(res)
        print(
            f"[throughput] B={b}: target {res['target_images_per_s']:.0f} img/s, raw "
            f"{res['raw_images_per_s']:.0f} img/s, ratio {res['ratio']:.2f}",
            flush=True,
        )
    out = {
        "device": str(run.device),
        "precision": "bf16 autocast" if run.device.type == "cuda" else "float32",
        "channels_last": run.channels_last,
        "compile": run.config["surrogate"]["compile"],
        "batches": rows,
    }
    target.write_text(json.dumps(out, indent=2))
    return out


def run_stage(run: ImageRun, stage: str, overwrite: bool, smoke: bool = False) -> Any:
    if stage == "model":
        return run.fit_model(overwrite)
    if stage == "surrogate":
        return run.fit_surrogate(overwrite)
    if stage in EXPLAINERS:
        return run.fit_explainer(stage, overwrite)
    if stage == "throughput":
        return stage_throughput(run, overwrite, smoke)
    return run.evaluate(overwrite)


# --------------------------------------------------------------------------- report


def fmt(v: float) -> str:
    return f"{v:.3g}"


def report(runs: list[ImageRun]) -> dict[str, Any]:
    per_ds: dict[str, Any] = {}
    for run in runs:
        if not run.path("results.json").is_file():
            print(f"[report] {run.out}: no results.json yet, skipped", flush=True)
            continue
        entry = json.loads(run.path("results.json").read_text())
        if run.path("throughput.json").is_file():
            entry["throughput"] = json.loads(run.path("throughput.json").read_text())
        per_ds[run.config["dataset"]] = entry
    if not per_ds:
        raise SystemExit("no data set has results yet: run the evaluate stage first")
    main = per_ds.get("cifar10-subset") or next(iter(per_ds.values()))
    keys = (
        "insertion_auc_mean",
        "insertion_auc_std",
        "deletion_auc_mean",
        "deletion_auc_std",
        "inference_s",
        "insertion_auc_prob_mean",
        "insertion_auc_prob_std",
        "deletion_auc_prob_mean",
        "deletion_auc_prob_std",
        "inference_s_per_image",
        "used",
    )
    methods = {name: {k: m[k] for k in keys if k in m} for name, m in main["methods"].items()}
    for name in EXPLAINERS:
        if name in methods:
            methods[name]["train_minutes"] = main["methods"][name].get("train_minutes")
    sim, fast = main["methods"]["simshap"], main["methods"]["fastshap"]
    goals = {  # FastSHAP: the primary (probability) AUC; 0.755: the paper's normalization
        "simshap_insertion_prob_ge_fastshap": sim["insertion_auc_prob_mean"]
        >= fast["insertion_auc_prob_mean"],
        "simshap_insertion_paper_ge_0.755": sim["insertion_auc_mean"] >= 0.755,
        "simshap_insertion_paper_stable_ge_0.755": sim.get(
            "insertion_auc_stable_mean", float("nan")
        )
        >= 0.755,
        "simshap_train_minutes_le_20": (sim.get("train_minutes") or 1e9) <= 20,
    }
    if "kernelshap" in main["methods"]:
        speed = main["methods"]["kernelshap"]["inference_s"] / sim["inference_s"]
        goals["kernelshap_over_simshap_inference"] = speed
        goals["amortized_ge_1e4x_faster"] = speed >= 1e4
    tp = main.get("throughput", {}).get("batches", [])
    if tp:
        goals["target_throughput_ratio"] = max(r["ratio"] for r in tp)
        goals["target_throughput_ge_70pct"] = goals["target_throughput_ratio"] >= 0.7
    device = main.get("device") or torch.cuda.get_device_name()  # the evaluating machine
    blob = {
        "device": device,
        "dataset": main["dataset"],
        "n_images": main["n_images"],
        "methods": methods,
        "goals": goals,
        "datasets": per_ds,
    }
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(blob, indent=2))
    main_run = next(r for r in runs if r.config["dataset"] == main["dataset"])
    for fig in ("figure3.png", "curves.png"):
        if main_run.path(fig).is_file():
            shutil.copyfile(main_run.path(fig), RESULTS_JSON.parent / f"cifar10_{fig}")
    write_section(RESULTS_MD, SECTION, measured_section(per_ds, goals))
    return blob


def measured_section(per_ds: dict[str, Any], goals: dict[str, Any]) -> str:
    from simshap.evaluation.report import environment, image_results_table

    # the machine that evaluated (results.json), so `--stage report` may run elsewhere
    env = next(iter(per_ds.values())).get("environment") or environment()
    command = " ".join(["python", "benchmarks/cifar10.py", *sys.argv[1:]])
    lines = [
        SECTION,
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {env['device']}, torch {env['torch']}, lightning {env['lightning']}, "
        f"shap {env['shap']}",
        f"- command: `{command}` (stages resumable; configs/cifar10-subset.yaml, "
        "configs/cifar10.yaml)",
        "",
    ]
    for name, res in per_ds.items():
        lines.append(image_results_table(res))
        tp = res.get("throughput", {}).get("batches", [])
        if tp:
            lines += [
                "",
                f"Target computation vs raw surrogate forward ({name}, "
                f"{res['throughput']['precision']}, channels_last="
                f"{res['throughput']['channels_last']}, compile="
                f"{res['throughput']['compile']}); masked images per second:",
                "",
                "| batch B | masked images per step B(M+2) | target img/s | raw img/s | ratio |",
                "| ---: | ---: | ---: | ---: | ---: |",
            ]
            for r in tp:
                lines.append(
                    f"| {int(r['batch_size'])} | {int(r['masked_images_per_step'])} | "
                    f"{r['target_images_per_s']:.0f} | {r['raw_images_per_s']:.0f} | "
                    f"{r['ratio']:.2f} |"
                )
        lines.append("")
    lines += [
        "Goals: "
        + ", ".join(f"{k}: {fmt(v) if isinstance(v, float) else v}" for k, v in goals.items()),
        "",
        "Figures: `benchmarks/results/cifar10_figure3.png` and `cifar10_curves.png` (copied "
        "from the run folder `benchmarks/runs/<dataset>/`); data: "
        "`benchmarks/results/cifar10.json`.",
        "",
    ]
    return "\n".join(lines)


def pending_section() -> str:
    return "\n".join(
        [
            SECTION,
            "",
            "**Not yet measured: these figures need a CUDA GPU** (none was available when the "
            "image pipeline landed; every stage is covered by CPU tests with tiny networks in "
            "`tests/runs/test_image_pipeline.py`). To measure them on one GPU (H100 class), "
            "from the repository root:",
            "",
            "```",
            f"{COMMAND}            # every pending stage; re-run to resume",
            f"{COMMAND} --next     # or one stage per invocation (each under 10 minutes)",
            "```",
            "",
            "Pending figures (6,102-image subset; full CIFAR-10 too when `cifar-10-batches-py` is "
            "in the data folder):",
            "",
            "- Table 3: insertion and deletion AUC, mean and std over 100 test images, paper "
            "normalization and softmax probability, for SimSHAP, FastSHAP, IG, SmoothGrad, "
            "GradCAM, KernelSHAP (shap), KernelSHAP-S, DeepSHAP (or its GradientExplainer "
            "fallback).",
            "- Table 4 (CIFAR-10 row): inference seconds for the evaluated images per method; "
            "training minutes of SimSHAP and FastSHAP.",
            "- Throughput of SimSHAP's target computation (surrogate on B(M+2) masked images + "
            "Sim-Semivalue target) vs the surrogate's raw forward on the same batches, bf16 + "
            "channels_last.",
            "- Goals: SimSHAP insertion AUC >= FastSHAP's and >= 0.755 (paper normalization); "
            "amortized inference >= 10^4 x faster than shap's KernelSHAP per image; SimSHAP "
            "training <= 20 minutes on one H100; target throughput >= 70% of raw forward.",
            "",
        ]
    )


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with cifar10-subset.npz "
        "(and optionally cifar-10-batches-py); default $SIMSHAP_DATA",
    )
    p.add_argument("--run-root", default=str(ROOT / "benchmarks" / "runs"))
    p.add_argument("--stage", choices=[*STAGES, "report", "all"], default="all")
    p.add_argument("--next", action="store_true", help="run only the next pending stage")
    p.add_argument(
        "--stage-minutes",
        type=int,
        default=STAGE_MINUTES,
        help="wall-clock cap of each training stage (Lightning max_time), minutes",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set explainer.max_epochs=300 (YAML value; "
        "repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="recompute the chosen stage")
    p.add_argument("--allow-cpu", action="store_true", help="tiny smoke run without CUDA")
    p.add_argument(
        "--write-pending",
        action="store_true",
        help="write the 'not yet measured' section of RESULTS.md and exit",
    )
    args = p.parse_args(argv)
    if args.write_pending:
        write_section(RESULTS_MD, SECTION, pending_section())
        print(f"wrote the pending section of {RESULTS_MD}")
        return 0
    smoke = not torch.cuda.is_available()
    if smoke and not args.allow_cpu:
        print(
            "benchmarks/cifar10.py needs a CUDA GPU (torch.cuda.is_available() is False); "
            "pass --allow-cpu for a tiny smoke run that measures nothing",
            file=sys.stderr,
        )
        return 2
    runs = [make_run(name, args, smoke) for name in datasets(args.data_dir)]
    stages = list(STAGES) if args.stage == "all" else [] if args.stage == "report" else [args.stage]
    for run in runs:
        for stage in stages:
            if stage in EXPLAINERS and stage not in run.explainer_names:
                continue  # left out by explainer.methods
            done = run.path(OUTPUTS[stage]).exists()
            if done and not (args.overwrite and args.stage == stage):
                continue
            t0 = time.perf_counter()
            print(f"[{run.config['dataset']}] stage {stage} ...", flush=True)
            out = run_stage(run, stage, overwrite=done, smoke=smoke)
            summary = "results.json" if stage == "evaluate" else out
            print(
                f"[{run.config['dataset']}] {stage} done in {time.perf_counter() - t0:.0f} s: "
                f"{summary}",
                flush=True,
            )
            if args.next:
                return 0
    if smoke:
        print("smoke run finished (nothing written under benchmarks/results)")
        return 0
    if args.stage in ("all", "report"):
        report(runs)
        print(f"wrote {RESULTS_JSON} and the CIFAR-10 section of {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
