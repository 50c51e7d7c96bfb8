"""Distances between attributions and ground truth (DESIGN.md's l1 / l2 convention)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["attribution_errors", "explained_class_values"]


def explained_class_values(values: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Pick each instance's explained class: ``(N, d, C)``, ``(N,)`` -> ``(N, d)``."""
    if values.ndim != 3 or classes.shape != values.shape[:1]:
        raise ValueError(
            f"expected values (N, d, C) and classes (N,), got {tuple(values.shape)} and "
            f"{tuple(classes.shape)}"
        )
    idx = classes.to(values.device).long().view(-1, 1, 1).expand(-1, values.shape[1], 1)
    return values.gather(2, idx).squeeze(2)


def attribution_errors(
    pred: torch.Tensor, truth: torch.Tensor, classes: torch.Tensor
) -> dict[str, float]:
    """Mean l1 and l2 distance to the ground truth over test instances.

    Per instance, the distance is taken over the d attributions of the explained class (the
    original model's predicted class); the result is the mean over instances.

    Args:
        pred: ``(N, d, C)`` estimated attributions.
        truth: ``(N, d, C)`` ground truth.
        classes: ``(N,)`` explained class per instance.

    Returns:
        ``{"l1", "l2", "rel_l2"}``: ``rel_l2`` is the l2 distance over the truth's own l2 norm
        per instance (mean over instances with a non-zero truth), comparable across models and
        tasks of different scales.
    """
    if pred.shape != truth.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and truth {tuple(truth.shape)} differ")
    want = explained_class_values(truth.double().cpu(), classes.cpu())
    diff = explained_class_values(pred.double().cpu(), classes.cpu()) - want
    dist, norm = diff.pow(2).sum(1).sqrt(), want.pow(2).sum(1).sqrt()
    keep = norm > 0
    rel = float((dist[keep] / norm[keep]).mean()) if bool(keep.any()) else float("nan")
    return {
        "l1": float(diff.abs().sum(1).mean()),
        "l2": float(dist.mean()),
        "rel_l2": rel,
    }


def truth_noise(truth: Any, classes: torch.Tensor) -> dict[str, float]:
    """How noisy a ground truth is, on the explained class.

    ``mean_std``: mean estimated standard error of its entries; ``noise_l2``: mean over
    instances of sqrt(sum_i std_i^2), the l2 distance a perfect method would still show against
    it. Both are 0 for exact ground truth.
    """
    if truth.std is None:
        return {"mean_std": 0.0, "noise_l2": 0.0}
    std = explained_class_values(truth.std.double().cpu(), classes.cpu())
    return {"mean_std": float(std.mean()), "noise_l2": float(std.pow(2).sum(1).sqrt().mean())}
