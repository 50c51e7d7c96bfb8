"""Higher-order interactions from the detected pairs (ParaACE §3.5, Algorithm 2).

The detected pairs are the edges of an undirected graph G on the features. The candidates for
i-way interactions are the i-cliques of G whose every (i-1)-subset was itself detected as an
(i-1)-way interaction (for i = 3 every 3-clique qualifies: its three edges are detected pairs).
The k(i) strongest candidates are found by the same UCB search, with the i-th order mixed
difference (Eq. (8) for i = 3) as the reward.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simshap.errors import UserError
from simshap.studies.paraace.detect import StrengthSampler
from simshap.studies.paraace.finite_differences import check_data
from simshap.studies.paraace.ucb import ucb_best_k_arms

__all__ = ["HigherOrderDetection", "cliques", "detect_higher_order", "refine_candidates"]


def cliques(edges: Iterable[Sequence[int]], size: int) -> list[tuple[int, ...]]:
    """All cliques with ``size`` vertices of the graph with these edges, sorted tuples."""
    if size < 2:
        raise UserError(f"a clique here has at least 2 vertices, got size={size}")
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        if a == b:
            continue
        adj.setdefault(int(a), set()).add(int(b))
        adj.setdefault(int(b), set()).add(int(a))
    level = sorted({tuple(sorted((int(a), int(b)))) for a, b in edges if a != b})
    for _ in range(size - 2):  # grow each clique by a larger vertex adjacent to all of it
        level = [
            (*c, v)
            for c in level
            for v in sorted(set.intersection(*(adj[u] for u in c)))
            if v > c[-1]
        ]
    return level


def refine_candidates(
    cliques_i: Iterable[tuple[int, ...]], detected_lower: Iterable[Sequence[int]]
) -> list[tuple[int, ...]]:
    """C_refine: the cliques whose every (i-1)-subset is a detected (i-1)-way interaction."""
    lower = {tuple(sorted(map(int, t))) for t in detected_lower}
    return [
        c for c in cliques_i if all(sub in lower for sub in itertools.combinations(c, len(c) - 1))
    ]


@dataclass
class HigherOrderDetection:
    """The i-way search of Algorithm 2.

    Attributes:
        order: i.
        candidates: the refined i-cliques searched (the arms).
        scores: ``(len(candidates),)`` final mean i-th order strength of each candidate.
        detected: the k(i) accepted candidates, strongest first.
        pulls: pulls used.
        naive_pulls: m · len(candidates).
        seconds: wall time.
    """

    order: int
    candidates: list[tuple[int, ...]]
    scores: np.ndarray
    detected: list[tuple[int, ...]]
    pulls: int
    naive_pulls: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "order": self.order,
            "detected": [list(t) for t in self.detected],
            "scores": {
                ",".join(map(str, c)): float(s)
                for c, s in zip(self.candidates, self.scores, strict=True)
            },
            "pulls": self.pulls,
            "naive_pulls": self.naive_pulls,
            "seconds": self.seconds,
        }


def detect_higher_order(
    model: Any,
    X: Any,
    pairs: Sequence[Sequence[int]],
    k: int | Mapping[int, int] = 5,
    max_order: int = 3,
    h: float = 0.8,
    m: int = 100,
    seed: int = 0,
    n_init: int = 3,
    sigma: float | str = "init_range",
    standardize: bool = True,
    output: int | None = None,
) -> list[HigherOrderDetection]:
    """Algorithm 2 from line 2 on: i-way interactions for i = 3 … ``max_order``.

    Args:
        model: torch module, estimator or callable.
        X: ``(N, p)`` training rows.
        pairs: the detected pairwise interactions (e.g. ``detect_interactions(...).top_k``).
        k: k(i), the number of i-way interactions to detect (one number for every order, or a
            mapping order -> k(i)); capped at the number of candidates.
        max_order: largest interaction order (the paper advises against going beyond 4).
        h: step on standardized features.
        m: maximal pulls per candidate.
        seed: seed of the row draws.
        n_init: initial pulls per candidate.
        sigma: σ of the confidence width (see :mod:`simshap.studies.paraace.ucb`).
        standardize: see :func:`~simshap.studies.paraace.detect_interactions`.
        output: output column of multi-output models.

    Returns:
        One :class:`HigherOrderDetection` per order searched (stops early when no candidate is
        left).
    """
    x = check_data(X)
    p = x.shape[1]
    if max_order < 3:
        raise UserError(f"max_order must be at least 3, got {max_order}")
    for pr in pairs:
        if len(pr) != 2 or not all(0 <= int(v) < p for v in pr):
            raise UserError(f"pairs must be (i, j) feature indices in 0..{p - 1}, got {pr}")
    results: list[HigherOrderDetection] = []
    detected_lower: list[tuple[int, ...]] = [tuple(sorted(map(int, pr))) for pr in pairs]
    edges = list(detected_lower)
    for order in range(3, max_order + 1):
        cand = refine_candidates(cliques(edges, order), detected_lower)
        if not cand:
            break
        k_i = k[order] if isinstance(k, Mapping) else k
        if int(k_i) < 1:
            raise UserError(f"k({order}) must be positive, got {k_i}")
        k_i = min(int(k_i), len(cand))
        sampler = StrengthSampler(model, x, cand, h, standardize, seed + order, output)
        start = time.perf_counter()
        res = ucb_best_k_arms(sampler, len(cand), k_i, m, n_init, sigma)
        found = [cand[a] for a in res.accepted]
        results.append(
            HigherOrderDetection(
                order=order,
                candidates=cand,
                scores=res.scores,
                detected=found,
                pulls=res.total_pulls,
                naive_pulls=res.naive_pulls,
                seconds=time.perf_counter() - start,
            )
        )
        detected_lower = found
    return results
