"""ParaACE's pairwise interaction detector: UCB over the Hessian's entries (§3.2–3.4).

An arm is a feature pair (i, j); pulling it draws one training row x_ξ uniformly (with
replacement) and returns the local strength g(x_ξ, i, j) = (D_ij F(x_ξ))², the squared four-point
mixed difference of Eq. (1) on standardized features.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simshap.errors import UserError
from simshap.studies.paraace.finite_differences import (
    as_batch_function,
    check_data,
    check_step,
    feature_steps,
    mixed_difference,
)
from simshap.studies.paraace.ucb import UCBResult, ucb_best_k_arms

__all__ = [
    "InteractionDetection",
    "StrengthSampler",
    "all_pairs",
    "detect_interactions",
    "naive_interactions",
]


def all_pairs(p: int) -> list[tuple[int, int]]:
    """The p(p-1)/2 pairs (i, j), i < j, in lexicographic order (the arm order)."""
    return list(itertools.combinations(range(p), 2))


class StrengthSampler:
    """Draws local strengths (D_S F(x_ξ))² of given feature subsets at random training rows.

    Args:
        model: torch module, estimator or callable.
        X: ``(N, p)`` training rows.
        subsets: the arms, feature subsets of one size s.
        h: step on the standardized scale.
        standardize: steps ``h · std_i`` and derivatives w.r.t. standardized features.
        seed: seeds the ``torch.Generator`` of the row draws.
        output: output column for multi-output models.
    """

    def __init__(
        self,
        model: Any,
        X: Any,
        subsets: list[tuple[int, ...]],
        h: float,
        standardize: bool = True,
        seed: int = 0,
        output: int | None = None,
    ) -> None:
        self.x = check_data(X)
        self.F = as_batch_function(model, output)
        self.subsets = torch.as_tensor(np.asarray(subsets, dtype=np.int64)).reshape(
            len(subsets), -1
        )
        self.h = check_step(h)
        self.steps = feature_steps(self.x, self.h, standardize)
        scale = self.steps / self.h
        self.subset_scale = scale[self.subsets].prod(dim=1)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.evaluations = 0

    def __call__(self, arms: np.ndarray) -> np.ndarray:
        """One reward per entry of ``arms`` (a fresh row for each), in one model call."""
        arms_t = torch.as_tensor(np.asarray(arms, dtype=np.int64))
        rows = torch.randint(self.x.shape[0], (len(arms_t),), generator=self.generator)
        d = mixed_difference(self.F, self.x[rows], self.subsets[arms_t], self.steps)
        self.evaluations += len(arms_t) * 2 ** self.subsets.shape[1]
        return ((d * self.subset_scale[arms_t]) ** 2).numpy()


@dataclass
class InteractionDetection:
    """Scores of every pair and the detected top k.

    Attributes:
        pairs: the n = p(p-1)/2 pairs, in arm order.
        scores: ``(n,)`` final mean strength of every pair.
        top_k: the k detected pairs, in the order the search accepted them.
        pulls: total pulls used (initial pulls included).
        naive_pulls: m · n, the pulls of the exhaustive estimate.
        pulls_per_pair: ``(n,)`` pulls of each pair.
        evaluations: model evaluations (4 per pull).
        seconds: wall time of the search.
        k: k.
        h: step.
        m: maximal pulls per pair.
        method: ``"ucb"`` or ``"naive"``.
    """

    pairs: list[tuple[int, int]]
    scores: np.ndarray
    top_k: list[tuple[int, int]]
    pulls: int
    naive_pulls: int
    pulls_per_pair: np.ndarray
    evaluations: int
    seconds: float
    k: int
    h: float
    m: int
    method: str = "ucb"

    @property
    def num_features(self) -> int:
        """P."""
        return max(max(pair) for pair in self.pairs) + 1

    def score_matrix(self) -> np.ndarray:
        """Symmetric ``(p, p)`` matrix of the scores (0 on the diagonal)."""
        p = self.num_features
        mat = np.zeros((p, p))
        for (i, j), s in zip(self.pairs, self.scores, strict=True):
            mat[i, j] = mat[j, i] = s
        return mat

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "method": self.method,
            "k": self.k,
            "h": self.h,
            "m": self.m,
            "pulls": self.pulls,
            "naive_pulls": self.naive_pulls,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "top_k": [list(p) for p in self.top_k],
            "pulls_per_pair": [int(v) for v in self.pulls_per_pair],
            "scores": {
                f"{i},{j}": float(s) for (i, j), s in zip(self.pairs, self.scores, strict=True)
            },
        }


def _check_k(k: int, n_pairs: int, p: int) -> int:
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_pairs:
        raise UserError(
            f"k={k!r} must be an integer between 1 and the {n_pairs} feature pairs of p={p} "
            f"features; choose k <= {n_pairs}"
        )
    return int(k)


def detect_interactions(
    model: Any,
    X: Any,
    k: int = 20,
    h: float = 0.8,
    m: int = 100,
    seed: int = 0,
    n_init: int = 3,
    sigma: float | str = "init_range",
    delta: float | None = None,
    standardize: bool = True,
    output: int | None = None,
) -> InteractionDetection:
    """Detects the k strongest pairwise interactions of ``model`` on data ``X`` (Algorithm 1).

    Args:
        model: a torch module, a scikit-learn / LightGBM estimator, or a callable on a batch
            of rows returning ``(N,)`` or ``(N, C)``.
        X: ``(N, p)`` training rows (the pulls draw from them).
        k: number of pairs to detect (the search stops when k pairs are accepted).
        h: finite-difference step on standardized features (paper: 0.8; use 0.6–0.9).
        m: maximal pulls per pair.
        seed: seed of the row draws.
        n_init: initial pulls per pair (paper: 3).
        sigma: σ of the confidence width: ``"init_range"`` (per arm, from the initial pulls,
            the default), ``"range"`` (per arm, updated with every pull), ``"arm"``, ``"max"``
            (Eq. 2's single σ) or a number (see :mod:`simshap.studies.paraace.ucb`).
        delta: δ (default 2 / (n³ m)).
        standardize: steps ``h · std_i`` (True) or raw ``h`` (False).
        output: output column of multi-output models.

    Returns:
        :class:`InteractionDetection` with every pair's score, the top k and the pulls used.
    """
    x = check_data(X)
    p = x.shape[1]
    pairs = all_pairs(p)
    k = _check_k(k, len(pairs), p)
    sampler = StrengthSampler(model, x, pairs, h, standardize, seed, output)
    start = time.perf_counter()
    res: UCBResult = ucb_best_k_arms(sampler, len(pairs), k, m, n_init, sigma, delta)
    seconds = time.perf_counter() - start
    return InteractionDetection(
        pairs=pairs,
        scores=res.scores,
        top_k=[pairs[a] for a in res.accepted],
        pulls=res.total_pulls,
        naive_pulls=res.naive_pulls,
        pulls_per_pair=res.pulls,
        evaluations=sampler.evaluations,
        seconds=seconds,
        k=k,
        h=sampler.h,
        m=int(m),
    )


def naive_interactions(
    model: Any,
    X: Any,
    k: int = 20,
    h: float = 0.8,
    m: int = 100,
    seed: int = 0,
    standardize: bool = True,
    output: int | None = None,
) -> InteractionDetection:
    """The exhaustive baseline: every pair pulled m times (m · n pulls, one batched call).

    Args:
        model: torch module, estimator or callable.
        X: ``(N, p)`` training rows.
        k: number of top pairs to report.
        h: step on standardized features.
        m: pulls per pair.
        seed: seed of the row draws.
        standardize: see :func:`detect_interactions`.
        output: output column of multi-output models.

    Returns:
        :class:`InteractionDetection` with ``method="naive"``.
    """
    x = check_data(X)
    p = x.shape[1]
    pairs = all_pairs(p)
    k = _check_k(k, len(pairs), p)
    if m < 1:
        raise UserError(f"m={m} must be a positive number of pulls per pair")
    sampler = StrengthSampler(model, x, pairs, h, standardize, seed, output)
    start = time.perf_counter()
    rewards = sampler(np.repeat(np.arange(len(pairs)), m)).reshape(len(pairs), m)
    seconds = time.perf_counter() - start
    scores = rewards.mean(axis=1)
    order = np.argsort(-scores, kind="stable")[:k]
    return InteractionDetection(
        pairs=pairs,
        scores=scores,
        top_k=[pairs[a] for a in order],
        pulls=m * len(pairs),
        naive_pulls=m * len(pairs),
        pulls_per_pair=np.full(len(pairs), m),
        evaluations=sampler.evaluations,
        seconds=seconds,
        k=k,
        h=sampler.h,
        m=int(m),
        method="naive",
    )
