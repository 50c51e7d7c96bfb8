"""Benchmark of the game layer's Shapley estimators on census (issue 2).

Census (UCI Adult, 12 features) with the LightGBM original model; for each of the first
``--n-instances`` test instances the game is ``BaselineGame(SklearnModel(model), x, baseline =
training mean)`` (features are standardized, so the baseline is the training mean in those
units).

1. Error to exact Shapley values (all 2^12 coalitions) against the number of game evaluations
   per instance (64 ... 4096) for every estimator of ``simshap.games.estimators``. Error = the
   l2 norm over the 12 attributions of the model's predicted class, averaged over instances (for
   a binary probability model the two classes' attributions are negatives of each other, so the
   class does not change the number). Each budget is translated into the estimator's own
   parameter so that its ``n_evals`` (coalitions per instance, v(∅) and v(N) included) does not
   exceed the budget; the JSON records the ``n_evals`` actually used.
2. In one run: wall time of our ``kernel_shap(n_samples=2048)`` on all instances at once and of
   ``shap.KernelExplainer`` (one-row background = the same mean, ``l1_reg=False``,
   ``nsamples=2048``) on the same instances, with each one's l2 to exact.

Writes ``benchmarks/results/estimators.json``, ``benchmarks/results/estimators.png`` and a
section of ``benchmarks/RESULTS.md``.

    OMP_NUM_THREADS=1 python benchmarks/estimators.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _report import machine, write_section  # benchmarks/_report.py

from simshap.data import load_tabular
from simshap.games import BaselineGame, SklearnModel
from simshap.games.estimators import (
    exact_shapley,
    kernel_shap,
    permutation_shapley,
    semivalue_mc,
    sim_semivalue,
)
from simshap.original import fit_original_model

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = [64, 128, 256, 512, 1024, 2048, 4096]
SECTION = "## Shapley estimators on census (issue 2)"


def estimators(d: int):
    """Name -> (function of (game, budget, generator), budget -> own parameter)."""

    def perm_count(budget: int, antithetic: bool) -> int:
        n = max(1, (budget - 2) // (d - 1))
        return max(2, n - n % 2) if antithetic else n

    return {
        "kernel_shap_paired": lambda g, e, gen: kernel_shap(
            g, n_samples=e - 2, paired=True, generator=gen
        ),
        "kernel_shap_unpaired": lambda g, e, gen: kernel_shap(
            g, n_samples=e - 2, paired=False, generator=gen
        ),
        "permutation_antithetic": lambda g, e, gen: permutation_shapley(
            g, perm_count(e, True), antithetic=True, generator=gen
        ),
        "permutation": lambda g, e, gen: permutation_shapley(
            g, perm_count(e, False), antithetic=False, generator=gen
        ),
        "semivalue_mc": lambda g, e, gen: semivalue_mc(g, max(1, e // (2 * d)), generator=gen),
        "sim_semivalue_paired_centered": lambda g, e, gen: sim_semivalue(
            g, e - 2, paired=True, centered=True, generator=gen
        ),
        "sim_semivalue_unpaired_centered": lambda g, e, gen: sim_semivalue(
            g, e - 2, paired=False, centered=True, generator=gen
        ),
        "sim_semivalue_paired": lambda g, e, gen: sim_semivalue(
            g, e - 2, paired=True, centered=False, generator=gen
        ),
        "sim_semivalue_unpaired": lambda g, e, gen: sim_semivalue(
            g, e - 2, paired=False, centered=False, generator=gen
        ),
    }


def l2_per_instance(phi: torch.Tensor, exact: torch.Tensor, cls: torch.Tensor) -> np.ndarray:
    """l2 over the d attributions of class ``cls[b]`` for each instance: ``(B,)``."""
    idx = cls.view(-1, 1, 1).expand(-1, phi.shape[1], 1)
    diff = torch.gather(phi.double(), 2, idx) - torch.gather(exact.double(), 2, idx)
    return diff.squeeze(-1).norm(dim=1).numpy()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-dir", default=None, help="folder with adult.data (default: SIMSHAP_DATA)"
    )
    p.add_argument("--n-instances", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budgets", type=int, nargs="+", default=BUDGETS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    p.add_argument("--skip-shap", action="store_true", help="skip the shap timing comparison")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    data = load_tabular("census", data_dir=args.data_dir, seed=args.seed)
    model = fit_original_model(data, seed=args.seed, n_jobs=1)
    f = SklearnModel(model)
    acc = float((model.predict(data.x_test) == data.y_test).mean())
    print(f"census: d={data.n_features}, LightGBM {model.best_iteration_} rounds, acc {acc:.4f}")
    x = torch.from_numpy(data.x_test[: args.n_instances])
    mean = torch.from_numpy(data.x_train.mean(0))
    game = BaselineGame(f, x, mean, batch_size=16384)
    d = game.num_players

    t0 = time.perf_counter()
    exact = exact_shapley(game).values
    exact_s = time.perf_counter() - t0
    cls = f(x).argmax(1)
    print(f"exact Shapley ({2**d} coalitions x {len(x)} instances): {exact_s:.2f}s")

    # ---- 1. error against evaluations
    curves: dict[str, dict[str, list[float]]] = {}
    for name, fn in estimators(d).items():
        curve: dict[str, list[float]] = {"budget": [], "n_evals": [], "l2": [], "l2_se": []}
        for budget in args.budgets:
            gen = torch.Generator().manual_seed(args.seed + budget)
            est = fn(game, budget, gen)
            err = l2_per_instance(est.values, exact, cls)
            curve["budget"].append(budget)
            curve["n_evals"].append(est.n_evals)
            curve["l2"].append(float(err.mean()))
            curve["l2_se"].append(float(err.std(ddof=1) / np.sqrt(len(err))))
        curves[name] = curve
        print(
            f"{name:32s} "
            + " ".join(
                f"{e:5d}:{v:.2e}" for e, v in zip(curve["n_evals"], curve["l2"], strict=True)
            )
        )

    # ---- 2. our kernel_shap vs shap.KernelExplainer, same instances, 2048 evaluations
    timing: dict[str, object] = {}
    if not args.skip_shap:
        import shap

        # both methods see the same model; time its calls to separate model cost from overhead
        clock = {"ours": [0.0, 0], "shap": [0.0, 0]}

        def timed(key, fn):
            def call(z):
                t = time.perf_counter()
                out = fn(z)
                clock[key][0] += time.perf_counter() - t
                clock[key][1] += len(z)
                return out

            return call

        timed_game = BaselineGame(timed("ours", f), x, mean, batch_size=16384)
        t0 = time.perf_counter()
        ours = kernel_shap(
            timed_game,
            n_samples=2048,
            paired=True,
            generator=torch.Generator().manual_seed(args.seed),
        )
        ours_s = time.perf_counter() - t0
        ours_l2 = l2_per_instance(ours.values, exact, cls)

        background = mean.numpy()[None].astype(np.float64)
        explainer = shap.KernelExplainer(timed("shap", model.predict_proba), background)
        clock["shap"] = [0.0, 0]  # not the background call made by the constructor
        np.random.seed(args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            sv = explainer.shap_values(
                data.x_test[: args.n_instances].astype(np.float64),
                nsamples=2048,
                l1_reg=False,
                silent=True,
            )
            shap_s = time.perf_counter() - t0
        sv = np.stack(sv, -1) if isinstance(sv, list) else np.asarray(sv)  # (B, d, C)
        shap_l2 = l2_per_instance(torch.from_numpy(sv), exact, cls)
        timing = {
            "n_instances": len(x),
            "nsamples": 2048,
            "ours_kernel_shap": {
                "model_seconds": clock["ours"][0],
                "model_rows": clock["ours"][1],
                "seconds": ours_s,
                "n_evals": ours.n_evals,
                "l2": float(ours_l2.mean()),
                "l2_se": float(ours_l2.std(ddof=1) / np.sqrt(len(x))),
            },
            "shap_kernel_explainer": {
                "model_seconds": clock["shap"][0],
                "model_rows": clock["shap"][1],
                "seconds": shap_s,
                "l2": float(shap_l2.mean()),
                "l2_se": float(shap_l2.std(ddof=1) / np.sqrt(len(x))),
            },
            "speedup": shap_s / ours_s,
            "shap_version": shap.__version__,
        }
        print(
            f"kernel_shap ours: {ours_s:.3f}s l2 {ours_l2.mean():.2e} | shap: {shap_s:.3f}s "
            f"l2 {shap_l2.mean():.2e} | speed-up {shap_s / ours_s:.1f}x"
        )

    env = machine()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/estimators.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    result = {
        "dataset": "census",
        "n_features": d,
        "n_instances": len(x),
        "model": {
            "type": "lightgbm.LGBMClassifier",
            "best_iteration": model.best_iteration_,
            "test_accuracy": acc,
        },
        "baseline": "training mean",
        "error": "mean over instances of the l2 norm over the d attributions of the predicted "
        "class, to exact Shapley values (2^d coalitions)",
        "exact_seconds": exact_s,
        "estimators": curves,
        "timing": timing,
        "date": date,
        "command": command,
        "environment": env,
    }
    (args.out / "estimators.json").write_text(json.dumps(result, indent=2))
    plot(curves, args.out / "estimators.png", len(x))
    write_section(args.results_md, SECTION, markdown(result))
    print(f"wrote {args.out / 'estimators.json'}, {args.out / 'estimators.png'}, {args.results_md}")


def plot(curves: dict[str, dict[str, list[float]]], path: Path, n: int) -> None:
    """Log-log error against evaluations, one line per estimator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, c in curves.items():
        ev = np.asarray(c["n_evals"], float)
        l2 = np.asarray(c["l2"], float)
        # kernel_shap at 2^d evaluations enumerates every coalition: exact up to float32
        # rounding (~1e-10), which would flatten the plot, so such points are left out
        keep = l2 > 1e-8
        style = "--" if "unpaired" in name or name == "permutation" else "-"
        ax.plot(ev[keep], l2[keep], style, marker="o", ms=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("game evaluations per instance")
    ax.set_ylabel("mean l2 to exact Shapley (predicted class)")
    ax.set_title(
        f"Census (d=12, LightGBM, baseline = training mean), {n} instances\n"
        "(kernel_shap is exact at 4096 = 2^12 evaluations: point not drawn)",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(r: dict) -> str:
    """This benchmark's RESULTS.md section."""
    env = r["environment"]
    curves = r["estimators"]
    budgets = next(iter(curves.values()))["budget"]
    lines = [
        SECTION,
        "",
        f"- date: {r['date']}",
        f"- machine: {env['cpu']} ({env['cpus']} CPUs), {env['platform']}, Python "
        f"{env['python']}, torch {env['torch']} ({env['torch_threads']} threads, "
        f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']})",
        f"- command: `{r['command']}`",
        f"- data: census, d = {r['n_features']}, {r['n_instances']} test instances; LightGBM "
        f"({r['model']['best_iteration']} rounds, "
        f"test accuracy {r['model']['test_accuracy']:.4f}); "
        "baseline game at the training mean",
        f"- error: {r['error']}; exact Shapley took {r['exact_seconds']:.2f} s",
        "",
        "Mean l2 to exact at each evaluation budget (n_evals actually used may be lower for "
        "permutation / semivalue_mc, whose cost comes in steps of d-1 and 2d):",
        "",
        "| estimator | " + " | ".join(str(b) for b in budgets) + " |",
        "| --- | " + " | ".join("---" for _ in budgets) + " |",
    ]
    for name, c in curves.items():
        cells = [
            f"{v:.2e} ({e})" if e != b else f"{v:.2e}"
            for v, e, b in zip(c["l2"], c["n_evals"], c["budget"], strict=True)
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    t = r["timing"]
    if t:
        o, s = t["ours_kernel_shap"], t["shap_kernel_explainer"]
        overhead_ratio = (s["seconds"] - s["model_seconds"]) / max(
            o["seconds"] - o["model_seconds"], 1e-9
        )
        lines += [
            "",
            f"KernelSHAP, {t['n_instances']} instances, {t['nsamples']} samples, one run "
            f"(shap {t['shap_version']}, `KernelExplainer(predict_proba, mean row)`, "
            "`l1_reg=False`):",
            "",
            "| method | wall time (s) | model calls (s) | model rows | other (s) "
            "| mean l2 to exact |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| simshap `kernel_shap` (paired) | {o['seconds']:.3f} | {o['model_seconds']:.3f} | "
            f"{o['model_rows']} | {o['seconds'] - o['model_seconds']:.3f} | "
            f"{o['l2']:.2e} ± {o['l2_se']:.1e} |",
            f"| `shap.KernelExplainer` | {s['seconds']:.3f} | {s['model_seconds']:.3f} | "
            f"{s['model_rows']} | {s['seconds'] - s['model_seconds']:.3f} | "
            f"{s['l2']:.2e} ± {s['l2_se']:.1e} |",
            "",
            f"Speed-up: {t['speedup']:.1f}x (goal >= 10x with l2 no worse: "
            f"{'met' if t['speedup'] >= 10 and o['l2'] <= s['l2'] else 'not met'}). "
            f"Both evaluate the same model on about the same number of rows; the LightGBM calls "
            f"take {100 * o['model_seconds'] / o['seconds']:.0f}% of our time, so the speed-up "
            f"cannot exceed shap's total / our model time = "
            f"{s['seconds'] / o['model_seconds']:.1f}x at matched evaluations. Outside the "
            f"model, ours is {overhead_ratio:.0f}x "
            "faster.",
        ]
    lines.append("")
    lines.append(
        "Plot: `benchmarks/results/estimators.png`; data: `benchmarks/results/estimators.json`."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
