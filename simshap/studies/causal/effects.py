"""Treatment effects of hyperparameters on predictions and explanations (Karimi et al., Eqs. 1-4).

For hyperparameter i, value n and instance x, Eq. (4) is

    ITE(x; i, n) = E_{h∖i} E_{m≠n} [ Y*_{[h_i=n, h∖i]}(x) − Y*_{[h_i=m, h∖i]}(x) ].

Hyperparameters are drawn independently, so h∖i has the same distribution among the models
with h_i = n (treated) and h_i = m (control); the expectation over h∖i is the average over
those models, and E_{m≠n} weights each control value m equally. Outcomes (softmax vectors,
explanation maps) are compared through the kernelized effect: the squared RKHS distance between
the treated and control mean embeddings, i.e. the (V-statistic) RBF MMD²

    ITE_k(x; i, n) = ‖ Σ_t w_t φ(Y_t(x)) − Σ_c w_c φ(Y_c(x)) ‖²  =  aᵀ K a,

with a = treated weights minus control weights (each summing to one) and K the Gram matrix of
the models' outcomes on x. The RBF bandwidth is the median heuristic (γ = 1 / median pairwise
squared distance among the bucket's models on x), so the identity explanation (E = Y) gets
exactly the Gram matrix of Y and its ITEs equal ITE_Y.

Models are stratified by accuracy first (the paper's 8 percentile buckets, :data:`PAPER_BUCKETS`,
plus all models), and every treated/control contrast is formed within a bucket (within-bucket
control groups). corr(ITE_Y, ITE_E) pools the (treatment value, instance) pairs of a bucket;
confidence intervals come from random halves of the bucket's models (see
:func:`centered_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata

from simshap.errors import UserError

__all__ = [
    "DEFAULT_BUCKETS",
    "PAPER_BUCKETS",
    "accuracy_buckets",
    "analyze",
    "centered_interval",
    "correlations",
    "kernel_ite",
    "mean_difference_ite",
    "mmd2",
    "rbf_gram",
    "treatment_design",
]

# Karimi et al., Sec. 3.2 and Table 2: 0-20, 20-40, 40-60, 60-80, 80-90, 90-95, 95-99 and
# 99-100th percentiles of the zoo's accuracy ("finer granularity for top models")
PAPER_BUCKETS: tuple[tuple[float, float], ...] = (
    (0, 20),
    (20, 40),
    (40, 60),
    (60, 80),
    (80, 90),
    (90, 95),
    (95, 99),
    (99, 100),
)
# the global setting (all models) first, then the paper's buckets
DEFAULT_BUCKETS: tuple[tuple[float, float], ...] = ((0, 100), *PAPER_BUCKETS)


def rbf_gram(
    z: torch.Tensor, gamma: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """RBF Gram matrices of the models' outcomes, one per instance.

    Args:
        z: outcomes ``(n_models, B, ...)`` (flattened after the instance dimension).
        gamma: ``(B,)`` inverse bandwidths; default the median heuristic per instance.

    Returns:
        (``K`` of shape ``(B, n, n)`` with K = exp(-γ‖z_m − z_k‖²), ``gamma`` ``(B,)``).
    """
    n, b = z.shape[:2]
    dtype = torch.promote_types(z.dtype, torch.float32)  # half-precision maps compute in float32
    zz = z.reshape(n, b, -1).transpose(0, 1).to(dtype)  # (B, n, D)
    sq = (zz**2).sum(-1)
    d2 = (sq[:, :, None] + sq[:, None, :] - 2 * zz @ zz.transpose(1, 2)).clamp_min(0.0)
    if gamma is None:
        if n > 1:
            iu = torch.triu_indices(n, n, 1)
            med = d2[:, iu[0], iu[1]].median(dim=1).values
        else:
            med = torch.ones(b, dtype=dtype)
        gamma = 1.0 / torch.where(med > 0, med, torch.ones_like(med))
    return torch.exp(-gamma.to(dtype)[:, None, None] * d2), gamma


def treatment_design(
    codes: torch.Tensor, sizes: Sequence[int], weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Contrast vectors a (treated minus control weights) for every (hyperparameter, value).

    Treated models (h_i = n) share weight 1 equally; the control values m ≠ n that occur share
    weight 1 equally (E_{m≠n}), and within a value its models share it equally. A value with no
    treated model or no control model gives no contrast.

    Args:
        codes: ``(n_models, P)`` grid positions.
        sizes: number of grid values per hyperparameter.
        weights: ``(n_models,)`` multiplicities (bootstrap counts); default ones.

    Returns:
        (``A`` of shape ``(V, n_models)``, labels ``[(i, n), ...]`` of its rows).
    """
    n_models = codes.shape[0]
    w = torch.ones(n_models, dtype=torch.float64) if weights is None else weights.double()
    rows, labels = [], []
    for i, k in enumerate(sizes):
        onehot = (codes[:, i, None] == torch.arange(k)).double() * w[:, None]  # (n, k)
        count = onehot.sum(0)
        present = count > 0
        for v in range(k):
            controls = present.clone()
            controls[v] = False
            if not present[v] or not controls.any():
                continue
            treated = onehot[:, v] / count[v]
            ctrl = (onehot[:, controls] / count[controls]).sum(1) / controls.sum()
            rows.append(treated - ctrl)
            labels.append((i, v))
    a = torch.stack(rows) if rows else torch.zeros(0, n_models, dtype=torch.float64)
    return a, labels


def mean_difference_ite(z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Eq. (4) without a kernel: treated minus control mean outcome, ``(V, B, ...)``."""
    n, b = z.shape[:2]
    return (a @ z.reshape(n, -1).double()).reshape(len(a), b, *z.shape[2:])


def kernel_ite(k: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Kernelized Eq. (4): aᵀ K_x a for every contrast and instance, ``(V, B)``."""
    ak = torch.matmul(a.to(k.dtype)[None], k)  # (B, V, n)
    return (ak * a.to(k.dtype)[None]).sum(-1).T.clamp_min(0.0)


def mmd2(x: torch.Tensor, y: torch.Tensor, gamma: float | None = None) -> float:
    """Biased (V-statistic) RBF MMD² between two sets of vectors ``(n, D)`` and ``(m, D)``.

    With ``gamma=None`` the median heuristic over the pooled set is used. It is exactly zero
    for identical sets.
    """
    z = torch.cat([x, y]).double().reshape(len(x) + len(y), 1, -1)
    g = None if gamma is None else torch.tensor([float(gamma)], dtype=torch.float64)
    k, _ = rbf_gram(z, g)
    a = torch.cat([torch.full((len(x),), 1 / len(x)), torch.full((len(y),), -1 / len(y))])
    return float(kernel_ite(k, a.double()[None])[0, 0])


def correlations(u: torch.Tensor, v: torch.Tensor) -> tuple[float, float]:
    """Pearson and Spearman correlation of two equally long vectors (NaN if either is constant)."""
    u = np.asarray(u, dtype=np.float64).ravel()
    v = np.asarray(v, dtype=np.float64).ravel()
    ok = np.isfinite(u) & np.isfinite(v)
    u, v = u[ok], v[ok]

    def pearson(p: np.ndarray, q: np.ndarray) -> float:
        p, q = p - p.mean(), q - q.mean()
        den = math.sqrt(float((p * p).sum() * (q * q).sum()))
        return float((p * q).sum() / den) if den > 0 else float("nan")

    if len(u) < 3:
        return float("nan"), float("nan")
    return pearson(u, v), pearson(rankdata(u), rankdata(v))


def accuracy_buckets(
    accuracy: torch.Tensor, bounds: Sequence[Sequence[float]]
) -> list[torch.Tensor]:
    """Models in each accuracy-percentile bucket ``[lo, hi)`` (ranked; ties by model index).

    Args:
        accuracy: ``(n_models,)`` test accuracies.
        bounds: ``[(lo, hi), ...]`` percentiles, 0 <= lo < hi <= 100.

    Returns:
        One index tensor per bucket, in accuracy order.

    Raises:
        UserError: malformed bounds, or a bucket that holds no models.
    """
    n = len(accuracy)
    order = torch.as_tensor(np.argsort(np.asarray(accuracy, dtype=np.float64), kind="stable"))
    out = []
    for pair in bounds:
        if len(pair) != 2 or not 0 <= float(pair[0]) < float(pair[1]) <= 100:
            raise UserError(
                f"bucket {list(pair)} must be [lo, hi] percentiles with 0 <= lo < hi <= 100"
            )
        lo, hi = float(pair[0]), float(pair[1])
        start, end = round(lo / 100 * n), round(hi / 100 * n)
        if end <= start:
            raise UserError(
                f"accuracy bucket {lo:g}-{hi:g}% holds no models in a zoo of {n}; train more "
                "models (n_models) or widen the bucket"
            )
        out.append(order[start:end])
    return out


def analyze(
    probs: torch.Tensor,
    explanations: Mapping[str, Mapping[str, torch.Tensor]],
    codes: torch.Tensor,
    sizes: Sequence[int],
    accuracy: torch.Tensor,
    bounds: Sequence[Sequence[float]] = DEFAULT_BUCKETS,
    n_bootstrap: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    members: Sequence[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """ITE_Y, ITE_E (total and direct) and their correlations per bucket and method.

    Args:
        probs: softmax outputs ``(n_models, B, C)``.
        explanations: ``{"total": {method: (n_models, B, ...)}, "direct": {...}}``.
        codes: ``(n_models, P)`` grid positions of the hyperparameters.
        sizes: grid sizes.
        accuracy: ``(n_models,)``.
        bounds: accuracy-percentile buckets.
        n_bootstrap: random halves of each bucket's models (0: no intervals).
        ci: confidence level of the percentile intervals.
        seed: bootstrap seed.
        members: each bucket's models (rows of ``probs``), when the buckets were drawn from a
            larger zoo (:mod:`~simshap.studies.causal.subset`); default: the percentiles of
            ``accuracy``.

    Returns:
        Per bucket: members, accuracy range, contrast labels, ITE_Y and ITE_E arrays ``(V, B)``,
        mean ITEs, and for every method Pearson/Spearman corr(ITE_Y, ITE_E) for the total and
        the direct effect and their difference (the mediated part), each with an interval; the
        paired half-sample draws of the main statistics and of the mean ITEs (for differences
        between methods and buckets).

    Raises:
        UserError: an empty bucket, or a bucket where no hyperparameter value has both treated
            and control models.
    """
    if members is None:
        members = accuracy_buckets(accuracy, bounds)
    gen = torch.Generator().manual_seed(seed)
    methods = list(explanations["total"])
    sources = {"Y": probs}
    for var in ("total", "direct"):
        for m in methods:
            sources[f"{var}/{m}"] = explanations[var][m]
    out: list[dict[str, Any]] = []
    for (lo, hi), idx in zip(bounds, members, strict=True):
        a, labels = treatment_design(codes[idx], sizes)
        if not labels:
            raise UserError(
                f"accuracy bucket {lo:g}-{hi:g}% ({len(idx)} models) has no hyperparameter value "
                "with both treated and control models; train more models or widen the bucket"
            )
        halves = [
            torch.randperm(len(idx), generator=gen)[: (len(idx) + 1) // 2].sort().values
            for _ in range(n_bootstrap)
        ]
        designs = [treatment_design(codes[idx][h], sizes)[0] for h in halves]
        ites: dict[str, torch.Tensor] = {}
        boot_ites: list[dict[str, torch.Tensor]] = [{} for _ in halves]
        for key, z in sources.items():  # one Gram matrix in memory at a time
            gram = rbf_gram(z[idx].float())[0]
            ites[key] = kernel_ite(gram, a)
            for h, design, store in zip(halves, designs, boot_ites, strict=True):
                store[key] = kernel_ite(gram[:, h][:, :, h], design)
            del gram
        point = _corr_table(ites, methods)
        boots = [_corr_table(b, methods) for b in boot_ites]
        stats = {}
        for m in methods:
            stats[m] = {}
            for key, val in point[m].items():
                draws = np.array([b[m][key] for b in boots], dtype=np.float64)
                draws = draws[np.isfinite(draws)]
                bound = 2.0 if key.startswith("mediated") else 1.0
                interval = centered_interval(val, draws, ci, bound)
                stats[m][key] = {"value": val, "ci": interval}
        draw_keys = ("total_pearson", "total_spearman", "mediated_pearson")
        draws_out: dict[str, Any] = {
            m: {k: [float(b[m][k]) for b in boots] for k in draw_keys} for m in methods
        }
        draws_out["mean_ite"] = {
            k: [float(b[k].mean()) if b[k].numel() else float("nan") for b in boot_ites]
            for k in sources
        }
        acc = accuracy[idx]
        out.append(
            {
                "name": "all" if (lo, hi) == (0, 100) else f"{lo:g}-{hi:g}%",
                "bounds": [lo, hi],
                "n_models": len(idx),
                "members": idx.tolist(),
                "accuracy_range": [float(acc.min()), float(acc.max())],
                "accuracy_mean": float(acc.mean()),
                "contrasts": labels,
                "corr": stats,
                "bootstrap_draws": draws_out,
                "mean_ite": {k: float(v.mean()) for k, v in ites.items()},
                "ite": {k: v.float() for k, v in ites.items()},
            }
        )
    return {"methods": methods, "buckets": out, "n_bootstrap": n_bootstrap, "ci": ci}


def centered_interval(
    point: float, draws: Sequence[float], ci: float = 0.95, bound: float = 1.0
) -> list[float]:
    """Half-sampling interval: the spread of the half-sample statistics, centered on θ̂.

    [θ̂ + q_lo − med, θ̂ + q_hi − med] with q the quantiles and med the median of the statistic
    over random halves of the models (drawn without replacement), clipped to [-1, 1].

    Why halves: a bootstrap with replacement duplicates models, and a duplicate is perfectly
    similar to its copy, which inflates every V-statistic MMD² of the resample (for Y and E
    alike) and biases the resampled correlations upward. Half-samples have no duplicates, and a
    statistic over n/2 of n models varies about as much as the statistic over n models varies
    between samples (the delete-d jackknife with d = n/2); the shift that smaller groups cause is
    removed by centering on the median. ``bound`` clips the interval to [-bound, bound]
    (1 for correlations, 2 for differences of correlations).
    """
    d = np.asarray(draws, dtype=np.float64)
    d = d[np.isfinite(d)]
    if not len(d) or not math.isfinite(point):
        return [float("nan"), float("nan")]
    alpha = (1 - ci) / 2
    med = float(np.median(d))
    lo, hi = point + np.quantile(d, alpha) - med, point + np.quantile(d, 1 - alpha) - med
    return [float(np.clip(lo, -bound, bound)), float(np.clip(hi, -bound, bound))]


def _corr_table(ites: Mapping[str, torch.Tensor], methods: Sequence[str]) -> dict[str, Any]:
    y = ites["Y"]
    table: dict[str, dict[str, float]] = {}
    for m in methods:
        row: dict[str, float] = {}
        for var in ("total", "direct"):
            p, s = correlations(y, ites[f"{var}/{m}"])
            row[f"{var}_pearson"], row[f"{var}_spearman"] = p, s
        row["mediated_pearson"] = row["total_pearson"] - row["direct_pearson"]
        row["mediated_spearman"] = row["total_spearman"] - row["direct_spearman"]
        table[m] = row
    return table
