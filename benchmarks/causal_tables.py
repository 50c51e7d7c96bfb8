"""Markdown of one causal-study run for ``benchmarks/RESULTS.md`` (used by ``causal.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from causal_claims import GRADIENT, LABEL


def _cell(v: float, ci: list[float]) -> str:
    return f"{v:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _stat(stat: Mapping[str, Any]) -> str:
    return _cell(stat["value"], stat["ci"])


def _zoo_lines(
    s: Mapping[str, Any], epochs: Mapping[str, Any] | None, throughput: Mapping[str, Any] | None
) -> list[str]:
    cpu = s.get("train_chunk_cpu_seconds") or []
    lines = [
        f"- zoo: {s['n_models_trained']} models trained ({s['n_models_explained']} explained) of "
        f"{s['n_models_requested']} requested; {s['epochs']} epochs, batch {s['batch_size']}, "
        f"{s['n_train']} training images ({s['n_val']} held out for validation), seeds: "
        f"{s['model_seeds']}; {s['workers']} worker processes of 1 thread; chunk wall time "
        f"summed over workers {sum(s['train_chunk_seconds']) / 60:.1f} min"
        + (f", CPU {sum(cpu) / 60:.1f} min" if cpu else "")
        + f"; explaining {s['explain_seconds_per_model']:.2f} s per model (one worker's time)",
    ]
    cost = s.get("train_cost")
    if cost:
        lines.append(
            f"- training cost: {cost['cpu_seconds_per_model']:.1f} CPU s per model "
            f"({cost['cpu_seconds_per_model_epoch']:.2f} per model-epoch), training and test "
            "scoring, CPU time of the one-thread chunk processes; **projected** 1,000 models on 2 "
            f"quiet cores: {cost['projected_minutes_1000_models_on_2_cores']:.0f} min (CPU "
            "seconds / 2 cores; a projection, not a wall-clock timing)"
        )
    if s.get("train_wall_minutes_whole_zoo") is not None:
        lines.append(
            f"- **timed**: the whole zoo ({s['n_models_trained']} models) trained in one call in "
            f"{s['train_wall_minutes_whole_zoo']:.1f} min wall time (data loading, training and "
            "test scoring in the worker processes; see conditions for the machine's load)"
        )
    sub = s.get("explain_subset")
    if sub:
        lines.append(
            f"- explained: a seeded random subset of {s['n_models_explained']} models, at most "
            f"{sub['per_bucket']} drawn from each of the zoo's accuracy buckets (seed "
            f"{sub['seed']}; config `explain_subset`), the buckets being the whole zoo's "
            "percentiles; the row 'all' pools this subset (top buckets over-represented)"
        )
    if epochs is not None:
        chosen = next(r for r in epochs["per_epoch"] if r["epochs"] == epochs["epochs"])
        lines.append(
            f"- epochs chosen before training the zoo (`benchmarks/causal_epochs.py`): a pilot "
            f"zoo of {epochs['pilot']['n_models']} other models (seed {epochs['pilot']['seed']}) "
            f"scored on the validation split after each epoch; rule: {epochs['rule']}; "
            f"{epochs['max_epochs_in_time_goal']} epochs fit the time goal; chosen "
            f"{epochs['epochs']} (largest pilot deviation {chosen['max_abs_deviation']:.1f} "
            "points); the test set played no part"
        )
    if throughput is not None:
        r = throughput["runs"]
        lines.append(
            f"- training throughput, one run, {throughput['threads']} thread "
            f"(OMP_NUM_THREADS={throughput['OMP_NUM_THREADS']}), the same "
            f"{throughput['n_models']} models for {throughput['epochs']} epoch "
            f"(`{throughput['command']}`, {throughput['date']}): batched "
            f"{r['batched']['models_per_minute']:.1f} models/min, plain one-model loop "
            f"{r['single']['models_per_minute']:.1f}, the former Lightning loop "
            f"{r['lightning']['models_per_minute']:.1f}: "
            f"**{throughput['batched_over_lightning']:.2f}x** the Lightning loop, "
            f"{throughput['batched_over_single']:.2f}x the plain loop"
            + (
                f"; CPU time: batched {r['batched']['models_per_cpu_minute']:.1f}, plain "
                f"{r['single']['models_per_cpu_minute']:.1f}, Lightning "
                f"{r['lightning']['models_per_cpu_minute']:.1f} models per CPU minute"
                if "models_per_cpu_minute" in r["batched"]
                else ""
            )
            + (
                f"; timed: the first full group of {throughput.get('n_models', 0) // len(fr)} "
                f"models at each train fraction {', '.join(map(str, fr))}"
                if (fr := throughput.get("fractions"))
                else ""
            )
            + " (mean "
            f"test accuracy {r['batched']['mean_accuracy']:.3f} / "
            f"{r['single']['mean_accuracy']:.3f} / {r['lightning']['mean_accuracy']:.3f})"
        )
    a = s["accuracy"]
    lines += [
        "",
        "Zoo test accuracy (%) by percentile"
        + (
            " against the paper's Table 2 "
            "(Fashion-MNIST bucket edges; goal: p40, p60, p80, p99 within ±8 points):"
            if s["table2"]
            else ":"
        ),
        "",
    ]
    keys = list(a)
    lines += [
        "| | " + " | ".join(keys) + " |",
        "| --- " * (len(keys) + 1) + "|",
        "| ours | " + " | ".join(f"{100 * a[k]:.1f}" for k in keys) + " |",
    ]
    if s["table2"]:
        rows = s["table2"]["rows"]
        lines.append(
            "| Table 2 | "
            + " | ".join(str(rows[k]["paper"]) if k in rows else "" for k in keys)
            + " |"
        )
        met = s["table2"]["goal_met"]
        lines += [
            "",
            "- goal: "
            + ", ".join(
                f"{k} {rows[k]['diff']:+.1f} ({'met' if ok else 'missed'})" for k, ok in met.items()
            ),
        ]
    return lines


def _corr_tables(s: Mapping[str, Any], full: bool = True) -> list[str]:
    m = s["methods"]
    head = "| bucket (models, acc.) | " + " | ".join(LABEL.get(x, x) for x in m) + " |"
    sep = "| --- " * (len(m) + 1) + "|"
    lines = [
        "",
        "Pearson corr(ITE_Y, ITE_E), total effect (the paper's Fig. 3, right):",
        "",
        head,
        sep,
    ]
    for b in s["buckets"]:
        lo, hi = b["accuracy_range"]
        row = [f"{b['name']} ({b['n_models']}, {lo:.2f}-{hi:.2f})"]
        lines.append(
            "| "
            + " | ".join(row + [_stat(s["corr"][b["name"]][x]["total_pearson"]) for x in m])
            + " |"
        )
    if not full:
        return lines
    lines += ["", "Spearman corr(ITE_Y, ITE_E), total effect:", "", head, sep]
    for b in s["buckets"]:
        lines.append(
            "| "
            + " | ".join(
                [b["name"]] + [_stat(s["corr"][b["name"]][x]["total_spearman"]) for x in m]
            )
            + " |"
        )
    lines += [
        "",
        "Direct effect (explained target permuted across models): Pearson; then total "
        "− direct, the part mediated through Y (the paper's Fig. 4, left and middle):",
        "",
        head,
        sep,
    ]
    for b in s["buckets"]:
        c = s["corr"][b["name"]]
        lines.append(
            "| "
            + " | ".join(
                [b["name"]]
                + [
                    f"{c[x]['direct_pearson']['value']:+.2f}; {_stat(c[x]['mediated_pearson'])}"
                    for x in m
                ]
            )
            + " |"
        )
    return lines


def _claims(s: Mapping[str, Any], full: bool = True) -> list[str]:
    c = s["paper_claims"]
    f1 = c["abs_corr_le_0.5"]
    lines = [
        "",
        "The paper's findings on our zoo (paper's 8 buckets; top = 90-100%, low = "
        "0-80%, differences of bucket means with 95% intervals):",
        "",
        "| paper's finding | our estimate | verdict |",
        "| --- | --- | --- |",
        f"| \\|corr\\| ≲ 0.5 for gradient methods (Fig. 3, Fig. 16) | {f1['within']} of "
        f"{f1['cells']} bucket×method cells have \\|r\\| ≤ 0.5; max \\|r\\| = "
        f"{f1['max_abs']:.2f}; CI wholly above 0.5: "
        f"{', '.join(f1['ci_above_0.5']) or 'none'} | "
        f"{'as the paper' if not f1['ci_above_0.5'] else 'partly not'} |",
    ]
    for m, v in c["corr_rises_with_accuracy"].items():
        lines.append(
            f"| corr rises with accuracy for {LABEL[m]} (Sec. 3.2): r(top) − r(low) | "
            f"{v['top']:+.2f} − {v['low']:+.2f} = {_cell(v['diff'], v['ci'])} | "
            f"{v['verdict']} |"
        )
    for m, v in c["top1_reduced_alignment"].items():
        lines.append(
            f"| top 1% less aligned (Fig. 3 right), {LABEL[m]}: r(99-100) − r(90-99) | "
            f"{_cell(v['diff'], v['ci'])} | {v['verdict']} |"
        )
    for m, v in c["gap_to_ideal_widens"].items():
        lines.append(
            f"| gap to ideal widens among top models (abstract, Fig. 4 right), "
            f"{LABEL[m]}: gap(top) − gap(low) | {v['top']:+.2f} − {v['low']:+.2f} = "
            f"{_cell(v['diff'], v['ci'])} | {v['verdict']} |"
        )
    if "ite_y_shrinks_at_top" in c:
        sh = c["ite_y_shrinks_at_top"]
        lines.append(
            f"| ITE_Y shrinks among the top models (Sec. 3.2, Fig. 7): mean ITE_Y, top / "
            f"40-80% | {sh['Y']['ratio']:.2f} [{sh['Y']['ci'][0]:.2f}, "
            f"{sh['Y']['ci'][1]:.2f}] | {sh['Y']['verdict']} |"
        )
        for key, v in sh.items():
            if key == "Y":
                continue
            m = key.split("/", 1)[1]
            lines.append(
                f"| ITE_E shrinks less than ITE_Y (Sec. 3.2), {LABEL[m]}: ratio_E − "
                f"ratio_Y (ratio_E = {v['ratio']:.2f}) | "
                f"{_cell(v['minus_y']['diff'], v['minus_y']['ci'])} | "
                f"{v['minus_y']['verdict']} |"
            )
    if "gradcam_worst" in c:
        v = c["gradcam_worst"]
        lines.append(
            f"| Grad-CAM correlates worse than Grad/SG/IG (Sec. 4): mean r difference | "
            f"{_cell(v['diff'], v['ci'])} | {v['verdict']} |"
        )
    if not full:  # one line: how many of the table's findings got each verdict
        verdicts = Counter(row.rsplit("|", 2)[1].strip() for row in lines[5:])
        lines = [
            "",
            f"- the paper's {sum(verdicts.values())} findings on our zoo (paper's 8 buckets; "
            "top = 90-100%, low = 0-80%; 95% intervals): "
            + ", ".join(f"{k}: {n}" for k, n in verdicts.most_common()),
        ]
    med = c["mediated_through_y"]
    lines += [""] if full else []  # in the compact form it follows the verdicts' line
    lines += [
        "- part mediated through Y (total − direct Pearson), mean over the 8 buckets: "
        + "; ".join(
            f"{LABEL[m]} {_cell(v['mean'], v['ci'])} (CI covers 0 in "
            f"{v['buckets_ci_covers_0']}/{v['buckets']} buckets)"
            for m, v in med.items()
        ),
    ]
    return lines


def _shapley(s: Mapping[str, Any], full: bool = True) -> list[str]:
    sv = s["shapley_minus_gradient"]
    if not sv:
        return []
    grads = [g for g in GRADIENT if g in s["methods"]]
    lines = [
        "",
        "Our question: do Shapley values track predictions better than gradient "
        "saliency? Shapley minus method, Pearson corr(ITE_Y, ITE_E) (paired within a "
        "bucket); last rows: mean over the 8 buckets (total Pearson, total Spearman, "
        "mediated Pearson):",
        "",
        "| bucket | " + " | ".join(LABEL[g] for g in grads) + " |",
        "| --- " * (len(grads) + 1) + "|",
    ]
    for name, row in sv["per_bucket"]["total_pearson"].items() if full else ():
        lines.append(
            "| " + " | ".join([name] + [_cell(row[g]["diff"], row[g]["ci"]) for g in grads]) + " |"
        )
    for key in ("total_pearson", "total_spearman", "mediated_pearson"):
        row = sv["pooled"][key]
        lines.append(
            "| **mean, "
            + key.replace("_", " ")
            + "** | "
            + " | ".join(_cell(row[g]["diff"], row[g]["ci"]) for g in grads)
            + " |"
        )
    return lines


def markdown(
    name: str,
    s: Mapping[str, Any],
    command: str,
    epochs: Mapping[str, Any] | None,
    throughput: Mapping[str, Any] | None,
    full: bool = True,
) -> str:
    """One data set's report; ``full=False``: the RESULTS.md part (no Spearman, direct-effect or
    per-bucket Shapley tables; those stay in the full report next to the JSON)."""
    lines = [
        f"### {name}",
        "",
        f"- command: `{command}`",
        "- figures (Figs. 2, 3, 4 analogues): " + ", ".join(s.get("figures", [])),
        f"- Shapley: KernelSHAP on the 4x4-patch baseline game, "
        f"{s['shapley_game_evaluations']} game evaluations per image (incl. ∅ and N), one "
        "set of coalitions shared by all models",
        f"- intervals: {int(100 * s['ci'])}% half-sampling intervals: {s['n_bootstrap']} "
        "random halves of each bucket's models (no duplicates), spread centered on the "
        "estimate",
    ]
    if "shapley_exact_check" in s:
        ec = s["shapley_exact_check"]
        lines.append(
            f"- Shapley budget check: KernelSHAP at {ec['budget_evals']} evaluations vs exact "
            f"({ec['exact_evals']}) on {ec['n_models']} models x {ec['n_images']} images: "
            f"relative l2 error {ec['relative_l2_error_mean']:.3f} mean, "
            f"{ec['relative_l2_error_max']:.3f} max; preprocessed maps correlate "
            f"{ec['preprocessed_map_corr_mean']:.3f} with the exact ones"
        )
    lines += _zoo_lines(s, epochs, throughput)
    lines += _corr_tables(s, full) + _claims(s, full) + _shapley(s, full)
    return "\n".join(lines)
