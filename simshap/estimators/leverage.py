"""Leverage SHAP's sampling (Musco & Witter, ICLR 2025): paired, without replacement, by size.

The leverage score of a coalition S in the Shapley regression is ``1 / C(d, |S|)``, so sizes are
drawn *uniformly*: each size pair ``{s, d-s}`` receives an equal share of complementary pairs
(water-filled: sizes whose share covers all their subsets are enumerated), drawn without
replacement. Each row is reweighted by ``P_kernel(size) / rows drawn of that size``
(Horvitz-Thompson within the size stratum), so the weighted regression is still the
Shapley-kernel objective in expectation.
"""

from __future__ import annotations

import math

import torch

from simshap.estimators.regression import subsets_of_sizes
from simshap.games.sampling import random_subsets_of_size, shapley_kernel_size_probs

__all__ = ["leverage_allocation", "leverage_designs"]


def leverage_allocation(d: int, n_pairs: int) -> list[tuple[int, int, int, float]]:
    """Complementary pairs per size stratum under Leverage SHAP's uniform size law.

    Stratum ``s`` (1 <= s <= d/2) holds the pairs (S, N∖S) with ``|S| = s``: ``C(d, s)`` pairs
    (``C(d, s) / 2`` when ``2s = d``). Each size gets an equal share of ``n_pairs``; strata whose
    share covers all their pairs are enumerated and the rest is shared again (water-filling);
    largest remainders round to integers.

    Returns:
        ``[(s, pairs drawn, pairs in the stratum, Shapley-kernel mass of the stratum), ...]``.
    """
    probs = shapley_kernel_size_probs(d).tolist()
    strata = []
    for s in range(1, d // 2 + 1):
        if 2 * s < d:
            strata.append((s, math.comb(d, s), probs[s - 1] + probs[d - s - 1], 2.0))
        else:
            strata.append((s, math.comb(d, s) // 2, probs[s - 1], 1.0))
    counts: dict[int, float] = {}
    active = list(range(len(strata)))
    left = float(n_pairs)
    while active:
        weight = sum(strata[j][3] for j in active)
        full = [j for j in active if left * strata[j][3] / weight >= strata[j][1]]
        if not full:
            for j in active:
                counts[j] = left * strata[j][3] / weight
            break
        for j in full:
            counts[j] = float(strata[j][1])
            left -= strata[j][1]
            active.remove(j)
    ints = {j: math.floor(c + 1e-9) for j, c in counts.items()}
    extra = round(min(n_pairs, sum(st[1] for st in strata)) - sum(ints.values()))
    for j in sorted(counts, key=lambda j: ints[j] - counts[j])[: max(extra, 0)]:
        ints[j] += 1
    return [(st[0], ints[j], st[1], st[2]) for j, st in enumerate(strata) if ints[j] > 0]


def _distinct_subsets(
    s: int, k: int, d: int, bsz: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``k`` distinct uniform subsets of size ``s`` of ``d`` players per instance: ``(B, k, d)``."""
    src = generator.device if generator is not None else device
    comb = math.comb(d, s)
    if comb <= 20_000:
        allc = subsets_of_sizes(d, [s], src)
        keys = torch.rand(bsz, comb, generator=generator, device=src)
        return allc[keys.topk(k, dim=1).indices].to(device)
    proj = torch.rand(d, generator=generator, device=src, dtype=torch.float64)
    m = k + k * k // comb + 16
    while True:  # rejection of duplicates (rare: comb is large)
        cand = random_subsets_of_size(torch.full((bsz, m), s, device=src), d, generator)
        code, order = (cand.double() @ proj).sort(dim=1)
        dup_sorted = torch.zeros_like(code, dtype=torch.bool)
        dup_sorted[:, 1:] = code[:, 1:] == code[:, :-1]
        dup = torch.zeros_like(dup_sorted).scatter_(1, order, dup_sorted)
        if bool(((~dup).sum(1) >= k).all()):
            key = torch.arange(m, device=src) + dup.long() * m
            pick = key.topk(k, dim=1, largest=False).indices
            return cand.gather(1, pick.unsqueeze(-1).expand(-1, -1, d)).to(device)
        m *= 2


def leverage_designs(
    d: int, n_left: int, bsz: int, generator: torch.Generator | None, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(masks, weights) blocks of paired sampling without replacement by Leverage SHAP's law."""
    out = []
    for s, k, cap, mass in leverage_allocation(d, n_left // 2):
        w_row = mass / (2 * k)  # Horvitz-Thompson within the stratum: kernel objective kept
        if k == cap:  # the stratum is enumerated: the same masks for every instance
            first = subsets_of_sizes(d, [s], device)
            if 2 * s == d:
                first = first[first[:, 0]]
            masks = torch.stack([first, ~first], 1).reshape(-1, d)
            out.append((masks, torch.full((2 * k,), w_row, dtype=torch.float64, device=device)))
            continue
        if 2 * s == d:  # one canonical member per pair: the one holding player 0
            rest = _distinct_subsets(s - 1, k, d - 1, bsz, generator, device)
            first = torch.cat([torch.ones_like(rest[..., :1]), rest], dim=-1)
        else:
            first = _distinct_subsets(s, k, d, bsz, generator, device)
        masks = torch.stack([first, ~first], 2).reshape(bsz, 2 * k, d)
        out.append((masks, torch.full((bsz, 2 * k), w_row, dtype=torch.float64, device=device)))
    return out
