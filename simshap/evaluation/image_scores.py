"""Insertion / deletion scores of one method's image attributions, in both normalizations.

The per-method row of the image table (Table 3): the probability AUCs (primary), the paper's
normalized AUCs, and the paper AUCs over the images whose normalizing denominators are at least
``denominator_eps`` (how many were left out is counted).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from simshap.evaluation.insertion_deletion import insertion_deletion_all, stable_mask
from simshap.evaluation.report import METHOD_LABELS, nan_stats

__all__ = ["METHOD_LABELS", "NORMALIZATIONS", "paired_differences", "score_attributions"]


NORMALIZATIONS = ("paper", "prob")


def score_attributions(
    net: nn.Module,
    x: torch.Tensor,
    values: torch.Tensor,
    target: torch.Tensor,
    superpixel_size: int,
    batch_size: int,
    denominator_eps: float,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """AUC means and stds of one method, and its paper-normalized mean curves.

    Args:
        net: the classifier the curves call (logits out).
        x: the explained images ``(N, c, h, w)``.
        values: the attributions on the superpixel grid ``(N, h', w')``.
        target: the explained class per image ``(N,)``.
        superpixel_size: side of a superpixel in pixels.
        batch_size: images per forward pass of the curves.
        denominator_eps: the paper normalization's stability threshold (logits).

    Returns:
        ``(scores, curves)``: ``{insertion,deletion}_auc[_prob|_stable]_{mean,std}`` and
        ``paper_unstable_images``; the per-image insertion and deletion curves (paper
        normalization, on the CPU) and the per-image probability AUCs
        (``insertion_auc_prob``, ``deletion_auc_prob``, shape ``(N,)``).
    """
    row: dict[str, Any] = {}
    curves: dict[str, torch.Tensor] = {}
    per_image: dict[str, torch.Tensor] = {}
    results = insertion_deletion_all(
        net,
        x,
        values,
        target=target,
        superpixel_size=superpixel_size,
        normalize=NORMALIZATIONS,
        batch_size=batch_size,
    )  # one set of forward passes for both normalizations
    for norm, res in results.items():
        suffix = "" if norm == "paper" else "_prob"
        if norm == "prob":  # per image, for paired comparisons between methods
            per_image = {
                f"{kind}_auc_prob": getattr(res, f"{kind}_auc").cpu()
                for kind in ("insertion", "deletion")
            }
        for kind in ("insertion", "deletion"):
            row[f"{kind}_auc{suffix}_mean"], row[f"{kind}_auc{suffix}_std"] = nan_stats(
                getattr(res, f"{kind}_auc")
            )
        if norm == "paper":  # the unstable denominators, counted and left out
            stable = stable_mask(res, denominator_eps)
            row["paper_unstable_images"] = int((~stable).sum())
            for kind in ("insertion", "deletion"):
                row[f"{kind}_auc_stable_mean"], row[f"{kind}_auc_stable_std"] = nan_stats(
                    getattr(res, f"{kind}_auc")[stable]
                )
            curves = {"insertion": res.insertion_curve.cpu(), "deletion": res.deletion_curve.cpu()}
    return row, {**curves, **per_image}


def paired_differences(
    per_image: dict[str, dict[str, torch.Tensor]], methods: list[str], references: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per-image paired differences of the probability AUCs: method minus reference.

    The methods are scored on the same images, so the image-to-image spread (about 0.2 in
    AUC) cancels in the difference; its standard error says whether a gap is more than noise.

    Args:
        per_image: ``{method: {"insertion_auc_prob": (N,), "deletion_auc_prob": (N,)}}``, as
            :func:`score_attributions` returns them.
        methods: the methods to compare (those absent from ``per_image`` are skipped).
        references: what each method is compared with (``"random"``, ``"ig"``, ...).

    Returns:
        ``{method: {reference: {"insertion_diff", "insertion_se", "deletion_diff",
        "deletion_se", "n"}}}``: mean difference and its standard error over the ``n``
        images where all four AUCs are finite.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in methods:
        if name not in per_image:
            continue
        for ref in references:
            if ref not in per_image or ref == name:
                continue
            diffs = {
                kind: per_image[name][f"{kind}_auc_prob"].double()
                - per_image[ref][f"{kind}_auc_prob"].double()
                for kind in ("insertion", "deletion")
            }
            ok = torch.isfinite(diffs["insertion"]) & torch.isfinite(diffs["deletion"])
            n = int(ok.sum())
            entry: dict[str, float] = {"n": n}
            for kind, d in diffs.items():
                entry[f"{kind}_diff"] = float(d[ok].mean()) if n else float("nan")
                entry[f"{kind}_se"] = float(d[ok].std() / n**0.5) if n > 1 else float("nan")
            out.setdefault(name, {})[ref] = entry
    return out
