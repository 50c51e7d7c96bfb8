"""Best-k-arms identification by upper confidence bounds (ParaACE's Algorithm 1).

Each arm r has an unknown mean reward μ_r; a pull draws one reward. After ℓ pulls the estimate
μ̂_r is the sample mean and the confidence width is Eq. (2),

    C(ℓ) = sqrt(2 σ² log(2/δ) / ℓ)  if ℓ ≤ m,   C(ℓ) = 0 if ℓ > m,

with δ = 2 / (n³ m) for n arms. Every arm is pulled ``n_init`` times first (one batched call).
Then each iteration picks the arm of S (arms still under consideration) with the highest UCB
(line 5). If that arm has had fewer than m pulls it is pulled once more (lines 6-7); otherwise
its mean is kept as final and its width set to 0 (line 9), so an arm keeps the width C(m)
after its m-th pull until it is picked again. If the arm of the iteration now has an LCB above
the UCB of every other arm of S, it moves to the accepted set B (lines 11-13: only that arm is
tested, so at most one arm is accepted per iteration). The search stops when |B| = k; every
arm's current mean is its score.

σ is the sub-Gaussian parameter of Assumption 2. ``sigma="init_range"`` (the default) is half
the range of each arm's initial rewards, (max − min) / 2, then kept fixed: Hoeffding's lemma
makes a reward in [a, b] (b − a)/2 sub-Gaussian (the reason the paper gives for Assumption 2),
the paper's σ_r are "pre-defined parameters", and Eq. (2)'s width depends on the pull count ℓ
alone. ``sigma="range"`` re-estimates that half range from all of the arm's rewards after every
pull, ``sigma="arm"`` uses the arm's sample standard deviation σ̂_r (updated as it is pulled),
``sigma="max"`` the single σ = max_r σ̂_r of the initial pulls (the σ = max_r σ_r of the paper's
analysis), and a number fixes σ.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simshap.errors import UserError

__all__ = ["UCBResult", "confidence_width", "default_delta", "ucb_best_k_arms"]

PullFn = Callable[[np.ndarray], np.ndarray]


def default_delta(n_arms: int, m: int) -> float:
    """The paper's δ = 2 / (n³ m)."""
    return 2.0 / (float(n_arms) ** 3 * m)


def confidence_width(
    sigma: np.ndarray | float, pulls: np.ndarray, m: int, delta: float
) -> np.ndarray:
    """Eq. (2): C(ℓ) = sqrt(2σ² log(2/δ)/ℓ) for ℓ ≤ m pulls and 0 for ℓ > m.

    Algorithm 1 never pulls an arm beyond m; its line 9 zeroes the width of an arm with m pulls
    when that arm is picked again (see :func:`ucb_best_k_arms`).
    """
    pulls = np.asarray(pulls, dtype=np.float64)
    width = np.sqrt(2.0 * np.square(sigma) * math.log(2.0 / delta) / np.maximum(pulls, 1.0))
    return np.where(pulls > m, 0.0, width)


@dataclass
class UCBResult:
    """Outcome of :func:`ucb_best_k_arms`.

    Attributes:
        accepted: the k accepted arms, in the order they were accepted (strongest first).
        scores: ``(n,)`` every arm's final mean reward μ̂_r.
        pulls: ``(n,)`` pulls of every arm (the initial ones included).
        total_pulls: Σ pulls.
        naive_pulls: m · n, the cost of pulling every arm m times.
        iterations: iterations of Algorithm 1's loop after the initial pulls (one pull each,
            or none when the picked arm already has m pulls).
        accept_trace: total pulls when each arm was accepted.
    """

    accepted: list[int]
    scores: np.ndarray
    pulls: np.ndarray
    total_pulls: int
    naive_pulls: int
    iterations: int
    accept_trace: list[int] = field(default_factory=list)


def _check(n_arms: int, k: int, m: int, n_init: int) -> None:
    if n_arms < 1:
        raise UserError("there must be at least one arm")
    if not 1 <= k <= n_arms:
        raise UserError(
            f"k={k} must be between 1 and the number of arms ({n_arms}); choose k <= {n_arms}"
        )
    if n_init < 2:
        raise UserError(f"n_init={n_init}: each arm needs at least 2 initial pulls to estimate σ")
    if m < n_init:
        raise UserError(f"m={m} must be at least the {n_init} initial pulls per arm")


def ucb_best_k_arms(
    pull: PullFn,
    n_arms: int,
    k: int,
    m: int = 100,
    n_init: int = 3,
    sigma: float | str = "init_range",
    delta: float | None = None,
) -> UCBResult:
    """Finds the k arms with the largest mean reward (Algorithm 1).

    Args:
        pull: ``pull(arms) -> rewards``; draws one fresh reward for each entry of ``arms`` (an
            arm may appear several times) in one batched call.
        n_arms: number of arms n.
        k: number of best arms to identify.
        m: maximal pulls of an arm; once it has m pulls and is picked again, its width is 0.
        n_init: initial pulls of every arm (the paper uses 3).
        sigma: ``"arm"``, ``"range"``, ``"init_range"``, ``"max"`` or a fixed σ (see the module
            docstring).
        delta: confidence level δ (default 2 / (n³ m)).

    Returns:
        :class:`UCBResult`.
    """
    _check(n_arms, k, m, n_init)
    delta = default_delta(n_arms, m) if delta is None else float(delta)
    if not 0 < delta < 1:
        raise UserError(f"delta must be in (0, 1), got {delta}")
    init = pull(np.repeat(np.arange(n_arms), n_init)).reshape(n_arms, n_init).astype(np.float64)
    total = init.sum(axis=1)
    total_sq = np.square(init).sum(axis=1)
    pulls = np.full(n_arms, n_init, dtype=np.int64)
    low, high = init.min(axis=1), init.max(axis=1)
    init_sigma = (high - low) / 2.0  # σ_r from the initial pulls (line 1), then kept fixed

    def sample_std() -> np.ndarray:
        mean = total / pulls
        var = np.maximum(total_sq / pulls - mean**2, 0.0) * pulls / np.maximum(pulls - 1, 1)
        return np.sqrt(var)

    if isinstance(sigma, str):
        if sigma not in ("arm", "range", "init_range", "max"):
            raise UserError(
                "sigma must be 'arm', 'range', 'init_range', 'max' or a positive number, "
                f"got {sigma!r}"
            )
        fixed_sigma = float(sample_std().max()) if sigma == "max" else None
    else:
        if not float(sigma) > 0:
            raise UserError(f"sigma must be positive, got {sigma}")
        fixed_sigma = float(sigma)

    active = np.ones(n_arms, dtype=bool)
    settled = np.zeros(n_arms, dtype=bool)  # line 9 has set C_r = 0 (picked with m pulls)
    accepted: list[int] = []
    trace: list[int] = []
    iterations = 0

    def bounds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean = total / pulls
        if fixed_sigma is not None:
            sig: np.ndarray | float = fixed_sigma
        elif sigma == "range":
            sig = (high - low) / 2.0
        elif sigma == "init_range":
            sig = init_sigma
        else:
            sig = sample_std()
        width = np.where(settled, 0.0, confidence_width(sig, pulls, m, delta))
        return mean, mean - width, mean + width

    while len(accepted) < k:  # line 4
        iterations += 1
        _, _, ucb = bounds()
        cand = np.flatnonzero(active)
        # line 5: the arm of S with the highest UCB; among exact ties, one that can still be
        # pulled, else one whose width line 9 has not yet zeroed (a tie of settled arms is
        # broken by arm order below)
        tied = cand[ucb[cand] == ucb[cand].max()]
        open_ = tied[pulls[tied] < m]
        unsettled = tied[~settled[tied]]
        arm = int(open_[0]) if len(open_) else int(unsettled[0]) if len(unsettled) else int(tied[0])
        if pulls[arm] < m:  # lines 6-7: one more pull of that arm
            reward = float(pull(np.array([arm]))[0])
            total[arm] += reward
            total_sq[arm] += reward**2
            pulls[arm] += 1
            low[arm], high[arm] = min(low[arm], reward), max(high[arm], reward)
        else:  # line 9: the mean of its m pulls is final and C_r = 0
            settled[arm] = True
        _, lcb, ucb = bounds()
        others = cand[cand != arm]
        # line 11: the pulled arm alone is tested; its LCB must beat every other UCB in S
        top_other = ucb[others].max() if len(others) else -np.inf
        exact_tie = (  # settled arms with equal means can never separate: accept in order
            lcb[arm] == top_other
            and settled[arm]
            and bool(settled[others[ucb[others] >= top_other]].all())
        )
        if lcb[arm] > top_other or exact_tie:  # lines 12-13
            active[arm] = False
            accepted.append(arm)
            trace.append(int(pulls.sum()))
    return UCBResult(
        accepted=accepted,
        scores=total / pulls,
        pulls=pulls.copy(),
        total_pulls=int(pulls.sum()),
        naive_pulls=int(m) * n_arms,
        iterations=iterations,
        accept_trace=trace,
    )
