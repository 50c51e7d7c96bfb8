"""Exact and stochastic Shapley-value estimators (the unified view of Zhang et al.).

All estimators take a game (``simshap.games.values.Game``), work on every instance and output
of the game at once, and return a :class:`ShapleyEstimate` with values ``(B, d, C)``.
Randomness comes from an optional ``torch.Generator``: the same seed gives the same result.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import torch

from simshap.games.sampling import (
    ShapleyKernelSampler,
    random_permutations,
    sample_by_size,
    sample_marginal_coalitions,
    shapley_kernel_gamma,
    shapley_kernel_size_probs,
    shapley_kernel_subset_prob,
    shapley_weight,
)
from simshap.games.values import Game, coalitions_range

__all__ = [
    "ShapleyEstimate",
    "MAX_EXACT_PLAYERS",
    "exact_shapley",
    "kernel_shap",
    "permutation_shapley",
    "semivalue_mc",
    "sim_semivalue",
    "sim_semivalue_target",
    "kernel_shap_budget_plan",
    "check_game",
    "check_positive",
    "constrained_least_squares",
    "evaluate_in_chunks",
    "float_dtype",
    "subsets_of_sizes",
]

MAX_EXACT_PLAYERS = 20


@dataclass
class ShapleyEstimate:
    """Result of every Shapley estimator.

    Attributes:
        values: ``(B, d, C)`` Shapley values per instance, player and output.
        std: ``(B, d, C)`` standard error of ``values`` (``None`` for exact methods).
        n_evals: game evaluations (coalitions) per instance, including v(∅) and v(N).
    """

    values: torch.Tensor
    std: torch.Tensor | None
    n_evals: int


# --------------------------------------------------------------------------- helpers


def check_game(game: Game) -> None:
    """Raise a clear ``TypeError`` unless ``game`` is a simshap ``Game``."""
    if not isinstance(game, Game):
        raise TypeError(
            f"expected a simshap Game (e.g. BaselineGame, MaskedModelGame), got "
            f"{type(game).__name__}"
        )


def check_positive(n: int, name: str) -> None:
    """Raise a clear ``ValueError`` unless ``n`` is a positive integer."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")


def evaluate_in_chunks(game: Game, masks: torch.Tensor, chunk: int) -> torch.Tensor:
    """Evaluate ``(B, M, d)`` (or shared ``(M, d)``) masks ``chunk`` coalitions at a time."""
    m = masks.shape[-2]
    if m <= chunk:
        return game(masks)
    parts = [game(masks[..., i : i + chunk, :]) for i in range(0, m, chunk)]
    return torch.cat(parts, dim=1)


def float_dtype(values: torch.Tensor) -> torch.dtype:
    """The floating dtype to report results in (the values' own, or the default)."""
    return values.dtype if values.is_floating_point() else torch.get_default_dtype()


# --------------------------------------------------------------------------- exact


def exact_shapley(game: Game, batch_size: int = 8192) -> ShapleyEstimate:
    """Exact Shapley values by evaluating all 2^d coalitions once (chunked).

    phi_i = sum_S v(S) [1{i in S} w(|S|-1) - 1{i not in S} w(|S|)] with w(s) = s!(d-s-1)!/d!.

    Args:
        game: the game (d <= 20 players).
        batch_size: coalitions per game call.

    Returns:
        ShapleyEstimate with ``std=None`` and ``n_evals = 2^d``.

    Raises:
        ValueError: if the game has more than ``MAX_EXACT_PLAYERS`` players.
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    d = game.num_players
    if d > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact_shapley enumerates 2^d coalitions: d={d} players would need {2**d:,} "
            f"evaluations per instance (limit d <= {MAX_EXACT_PLAYERS}). Use "
            "kernel_shap(game, threshold=0.01) or permutation_shapley(game, ...) instead."
        )
    device = game.device
    phi = None
    dtype = None
    for start in range(0, 2**d, batch_size):
        masks = coalitions_range(start, min(2**d, start + batch_size), d, device)
        v = game(masks)
        dtype = float_dtype(v)
        s = masks.sum(-1, keepdim=True)
        w_in = shapley_weight(d, (s - 1).clamp(min=0)).to(device)
        w_out = shapley_weight(d, s.clamp(max=d - 1)).to(device)
        coef = torch.where(masks, w_in, -w_out)  # (m, d) float64
        part = torch.einsum("bmc,md->bdc", v.to(torch.float64), coef)
        phi = part if phi is None else phi + part
    return ShapleyEstimate(values=phi.to(dtype), std=None, n_evals=2**d)


# --------------------------------------------------------------------------- KernelSHAP


def kernel_shap_budget_plan(d: int, n_samples: int, paired: bool = True) -> tuple[list[int], int]:
    """Which subset sizes a budget of ``n_samples`` coalitions enumerates completely.

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
    del paired  # the plan does not depend on pairing (sizes are enumerated in pairs anyway)
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
    game: Game,
    n_samples: int | None = None,
    paired: bool = True,
    threshold: float | None = None,
    batch_size: int = 512,
    generator: torch.Generator | None = None,
    enumerate_sizes: bool = True,
    min_rounds: int = 16,
    max_evals: int = 1_000_000,
) -> ShapleyEstimate:
    """KernelSHAP: the Shapley-kernel weighted least-squares value with exact efficiency.

    phi = A⁻¹(b - 1 nu), nu chosen so that 1ᵀphi = v(N) - v(∅), with A = E[z zᵀ] and
    b = E[z (v(S) - v(∅))] estimated from coalitions S ~ p(S) (the Shapley kernel). One batched
    solve covers all instances and outputs.

    With a budget (``threshold=None``): ``n_samples`` coalitions besides ∅ and N (default, as in
    shap, ``2d + 2048``). Whole subset sizes that the budget covers are enumerated
    deterministically (exact weights), the rest is sampled; a budget of ``2^d - 2`` gives the
    exact Shapley values.

    With ``threshold`` (Covert & Lee, 2021): rounds of ``batch_size`` sampled coalitions until
    every instance has max std / (max phi - min phi) < threshold, where std is the standard
    error of the pooled estimate from the spread of independent per-round estimates (at least
    ``min_rounds`` rounds). Each instance keeps the estimate at its own stopping round.

    Args:
        game: the game.
        n_samples: coalition budget besides ∅ and N (budget mode).
        paired: sample complementary pairs.
        threshold: convergence threshold (switches to convergence mode).
        batch_size: coalitions per instance per game call (and per round, at least 4d).
        generator: optional ``torch.Generator``.
        enumerate_sizes: enumerate the sizes the budget covers (budget mode).
        min_rounds: fewest rounds before convergence is tested (convergence mode).
        max_evals: safety cap on evaluations per instance (convergence mode); a warning says
            when it stops the run before convergence.

    Returns:
        ShapleyEstimate; ``std`` is set in convergence mode, ``n_evals`` is the evaluations per
        instance (in convergence mode, the largest over instances).
    """
    check_game(game)
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    v0, v1 = game.empty_and_full()
    dtype = float_dtype(v0)
    total = (v1 - v0).to(torch.float64)
    if d == 1:
        return ShapleyEstimate((v1 - v0).unsqueeze(1), None, 2)
    if threshold is not None:
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold!r}")
        return _kernel_shap_converge(
            game, v0, total, dtype, paired, threshold, batch_size, generator, min_rounds,
            max_evals,
        )

    n_samples = 2 * d + 2048 if n_samples is None else n_samples
    check_positive(n_samples, "n_samples")
    device = game.device
    if enumerate_sizes and d <= 60:
        n_samples = min(n_samples, 2**d - 2)  # a full budget enumerates every coalition
    sizes, n_left = (
        kernel_shap_budget_plan(d, n_samples, paired) if enumerate_sizes else ([], n_samples)
    )
    a = torch.zeros(bsz, d, d, dtype=torch.float64, device=device)
    b = torch.zeros(bsz, d, v0.shape[-1], dtype=torch.float64, device=device)
    n_evals = 2
    if sizes:
        enum = subsets_of_sizes(d, sizes, device)
        w = shapley_kernel_subset_prob(d, enum.sum(-1)).to(device)
        a = a + _gram(enum, w)
        for i in range(0, enum.shape[0], batch_size):
            part = enum[i : i + batch_size]
            v = game(part).to(torch.float64) - v0.to(torch.float64).unsqueeze(1)
            b = b + _moment(part, w[i : i + batch_size], v)
        n_evals += enum.shape[0]
    if n_left > 0 and len(sizes) < d - 1:
        probs = shapley_kernel_size_probs(d).clone()
        if sizes:
            probs[torch.tensor(sizes) - 1] = 0.0
        mass_left = float(probs.sum())
        sampler_args = dict(paired=paired, generator=generator, device=device)
        w_each = torch.full((bsz, n_left), mass_left / n_left, dtype=torch.float64, device=device)
        masks = sample_by_size(probs, n_left, d, batch_shape=(bsz,), **sampler_args)
        v = evaluate_in_chunks(game, masks, batch_size).to(torch.float64)
        v = v - v0.to(torch.float64)[:, None]
        a = a + _gram(masks, w_each)
        b = b + _moment(masks, w_each, v)
        n_evals += n_left
    phi = constrained_least_squares(a, b, total)
    return ShapleyEstimate(values=phi.to(dtype), std=None, n_evals=n_evals)


def _kernel_shap_converge(
    game: Game,
    v0: torch.Tensor,
    total: torch.Tensor,
    dtype: torch.dtype,
    paired: bool,
    threshold: float,
    round_size: int,
    generator: torch.Generator | None,
    min_rounds: int,
    max_evals: int,
) -> ShapleyEstimate:
    d, bsz, c = game.num_players, game.num_instances, v0.shape[-1]
    device = game.device
    sampler = ShapleyKernelSampler(d, paired=paired)
    round_size = max(round_size, 4 * d) + (max(round_size, 4 * d) % 2 if paired else 0)
    f64 = {"dtype": torch.float64, "device": device}
    a_sum, b_sum = torch.zeros(bsz, d, d, **f64), torch.zeros(bsz, d, c, **f64)
    mean_r, m2_r = torch.zeros(bsz, d, c, **f64), torch.zeros(bsz, d, c, **f64)  # Welford
    values = torch.zeros(bsz, d, c, **f64)
    std = torch.full((bsz, d, c), float("inf"), **f64)
    evals = torch.full((bsz,), 2, dtype=torch.long, device=device)
    live = torch.arange(bsz, device=device)  # instances still sampling
    v0 = v0.to(torch.float64)
    rounds = 0
    while True:
        # converged instances stop costing evaluations when the game can be restricted
        sub = game.select(live) if len(live) < bsz and game.supports_select else game
        masks = sampler.sample(
            round_size, generator=generator, device=device, batch_shape=(sub.num_instances,)
        )
        v = sub(masks).to(torch.float64)
        if sub is game and len(live) < bsz:
            masks, v = masks[live], v[live]
        v = v - v0[live].unsqueeze(1)
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
            spread = (phi.amax(dim=(1, 2)) - phi.amin(dim=(1, 2))).clamp_min(1e-300)
            if rounds >= min_rounds:
                live = live[std_now.amax(dim=(1, 2)) / spread >= threshold]
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
    return ShapleyEstimate(values=values.to(dtype), std=std.to(dtype), n_evals=int(evals.max()))


# --------------------------------------------------------------------------- random order value


def permutation_shapley(
    game: Game,
    n_permutations: int,
    antithetic: bool = True,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> ShapleyEstimate:
    """Random order value: average marginal contributions along random permutations.

    Each permutation costs d - 1 new coalitions (v(∅) and v(N) are shared), so
    ``n_evals = n_permutations (d - 1) + 2``.

    Args:
        game: the game.
        n_permutations: permutations per instance.
        antithetic: each permutation followed by its reverse.
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        ShapleyEstimate with the standard error over permutations (over antithetic pairs when
        ``n_permutations`` is even).
    """
    check_game(game)
    check_positive(n_permutations, "n_permutations")
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    v0, v1 = game.empty_and_full()
    perms = random_permutations(
        n_permutations, d, generator, game.device, batch_shape=(bsz,), antithetic=antithetic
    )
    rank = perms.argsort(dim=-1)  # position of each player in each permutation
    prefix = torch.arange(1, d, device=game.device)
    per_call = max(1, batch_size // max(d - 1, 1))
    contribs = []
    for i in range(0, n_permutations, per_call):
        r = rank[:, i : i + per_call]  # (B, p, d)
        p = r.shape[1]
        masks = r.unsqueeze(-2) < prefix.view(-1, 1)  # (B, p, d-1, d)
        v = game(masks.reshape(bsz, p * (d - 1), d)).view(bsz, p, d - 1, -1)
        c = v.shape[-1]
        chain = torch.cat(
            [v0[:, None, None].expand(bsz, p, 1, c), v, v1[:, None, None].expand(bsz, p, 1, c)],
            dim=2,
        )
        step = chain[:, :, 1:] - chain[:, :, :-1]  # contribution of the player at position j
        contribs.append(torch.gather(step, 2, r.unsqueeze(-1).expand(-1, -1, -1, c)))
    contrib = torch.cat(contribs, dim=1)  # (B, P, d, C)
    if antithetic and n_permutations % 2 == 0:
        units = contrib.view(bsz, n_permutations // 2, 2, d, -1).mean(2)
    else:
        units = contrib
    return ShapleyEstimate(
        values=contrib.mean(1),
        std=_standard_error(units),
        n_evals=n_permutations * (d - 1) + 2,
    )


def _standard_error(units: torch.Tensor) -> torch.Tensor | None:
    """Standard error of the mean over axis 1 of iid units ``(B, n, d, C)``."""
    n = units.shape[1]
    if n < 2:
        return None
    return units.std(dim=1) / math.sqrt(n)


# --------------------------------------------------------------------------- semivalue MC


def semivalue_mc(
    game: Game,
    n_samples: int,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> ShapleyEstimate:
    """ApproSemivalue: phi_i = E_{S ⊆ N∖{i}, P(S) = w(|S|)} [v(S ∪ {i}) - v(S)].

    For every player, ``n_samples`` coalitions S are drawn with the Shapley weights
    (:func:`simshap.games.sampling.sample_marginal_coalitions`); each sample costs two
    evaluations, so ``n_evals = 2 d n_samples``.

    Args:
        game: the game.
        n_samples: marginal-contribution samples per player.
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        ShapleyEstimate with the standard error over samples.
    """
    check_game(game)
    check_positive(n_samples, "n_samples")
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    without = sample_marginal_coalitions(
        n_samples, d, generator, game.device, batch_shape=(bsz,)
    )  # (B, n, d, d)
    with_i = without | torch.eye(d, dtype=torch.bool, device=game.device)
    masks = torch.stack([with_i, without], dim=3).reshape(bsz, n_samples * d * 2, d)
    v = evaluate_in_chunks(game, masks, batch_size).view(bsz, n_samples, d, 2, -1)
    diffs = v[:, :, :, 0] - v[:, :, :, 1]  # (B, n, d, C): per-sample targets
    return ShapleyEstimate(
        values=diffs.mean(1), std=_standard_error(diffs), n_evals=2 * d * n_samples
    )


# --------------------------------------------------------------------------- Sim-Semivalue


def sim_semivalue_coefficients(masks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The paper's a_S = gamma (d 1_S - |S| 1) for bool masks ``(..., d)``."""
    d = masks.shape[-1]
    z = masks.to(dtype)
    return shapley_kernel_gamma(d) * (d * z - z.sum(-1, keepdim=True))


def sim_semivalue_target(
    masks: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    centered: bool = True,
) -> torch.Tensor:
    """Sim-Semivalue target (Algorithm 1): phi = (1/M) Σ_k a_{S_k} v(S_k) + (v(N) - v(∅))/d · 1.

    With ``centered=True`` v(S) is replaced by v(S) - v(∅), which keeps the target unbiased
    (E[a_S] = 0) and lowers its variance. Every target is efficient (Σ_i a_{S,i} = 0).
    This is the function the SimSHAP trainer calls, so training and estimation share one formula.

    Args:
        masks: bool ``(B, M, d)`` coalitions drawn from the Shapley kernel (paired or not).
        values: ``(B, M, C)`` their values v(S).
        v_empty: ``(B, C)`` v(∅).
        v_full: ``(B, C)`` v(N).
        centered: subtract v(∅) from v(S).

    Returns:
        ``(B, d, C)`` unbiased estimate of the Shapley values.
    """
    if masks.dtype != torch.bool:
        raise TypeError(f"masks must be bool, got {masks.dtype}")
    if masks.ndim != 3 or values.ndim != 3 or masks.shape[:2] != values.shape[:2]:
        raise ValueError(
            f"masks (B, M, d) and values (B, M, C) must agree on B and M, got "
            f"{tuple(masks.shape)} and {tuple(values.shape)}"
        )
    d, m = masks.shape[-1], masks.shape[1]
    w = values - v_empty.unsqueeze(1) if centered else values
    z = masks.to(w.dtype)
    # Σ_k a_k w_k = gamma (d Σ_k z_k w_k - Σ_k s_k w_k 1) without materialising a_k
    zw = torch.einsum("bmd,bmc->bdc", z, w)
    sw = (z.sum(-1, keepdim=True) * w).sum(1, keepdim=True)  # (B, 1, C)
    mean = shapley_kernel_gamma(d) * (d * zw - sw) / m
    return mean + ((v_full - v_empty) / d).unsqueeze(1)


def sim_semivalue(
    game: Game,
    n_samples: int,
    paired: bool = True,
    centered: bool = True,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> ShapleyEstimate:
    """The paper's Sim-Semivalue estimator with M = ``n_samples`` Shapley-kernel coalitions.

    Args:
        game: the game.
        n_samples: coalitions per instance (besides ∅ and N); ``n_evals = n_samples + 2``.
        paired: draw complementary pairs (a pair contributes ½ a_S (v(S) - v(N∖S))).
        centered: use v(S) - v(∅).
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        ShapleyEstimate with the standard error over samples (over pairs when paired and
        ``n_samples`` is even).
    """
    check_game(game)
    check_positive(n_samples, "n_samples")
    check_positive(batch_size, "batch_size")
    d, bsz = game.num_players, game.num_instances
    if d < 2:
        raise ValueError("sim_semivalue needs at least 2 players")
    v0, v1 = game.empty_and_full()
    masks = ShapleyKernelSampler(d, paired).sample(
        n_samples, generator=generator, device=game.device, batch_shape=(bsz,)
    )
    values = evaluate_in_chunks(game, masks, batch_size)
    phi = sim_semivalue_target(masks, values, v0, v1, centered)
    # standard error from the per-unit terms a_S w(S), without (B, M, d, C) tensors
    w = values - v0.unsqueeze(1) if centered else values
    a = sim_semivalue_coefficients(masks, w.dtype)
    if paired and n_samples % 2 == 0:
        a, w = a[:, 0::2], (w[:, 0::2] - w[:, 1::2]) / 2  # unit = ½ a_S (v(S) - v(N∖S))
    n = a.shape[1]
    std = None
    if n >= 2:
        mean = torch.einsum("bmd,bmc->bdc", a, w) / n
        second = torch.einsum("bmd,bmc->bdc", a**2, w**2) / n
        var = (second - mean**2).clamp_min(0) * n / (n - 1)
        std = (var / n).sqrt()
    return ShapleyEstimate(values=phi, std=std, n_evals=n_samples + 2)
