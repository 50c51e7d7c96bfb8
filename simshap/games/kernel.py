"""KernelSHAP: the Shapley-kernel weighted least-squares value with exact efficiency.

Two ways to spend a budget (``sampling=``):

- ``"kernel"``: whole subset sizes the budget covers are enumerated (shap's rule), the rest is
  drawn from the Shapley kernel with replacement (paired or not).
- ``"leverage"``: Leverage SHAP's size law (Musco & Witter, ICLR 2025). The leverage score of a
  coalition is ``1 / C(d, s)``, so the budget is spread *uniformly over sizes*: each size pair
  ``{s, d-s}`` receives an equal share of complementary pairs (water-filled, so sizes whose share
  covers all their subsets are enumerated), drawn *without replacement*. Each row is reweighted
  by ``P_kernel(size) / (rows drawn of that size)`` (Horvitz-Thompson within the size stratum), so
  the regression is still the Shapley-kernel objective.

With ``threshold`` the estimate runs to Covert & Lee's convergence criterion, applied per
class: max over classes of ``max_i std / (max_i phi - min_i phi)`` within that class.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import torch

from simshap.errors import UserError
from simshap.games.budget import (
    check_positive,
    evaluate_in_chunks,
    float_dtype,
    make_result,
    resolve_budget,
)
from simshap.games.contract import (
    call_game,
    can_select,
    check_game,
    coalitions_range,
    empty_and_full,
    game_device,
)
from simshap.games.sampling import (
    ShapleyKernelSampler,
    random_subsets_of_size,
    sample_by_size,
    shapley_kernel_size_probs,
    shapley_kernel_subset_prob,
)
from simshap.shapley_values import ShapleyValues

__all__ = [
    "kernel_shap",
    "kernel_shap_budget_plan",
    "leverage_allocation",
    "convergence_ratio",
    "constrained_least_squares",
    "subsets_of_sizes",
]


def kernel_shap_budget_plan(d: int, n_samples: int) -> tuple[list[int], int]:
    """Which subset sizes ``n_samples`` sampled coalitions (besides ∅ and N) enumerate fully.

    Follows shap's rule: going from the outside in (sizes 1 and d-1, then 2 and d-2, ...), a
    size pair is enumerated when the samples it would receive in expectation cover all of its
    subsets; the rest of the budget is sampled from the remaining sizes.

    Returns:
        (sorted list of enumerated sizes, number of coalitions left to sample).
    """
    n_sizes = math.ceil((d - 1) / 2)
    n_paired_sizes = (d - 1) // 2
    weights = [(d - 1) / (s * (d - s)) for s in range(1, n_sizes + 1)]
    weights = [w * 2 if i < n_paired_sizes else w for i, w in enumerate(weights)]
    total = sum(weights)
    remaining = [w / total for w in weights]
    left = n_samples
    sizes: list[int] = []
    for s in range(1, n_sizes + 1):
        n_subsets = math.comb(d, s) * (2 if s <= n_paired_sizes else 1)
        if left * remaining[s - 1] / n_subsets >= 1.0 - 1e-8:
            sizes += [s, d - s] if s <= n_paired_sizes else [s]
            left -= n_subsets
            if remaining[s - 1] < 1.0:
                remaining = [w / (1.0 - remaining[s - 1]) for w in remaining]
        else:
            break
    return sorted(sizes), max(left, 0)


def subsets_of_sizes(d: int, sizes: list[int], device: torch.device) -> torch.Tensor:
    """All coalitions whose size is in ``sizes``: bool ``(n, d)``."""
    if not sizes:
        return torch.zeros(0, d, dtype=torch.bool, device=device)
    if d <= 20:
        allc = coalitions_range(0, 2**d, d, device)
        return allc[torch.isin(allc.sum(-1), torch.tensor(sizes, device=device))]
    out = []
    for s in sizes:
        k = min(s, d - s)  # enumerate the smaller side, complement if needed
        idx = torch.tensor(list(itertools.combinations(range(d), k)), device=device)
        m = torch.zeros(idx.shape[0], d, dtype=torch.bool, device=device)
        m.scatter_(1, idx.view(idx.shape[0], k), True)
        out.append(m if k == s else ~m)
    return torch.cat(out)


def constrained_least_squares(
    a: torch.Tensor, b: torch.Tensor, total: torch.Tensor
) -> torch.Tensor:
    """Efficiency-constrained least squares: phi = A⁻¹(b - 1 nu) with 1ᵀphi = total, batched.

    A singular A (fewer distinct coalitions than players) gets a small ridge, so that the
    answer stays finite and efficient instead of NaN.

    Args:
        a: ``(B, d, d)`` (or ``(d, d)``) weighted Gram matrix E[z zᵀ].
        b: ``(B, d, C)`` weighted E[z (v(S) - v(∅))].
        total: ``(B, C)`` v(N) - v(∅).
    """
    bsz, d, c = b.shape
    a = a.expand(bsz, d, d)
    rhs = torch.cat([b, torch.ones(bsz, d, 1, dtype=b.dtype, device=b.device)], dim=-1)
    sol, info = torch.linalg.solve_ex(a, rhs)
    bad = (info != 0) | ~torch.isfinite(sol).flatten(1).all(1)
    if bad.any():
        sol = sol.clone()
        ab = a[bad]
        scale = ab.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-300)
        eye = torch.eye(d, dtype=a.dtype, device=a.device)
        sol[bad] = torch.linalg.solve(ab + 1e-6 * scale.view(-1, 1, 1) * eye, rhs[bad])
    a_inv_b, a_inv_1 = sol[..., :c], sol[..., c:]
    nu = (a_inv_b.sum(1) - total) / a_inv_1.sum(1)  # (B, C)
    return a_inv_b - a_inv_1 * nu.unsqueeze(1)


def convergence_ratio(values: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Covert & Lee's per-class criterion: max_c [max_i std / (max_i phi - min_i phi)], ``(B,)``.

    Each class is judged against its own spread (not the spread pooled over classes, which in a
    binary probability game is twice as wide and so about 2x looser).
    """
    spread = (values.amax(1) - values.amin(1)).clamp_min(1e-300)  # (B, C)
    return (std.amax(1) / spread).amax(-1)


def _gram(masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted Σ_k w_k z_k z_kᵀ over the coalition axis (second to last)."""
    z = masks.to(weights.dtype)
    return torch.einsum("...md,...m,...me->...de", z, weights, z)


def _moment(masks: torch.Tensor, weights: torch.Tensor, centered: torch.Tensor) -> torch.Tensor:
    """Weighted Σ_k w_k z_k (v_k - v(∅)): ``(B, d, C)``."""
    z = masks.to(weights.dtype)
    if z.ndim == 2:  # coalitions shared by every instance
        return torch.einsum("md,m,bmc->bdc", z, weights, centered)
    return torch.einsum("bmd,bm,bmc->bdc", z, weights, centered)


def kernel_shap(
    game: Any,
    budget: int | None = None,
    paired: bool = True,
    threshold: float | None = None,
    *,
    sampling: str = "kernel",
    batch_size: int = 512,
    generator: torch.Generator | None = None,
    enumerate_sizes: bool = True,
    min_rounds: int = 16,
    max_evals: int = 1_000_000,
    n_samples: int | None = None,
) -> ShapleyValues:
    """KernelSHAP: the Shapley-kernel weighted least-squares value with exact efficiency.

    phi = A⁻¹(b - 1 nu), nu chosen so that 1ᵀphi = v(N) - v(∅), with A = E[z zᵀ] and
    b = E[z (v(S) - v(∅))] over coalitions S ~ p(S) (the Shapley kernel). One batched solve covers
    all instances and outputs. A budget of ``2^d`` gives the exact Shapley values.

    Args:
        game: any object honoring the game contract.
        budget: game evaluations per instance, v(∅) and v(N) included (default, as in shap,
            ``2d + 2048`` coalitions + 2). Ignored with ``threshold``.
        paired: sample complementary pairs.
        threshold: run to convergence instead (Covert & Lee, per class; see
            :func:`convergence_ratio`): rounds of ``batch_size`` coalitions until every instance
            has ratio < ``threshold`` (after at least ``min_rounds`` rounds).
        sampling: ``"kernel"`` (Shapley-kernel sizes, with replacement) or ``"leverage"``
            (Leverage SHAP's uniform size law, paired, without replacement).
        batch_size: coalitions per instance per game call (and per round, at least 4d).
        generator: optional ``torch.Generator``.
        enumerate_sizes: enumerate the sizes the budget covers (``sampling="kernel"``).
        min_rounds: fewest rounds before convergence is tested.
        max_evals: safety cap on evaluations per instance in convergence mode (a warning says
            when it stops the run early).
        n_samples: deprecated: coalitions besides ∅ and N (``budget = n_samples + 2``).

    Returns:
        ShapleyValues (``method="kernel_shap"``); ``std`` is set in convergence mode, ``n_evals``
        is the evaluations per instance (in convergence mode, the largest over instances).
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    if sampling not in ("kernel", "leverage"):
        raise UserError(f"sampling must be 'kernel' or 'leverage', got {sampling!r}")
    d = game.num_players
    budget = resolve_budget(
        "kernel_shap", budget, 3, "n_samples", n_samples, lambda n: n + 2,
        default=2 * d + 2048 + 2,
    )  # fmt: skip
    v0, v1 = empty_and_full(game)
    total = (v1 - v0).to(torch.float64)
    if d == 1:
        return make_result(game, (v1 - v0).unsqueeze(1), v0, None, 2, "kernel_shap")
    if threshold is not None:
        if not threshold > 0:
            raise UserError(f"threshold must be positive, got {threshold!r}")
        return _converge(game, v0, total, paired, threshold, batch_size, generator, min_rounds,
                         max_evals)  # fmt: skip
    n_left = budget - 2
    if d <= 60:
        n_left = min(n_left, 2**d - 2)  # a full budget enumerates every coalition
    if sampling == "leverage":
        if not paired:
            raise UserError("sampling='leverage' draws complementary pairs; use paired=True")
        designs = _leverage_designs(d, n_left, game.num_instances, generator, game_device(game))
    else:
        designs = _kernel_designs(d, n_left, paired, enumerate_sizes, game.num_instances,
                                  generator, game_device(game))  # fmt: skip
    a = b = None
    n_evals = 2
    v0d = v0.to(torch.float64)
    for masks, w in designs:
        v = evaluate_in_chunks(game, masks, batch_size).to(torch.float64) - v0d.unsqueeze(1)
        a_part, b_part = _gram(masks, w), _moment(masks, w, v)
        a = a_part if a is None else a + a_part
        b = b_part if b is None else b + b_part
        n_evals += masks.shape[-2]
    if a is None:
        a = torch.zeros(d, d, dtype=torch.float64, device=v0.device)
        b = torch.zeros(game.num_instances, d, v0.shape[-1], dtype=torch.float64,
                        device=v0.device)  # fmt: skip
    phi = constrained_least_squares(a, b, total)
    return make_result(game, phi.to(float_dtype(v0)), v0, None, n_evals, "kernel_shap")


def _kernel_designs(
    d: int, n_left: int, paired: bool, enumerate_sizes: bool, bsz: int,
    generator: torch.Generator | None, device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(masks, weights) blocks: enumerated sizes (shared masks) and Shapley-kernel samples."""
    sizes, n_sample = kernel_shap_budget_plan(d, n_left) if enumerate_sizes else ([], n_left)
    out = []
    if sizes:
        enum = subsets_of_sizes(d, sizes, device)
        out.append((enum, shapley_kernel_subset_prob(d, enum.sum(-1)).to(device)))
    if n_sample > 0 and len(sizes) < d - 1:
        probs = shapley_kernel_size_probs(d).clone()
        if sizes:
            probs[torch.tensor(sizes) - 1] = 0.0
        mass_left = float(probs.sum())
        masks = sample_by_size(probs, n_sample, d, paired=paired, generator=generator,
                               device=device, batch_shape=(bsz,))  # fmt: skip
        w = torch.full((bsz, n_sample), mass_left / n_sample, dtype=torch.float64, device=device)
        out.append((masks, w))
    return out


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


def _leverage_designs(
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


def _converge(
    game: Any,
    v0: torch.Tensor,
    total: torch.Tensor,
    paired: bool,
    threshold: float,
    round_size: int,
    generator: torch.Generator | None,
    min_rounds: int,
    max_evals: int,
) -> ShapleyValues:
    d, bsz, c = game.num_players, game.num_instances, v0.shape[-1]
    device = game_device(game)
    sampler = ShapleyKernelSampler(d, paired=paired)
    round_size = max(round_size, 4 * d) + (max(round_size, 4 * d) % 2 if paired else 0)
    f64 = {"dtype": torch.float64, "device": v0.device}
    a_sum, b_sum = torch.zeros(bsz, d, d, **f64), torch.zeros(bsz, d, c, **f64)
    mean_r, m2_r = torch.zeros(bsz, d, c, **f64), torch.zeros(bsz, d, c, **f64)  # Welford
    values = torch.zeros(bsz, d, c, **f64)
    std = torch.full((bsz, d, c), float("inf"), **f64)
    evals = torch.full((bsz,), 2, dtype=torch.long, device=v0.device)
    live = torch.arange(bsz, device=v0.device)  # instances still sampling
    v0d = v0.to(torch.float64)
    rounds = 0
    while True:
        # converged instances stop costing evaluations when the game can be restricted
        restrict = len(live) < bsz and can_select(game)
        sub = game.select(live) if restrict else game
        masks = sampler.sample(round_size, generator=generator, device=device,
                               batch_shape=(sub.num_instances,))  # fmt: skip
        v = call_game(sub, masks).to(torch.float64).to(v0.device)
        masks = masks.to(v0.device)
        if not restrict and len(live) < bsz:
            masks, v = masks[live], v[live]
        v = v - v0d[live].unsqueeze(1)
        ones = torch.ones(len(live), round_size, **f64)
        a_r, b_r = _gram(masks, ones), _moment(masks, ones, v)
        a_sum[live] += a_r
        b_sum[live] += b_r
        rounds += 1
        phi_r = constrained_least_squares(a_r, b_r, total[live])
        delta = phi_r - mean_r[live]
        mean_r[live] += delta / rounds
        m2_r[live] += delta * (phi_r - mean_r[live])
        phi = constrained_least_squares(a_sum[live], b_sum[live], total[live])
        values[live] = phi
        evals[live] += round_size
        if rounds >= 2:
            std_now = (m2_r[live] / (rounds - 1) / rounds).sqrt()
            std[live] = std_now
            if rounds >= min_rounds:
                live = live[convergence_ratio(phi, std_now) >= threshold]
        if len(live) == 0:
            break
        if int(evals.max()) + round_size > max_evals:
            warnings.warn(
                f"kernel_shap stopped at max_evals={max_evals} before every instance reached "
                f"threshold={threshold} ({len(live)} of {bsz} did not); raise max_evals",
                RuntimeWarning,
                stacklevel=3,
            )
            break
    dtype = float_dtype(v0)
    return make_result(game, values.to(dtype), v0, std.to(dtype), int(evals.max()),
                       "kernel_shap")  # fmt: skip
