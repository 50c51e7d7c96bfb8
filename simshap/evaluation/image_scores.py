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

__all__ = ["METHOD_LABELS", "NORMALIZATIONS", "score_attributions"]


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
        normalization, on the CPU).
    """
    row: dict[str, Any] = {}
    curves: dict[str, torch.Tensor] = {}
    results = insertion_deletion_all(
        net, x, values, target=target, superpixel_size=superpixel_size,
        normalize=NORMALIZATIONS, batch_size=batch_size,
    )  # one set of forward passes for both normalizations
    for norm, res in results.items():
        suffix = "" if norm == "paper" else "_prob"
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
    return row, curves
