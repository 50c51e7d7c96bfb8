"""Reports of a run: the environment it ran in and the markdown tables of its results."""

from __future__ import annotations

import platform
from typing import Any

import torch

__all__ = [
    "AMORTIZED",
    "METHOD_LABELS",
    "environment",
    "image_results_table",
    "nan_stats",
    "results_table",
]

# the amortized explainers, in table order
AMORTIZED = ("simshap", "simshap_paper", "fastshap", "labels")

#: display names in tables and figures
METHOD_LABELS: dict[str, str] = {
    "simshap": "SimSHAP (default target)",
    "simshap_paper": "SimSHAP (paper target)",
    "fastshap": "FastSHAP",
    "labels": "Regression on cached labels",
    "kernelshap": "KernelSHAP",
    "kernelshap_s": "KernelSHAP-S",
    "deepshap": "DeepSHAP",
    "random": "random",
    "ig": "IG",
    "smoothgrad": "SmoothGrad",
    "gradcam": "GradCAM",
}


def environment() -> dict[str, Any]:
    """Versions and device of this run."""
    import lightning
    import shap
    import sklearn

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "shap": shap.__version__,
        "sklearn": sklearn.__version__,
        "device": device or platform.machine(),
        "platform": platform.platform(),
    }


def results_table(results: dict[str, Any]) -> str:
    """Markdown table of ``results.json``'s methods (sorted by l2)."""
    gt = results["ground_truth"]
    noise = gt.get("noise_l2", 0.0)
    how = (
        f"kernel_shap to Covert & Lee's per-class threshold {gt['threshold']}, mean std "
        f"{gt.get('mean_std', float('nan')):.2g}, noise l2 {noise:.2g}"
        if gt["method"] == "kernel_shap"
        else f"{gt['method']} (all 2^d coalitions)"
    )
    explained = results.get("explained", {}).get("explained")
    game = results.get("game")
    what = []
    if game:
        what.append(f"Game: {game}" + (f", explaining {explained}" if explained else "") + ".")
    if results.get("profile"):
        what.append(f"Profile: {results['profile']} (the sizes and schedules left unset).")
    fid = (results.get("surrogate") or {}).get("fidelity")
    if fid:
        agree = (
            f"class agreement {fid['agreement']:.1%}"
            if "agreement" in fid
            else f"R² {fid.get('r2', float('nan')):.3f}"
        )
        what.append(
            f"Surrogate fidelity to the model on {fid['rows']} held-out rows: {agree}, "
            f"mean |v(N) − f(x)| {fid['mean_abs_gap']:.3g} (max "
            f"{fid['max_abs_gap']:.3g})."
        )
    lines = [
        f"## {results['dataset']} ({results['n_features']} features)",
        "",
        *([" ".join(what), ""] if what else []),
        f"Ground truth: {how}; {gt['n_instances']} test instances, "
        f"{gt['seconds_per_instance']:.3g} s per instance."
        + (" † marks an l2 below the ground truth's own noise: not resolvable." if noise else ""),
        "",
        "| method | l1 | l2 | relative l2 | evaluations | inference s / instance | train s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = sorted(results["methods"].items(), key=lambda kv: kv[1]["l2"])
    for name, m in rows:
        evals = m.get("n_evals", "1 forward")
        train = f"{m['train_s']:.1f}" if "train_s" in m else ""
        flag = " †" if m["l2"] < noise else ""
        rel = f"{m['rel_l2']:.3f}" if "rel_l2" in m else ""
        lines.append(
            f"| {METHOD_LABELS.get(name, name)} | {m['l1']:.4f} | {m['l2']:.4f}{flag} | {rel} | "
            f"{evals} | {m['inference_s_per_instance']:.3g} | {train} |"
        )
    return "\n".join(lines) + "\n"


def nan_stats(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation over the finite entries (NaN when there are none)."""
    v = values.detach().double().cpu()
    v = v[torch.isfinite(v)]
    if v.numel() == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(unbiased=False))


def image_results_table(results: dict[str, Any]) -> str:
    """Markdown Table 3 (AUC mean ± std, both normalizations) and the Table 4 row."""

    def ms(m: dict[str, Any], key: str) -> str:
        return f"{m[key + '_mean']:.3f} ± {m[key + '_std']:.3f}"

    methods = results["methods"]
    n = results["n_images"]
    lines = [
        f"### Table 3: {results['dataset']}, {n} test images ({results['device']})",
        "",
        "Insertion AUC higher is better, deletion AUC lower is better. Primary: 'prob', the "
        "softmax probability of the target (the classifier's predicted class). 'paper': the "
        "target logit normalized by f_x - f_blur (insertion) and f_x - f_0 (deletion), which "
        "explodes or flips sign where those are small; 'paper, stable' leaves out the images "
        f"where either is below {results.get('denominator_eps', 0.5)} logits (counted in the "
        "last column).",
        "",
        "| method | implementation | insertion (prob) | deletion (prob) | insertion (paper) | "
        "deletion (paper) | insertion (paper, stable) | deletion (paper, stable) | unstable |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in methods.values():
        used = m["used"] + (" (fallback)" if m.get("fallback_reason") else "")
        stable = (
            f"{ms(m, 'insertion_auc_stable')} | {ms(m, 'deletion_auc_stable')} | "
            f"{m['paper_unstable_images']}"
            if "paper_unstable_images" in m
            else "- | - | -"
        )
        lines.append(
            f"| {m['label']} | {used} | {ms(m, 'insertion_auc_prob')} | "
            f"{ms(m, 'deletion_auc_prob')} | {ms(m, 'insertion_auc')} | "
            f"{ms(m, 'deletion_auc')} | {stable} |"
        )
    names = list(methods)
    trained = [k for k in AMORTIZED if k in methods]
    lines += [
        "",
        f"- Table 4 row, inference seconds for the {n} images: "
        + ", ".join(f"{methods[k]['label']} {methods[k]['inference_s']:.3g}" for k in names)
        + "; training minutes: "
        + ", ".join(
            f"{methods[k]['label']} {methods[k].get('train_minutes', float('nan')):.2f}"
            for k in trained
        ),
    ]
    paired = results.get("paired") or {}
    if paired:
        lines += [
            "",
            "Paired per-image differences of the probability AUCs, insertion / deletion (method "
            "minus reference, mean ± standard error over the same images; insertion > 0 and "
            "deletion < 0 are better):",
        ]
        label = {k: m["label"] for k, m in methods.items()}
        for name, refs in paired.items():
            lines.append(
                f"- {label.get(name, name)}: "
                + "; ".join(
                    f"vs {label.get(ref, ref)} {e['insertion_diff']:+.3f} ± "
                    f"{e['insertion_se']:.3f} / {e['deletion_diff']:+.3f} ± {e['deletion_se']:.3f}"
                    f" ({e['n']} images)"
                    for ref, e in refs.items()
                )
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- throughput
