"""A seeded random subset of the zoo, stratified over accuracy buckets, for the explanations.

Explaining every model is the study's second cost after training (all saliency methods and 512
KernelSHAP evaluations per image). When it does not fit the time at hand, the config's
``explain_subset: {per_bucket: k, seed: s}`` explains at most ``k`` models drawn at random
(seeded) from each accuracy bucket, the buckets being those of the *whole* trained zoo (its
percentiles, not the subset's). The analysis then runs within each bucket on that bucket's drawn
models, so every bucket keeps its within-bucket control groups; the row "all" pools the subset,
which over-represents the narrow top buckets relative to the zoo.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from simshap.errors import UserError
from simshap.studies.causal.effects import accuracy_buckets

__all__ = ["stratified_subset", "subset_members"]


def _strata(bounds: Sequence[Sequence[float]]) -> list[Sequence[float]]:
    return [b for b in bounds if (float(b[0]), float(b[1])) != (0.0, 100.0)] or list(bounds)


def stratified_subset(
    accuracy: torch.Tensor, bounds: Sequence[Sequence[float]], per_bucket: int, seed: int
) -> list[int]:
    """Model ids (sorted): at most ``per_bucket`` drawn at random from each bucket.

    The bucket ``[0, 100]`` ("all") is not a stratum; buckets are the zoo's accuracy percentiles.

    Raises:
        UserError: ``per_bucket`` below 2 (a bucket needs treated and control models).
    """
    if per_bucket < 2:
        raise UserError(f"explain_subset.per_bucket must be at least 2, got {per_bucket}")
    gen = torch.Generator().manual_seed(seed)
    chosen: set[int] = set()
    for idx in accuracy_buckets(accuracy, _strata(bounds)):
        pick = torch.randperm(len(idx), generator=gen)[: min(per_bucket, len(idx))]
        chosen.update(int(k) for k in idx[pick])
    return sorted(chosen)


def subset_members(
    accuracy: torch.Tensor, bounds: Sequence[Sequence[float]], ids: Sequence[int]
) -> list[torch.Tensor]:
    """Each bucket of the whole zoo restricted to ``ids``, as positions in ``ids``."""
    pos = {int(k): i for i, k in enumerate(ids)}
    return [
        torch.tensor(sorted(pos[int(k)] for k in idx if int(k) in pos), dtype=torch.long)
        for idx in accuracy_buckets(accuracy, bounds)
    ]
