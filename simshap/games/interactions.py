"""Shapley interaction indices: Möbius, SII, k-SII, STII, FSII and faithfulness R².

Exact computation evaluates the game once on all 2^n coalitions (chunked, shared masks), then
works on the ``(B, 2^n, C)`` table with fast subset transforms on the game's device:

* Möbius coefficients m(T) = Σ_{S ⊆ T} (-1)^{|T|-|S|} v(S) by the fast Möbius transform
  (n in-place butterfly passes, O(n 2^n)); the zeta transform is its inverse.
* SII, STII and k-SII are linear in the Möbius coefficients with weights that depend only on
  |T| and |S ∖ T|:  index(T) = Σ_j a_{|T|}(j) L_j(T) with L_j(T) = Σ_{S ⊇ T, |S∖T| = j} m(S).
  The "ranked" superset sums L_j are one more O(n² 2^n) butterfly transform:

  - SII:   a_t(j) = 1 / (j + 1)
  - STII:  Möbius below the top order; a_k(j) = 1 / C(k + j, k) at the top order k
  - k-SII: a_t(j) = Σ_{r=t}^{min(k, t+j)} C(j, r-t) B_{r-t} / (t + j - r + 1)  (Bernoulli B)

* FSII of order k is the Shapley-kernel weighted least squares over all coalitions with v(∅) and
  v(N) as equality constraints. Its normal equations over the interaction basis never need the
  2^n x 2^n design: the Gram entry of T, T' is g(|T ∪ T'|) = Σ_s p(s) C(n - u, s - u) (closed
  form) and the right-hand side is a weighted superset sum of v(S) - v(∅) (one O(n 2^n) pass).

Conventions follow shapiq 1.4.1's ``ExactComputer``: the empty interaction holds v(∅) for
Moebius, k-SII, STII, FSII and SV (and SII of order 1, which is SV), and Σ_S m(S) / (|S| + 1)
for SII of higher order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from simshap.games.contract import Game, empty_and_full, game_device
from simshap.games.estimators import (
    MAX_EXACT_PLAYERS,
    check_game,
    check_positive,
    coalitions_range,
    constrained_least_squares,
    evaluate_in_chunks,
    float_dtype,
    kernel_shap_budget_plan,
    subsets_of_sizes,
)
from simshap.games.sampling import (
    sample_by_size,
    shapley_kernel_size_probs,
    shapley_kernel_subset_prob,
)

__all__ = [
    "INDICES",
    "InteractionValues",
    "ExactInteractionComputer",
    "exact_interactions",
    "faithfulness_r2",
    "approx_fsii",
    "interaction_basis",
    "moebius_transform",
    "zeta_transform",
    "superset_transform",
]

INDICES: tuple[str, ...] = ("Moebius", "SII", "k-SII", "STII", "FSII", "SV")

# bytes a ranked transform may allocate at once (chunks over instances x outputs beyond this)
_RANKED_MEMORY = 256 * 2**20


# --------------------------------------------------------------------------- subset transforms


def _butterfly(x: torch.Tensor, n: int, op: str) -> torch.Tensor:
    """In-place passes over the coalition axis (last) of ``x`` (R, 2^n); returns ``x``."""
    r = x.shape[0]
    for i in range(n):
        v = x.view(r, 2 ** (n - 1 - i), 2, 2**i)
        if op == "zeta":  # f(T) <- Σ_{S ⊆ T} f(S)
            v[:, :, 1].add_(v[:, :, 0])
        elif op == "moebius":  # inverse of zeta
            v[:, :, 1].sub_(v[:, :, 0])
        else:  # "superset": f(T) <- Σ_{S ⊇ T} f(S)
            v[:, :, 0].add_(v[:, :, 1])
    return x


def _to_rows(table: torch.Tensor) -> torch.Tensor:
    """``(B, 2^n, C)`` -> contiguous float64 ``(B*C, 2^n)`` copy."""
    b, m, c = table.shape
    return table.to(torch.float64).permute(0, 2, 1).reshape(b * c, m).clone()


def _from_rows(rows: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """``(B*C, K)`` -> ``(B, K, C)``."""
    return rows.view(b, c, -1).permute(0, 2, 1)


def _check_table(table: torch.Tensor) -> int:
    if table.ndim != 3:
        raise ValueError(f"table must be (B, 2^n, C), got shape {tuple(table.shape)}")
    n = int(round(math.log2(max(table.shape[1], 1))))
    if 2**n != table.shape[1]:
        raise ValueError(f"the table's second axis must have length 2^n, got {table.shape[1]}")
    return n


def moebius_transform(table: torch.Tensor) -> torch.Tensor:
    """Möbius coefficients of every coalition, O(n 2^n).

    Args:
        table: ``(B, 2^n, C)`` game values, coalition index with bit i = player i.

    Returns:
        float64 ``(B, 2^n, C)``: entry T is m(T) = Σ_{S ⊆ T} (-1)^{|T|-|S|} v(S).
    """
    n = _check_table(table)
    b, _, c = table.shape
    return _from_rows(_butterfly(_to_rows(table), n, "moebius"), b, c)


def zeta_transform(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`moebius_transform`: v(S) = Σ_{T ⊆ S} m(T), O(n 2^n).

    Args:
        coefficients: ``(B, 2^n, C)`` values per coalition index.

    Returns:
        float64 ``(B, 2^n, C)`` subset sums.
    """
    n = _check_table(coefficients)
    b, _, c = coefficients.shape
    return _from_rows(_butterfly(_to_rows(coefficients), n, "zeta"), b, c)


def superset_transform(values: torch.Tensor) -> torch.Tensor:
    """Superset sums f(T) = Σ_{S ⊇ T} values(S), O(n 2^n).

    Args:
        values: ``(B, 2^n, C)`` values per coalition index.

    Returns:
        float64 ``(B, 2^n, C)``.
    """
    n = _check_table(values)
    b, _, c = values.shape
    return _from_rows(_butterfly(_to_rows(values), n, "superset"), b, c)


def _ranked_superset(rows: torch.Tensor, n: int, index: torch.Tensor) -> torch.Tensor:
    """L_j(T) = Σ_{S ⊇ T, |S∖T| = j} f(S) for the coalitions ``index``.

    Args:
        rows: ``(R, 2^n)`` float64 values f.
        n: number of players.
        index: ``(p,)`` coalition indices T to return.

    Returns:
        ``(R, p, n + 1)``: axis 2 is j.
    """
    r = rows.shape[0]
    per_row = (2**n) * (n + 1) * 8
    chunk = max(1, _RANKED_MEMORY // per_row)
    out = []
    for start in range(0, r, chunk):
        part = rows[start : start + chunk]
        k = part.shape[0]
        x = torch.zeros(k, 2**n, n + 1, dtype=torch.float64, device=rows.device)
        x[:, :, 0] = part
        for i in range(n):
            v = x.view(k, 2 ** (n - 1 - i), 2, 2**i, n + 1)
            v[:, :, 0, :, 1:].add_(v[:, :, 1, :, :-1])
        out.append(x[:, index])
    return torch.cat(out)


# --------------------------------------------------------------------------- interaction basis


@dataclass(frozen=True)
class _Basis:
    """All interactions of size min_order..max_order among n players, in shapiq's order."""

    n: int
    tuples: tuple[tuple[int, ...], ...]
    index: torch.Tensor  # (p,) coalition index of each interaction
    sizes: torch.Tensor  # (p,)
    members: torch.Tensor  # (p, n) bool


def interaction_basis(
    n: int, max_order: int, min_order: int = 0, device: torch.device | str | None = None
) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Interactions of size ``min_order..max_order``, by size then lexicographically.

    Args:
        n: number of players.
        max_order: largest interaction size.
        min_order: smallest interaction size.
        device: device of the returned membership matrix.

    Returns:
        (list of player tuples, bool membership matrix ``(p, n)``).
    """
    basis = _make_basis(n, max_order, min_order, torch.device(device or "cpu"))
    return list(basis.tuples), basis.members


def _make_basis(n: int, max_order: int, min_order: int, device: torch.device) -> _Basis:
    sizes = range(min_order, max_order + 1)
    tuples = tuple(t for size in sizes for t in itertools.combinations(range(n), size))
    members = torch.zeros(len(tuples), n, dtype=torch.bool)
    flat_rows = [i for i, t in enumerate(tuples) for _ in t]
    flat_cols = [p for t in tuples for p in t]
    members[flat_rows, flat_cols] = True
    members = members.to(device)
    bits = 1 << torch.arange(n, device=device)
    index = (members.long() * bits).sum(-1)
    return _Basis(n, tuples, index, members.sum(-1), members)


# --------------------------------------------------------------------------- InteractionValues


@dataclass
class InteractionValues:
    """Interaction values of every instance and output, addressed by player tuples.

    ``iv[(0, 2)]`` returns the ``(B, C)`` values of the interaction of players 0 and 2 (tuples
    are sorted first, so ``iv[(2, 0)]`` is the same); ``iv[()]`` is the empty interaction.

    Attributes:
        values: ``(B, p, C)`` values, interaction axis in the order of ``interactions``.
        interactions: the p player tuples (by size, then lexicographic).
        index: "Moebius", "SII", "k-SII", "STII", "FSII" or "SV".
        order: largest interaction size (shapiq's ``max_order``).
        n_players: number of players n.
        baseline_value: ``(B, C)`` value of the empty coalition v(∅).
        min_order: smallest interaction size present.
        estimated: whether the values come from a sampled approximation.
        n_evals: game evaluations per instance used to compute them.
    """

    values: torch.Tensor
    interactions: list[tuple[int, ...]]
    index: str
    order: int
    n_players: int
    baseline_value: torch.Tensor
    min_order: int = 0
    estimated: bool = False
    n_evals: int | None = None
    lookup: dict[tuple[int, ...], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[1] != len(self.interactions):
            raise ValueError(
                f"values must be (B, p, C) with p = {len(self.interactions)} interactions, got "
                f"{tuple(self.values.shape)}"
            )
        self.lookup = {t: i for i, t in enumerate(self.interactions)}

    @property
    def num_instances(self) -> int:
        """Number of instances B."""
        return self.values.shape[0]

    @property
    def num_outputs(self) -> int:
        """Number of outputs C."""
        return self.values.shape[2]

    def __len__(self) -> int:
        return len(self.interactions)

    def __contains__(self, players: object) -> bool:
        return isinstance(players, Iterable) and tuple(sorted(players)) in self.lookup

    def __getitem__(self, players: Iterable[int]) -> torch.Tensor:
        """Values ``(B, C)`` of one interaction given as a tuple of players."""
        key = tuple(sorted(int(p) for p in players))
        if key not in self.lookup:
            raise KeyError(
                f"interaction {key} is not in these {self.index} values (players 0.."
                f"{self.n_players - 1}, sizes {self.min_order}..{self.order})"
            )
        return self.values[:, self.lookup[key]]

    def get_order(self, order: int) -> InteractionValues:
        """The interactions of exactly size ``order`` (a new object sharing no storage)."""
        if not self.min_order <= order <= self.order:
            raise ValueError(
                f"order must be in {self.min_order}..{self.order} for these values, got {order}"
            )
        keep = [i for i, t in enumerate(self.interactions) if len(t) == order]
        return InteractionValues(
            values=self.values[:, keep].clone(),
            interactions=[self.interactions[i] for i in keep],
            index=self.index,
            order=order,
            n_players=self.n_players,
            baseline_value=self.baseline_value.clone(),
            min_order=order,
            estimated=self.estimated,
            n_evals=self.n_evals,
        )

    def to_dict(self, instance: int = 0, output: int = 0) -> dict[tuple[int, ...], float]:
        """``{players: value}`` for one instance and output."""
        col = self.values[instance, :, output].tolist()
        return dict(zip(self.interactions, col, strict=True))

    def top_k(
        self, k: int, instance: int = 0, output: int = 0, include_empty: bool = False
    ) -> list[tuple[tuple[int, ...], float]]:
        """The ``k`` interactions with the largest absolute value, largest first.

        Args:
            k: how many to return.
            instance: which instance.
            output: which output.
            include_empty: also rank the empty interaction.

        Returns:
            list of (players, value).
        """
        check_positive(k, "k")
        items = [
            (t, v) for t, v in self.to_dict(instance, output).items() if include_empty or t
        ]
        items.sort(key=lambda tv: (-abs(tv[1]), len(tv[0]), tv[0]))
        return items[:k]

    def to_shapiq(self, instance: int = 0, output: int = 0) -> Any:
        """One instance and output as a ``shapiq.InteractionValues`` (needs shapiq installed)."""
        try:
            import shapiq
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "to_shapiq() needs shapiq: pip install 'shapiq==1.4.1'"
            ) from err
        import numpy as np

        return shapiq.InteractionValues(
            values=np.asarray(self.values[instance, :, output].detach().cpu(), dtype=float),
            index=self.index,
            max_order=self.order,
            min_order=self.min_order,
            n_players=self.n_players,
            interaction_lookup=dict(self.lookup),
            estimated=self.estimated,
            estimation_budget=self.n_evals,
            baseline_value=float(self.baseline_value[instance, output]),
        )

    @classmethod
    def from_shapiq(cls, iv: Any) -> InteractionValues:
        """Build from a ``shapiq.InteractionValues`` (one instance, one output)."""
        n = int(iv.n_players)
        tuples = list(
            _make_basis(n, int(iv.max_order), int(iv.min_order), torch.device("cpu")).tuples
        )
        vals = torch.tensor([float(iv[t]) for t in tuples], dtype=torch.float64)
        return cls(
            values=vals.view(1, -1, 1),
            interactions=tuples,
            index=str(iv.index),
            order=int(iv.max_order),
            n_players=n,
            baseline_value=torch.tensor([[float(iv.baseline_value)]], dtype=torch.float64),
            min_order=int(iv.min_order),
            estimated=bool(iv.estimated),
            n_evals=iv.estimation_budget,
        )


# --------------------------------------------------------------------------- weights


def _bernoulli(k: int) -> list[float]:
    """Bernoulli numbers B_0..B_k with B_1 = -1/2 (Akiyama–Tanigawa recurrence)."""
    out = []
    for m in range(k + 1):
        b = 0.0 if m > 0 else 1.0
        if m > 0:
            b = -sum(math.comb(m + 1, j) * out[j] for j in range(m)) / (m + 1)
        out.append(b)
    return out


def _rank_weights(index: str, n: int, order: int) -> torch.Tensor:
    """Weights a_t(j) of L_j(T) for interaction size t (rows 0..order) and j (cols 0..n)."""
    a = torch.zeros(order + 1, n + 1, dtype=torch.float64)
    if index in ("SII", "SV"):
        for t in range(order + 1):
            for j in range(n - t + 1):
                a[t, j] = 1.0 / (j + 1)
    elif index == "Moebius":
        a[:, 0] = 1.0
    elif index == "STII":
        a[:order, 0] = 1.0
        for j in range(n - order + 1):
            a[order, j] = 1.0 / math.comb(order + j, order)
    elif index == "k-SII":
        bern = _bernoulli(order)
        a[0, 0] = 1.0  # the empty interaction is v(∅) = m(∅)
        for t in range(1, order + 1):
            for j in range(n - t + 1):
                a[t, j] = sum(
                    math.comb(j, r - t) * bern[r - t] / (t + j - r + 1)
                    for r in range(t, min(order, t + j) + 1)
                )
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(index)
    return a


def _fsii_gram(n: int, basis: _Basis) -> torch.Tensor:
    """Σ_S p(S) 1{T ⊆ S} 1{T' ⊆ S} over proper non-empty S for the basis (closed form)."""
    g = torch.zeros(n + 1, dtype=torch.float64)
    for u in range(n + 1):
        g[u] = sum(
            shapley_kernel_subset_prob(n, s) * math.comb(n - u, s - u)
            for s in range(max(u, 1), n)
        )
    m = basis.members.to(torch.float64)
    inter = m @ m.T
    union = (basis.sizes[:, None] + basis.sizes[None, :]).to(torch.float64) - inter
    return g.to(m.device)[union.long()]


# --------------------------------------------------------------------------- exact computer


def _check_index(index: str, order: int | None, n: int) -> tuple[str, int]:
    if index not in INDICES:
        raise ValueError(f"unknown interaction index {index!r}; choose one of {INDICES}")
    if index == "SV":
        if order not in (None, 1):
            raise ValueError(f"'SV' is the order-1 index; got order={order}")
        return index, 1
    order = n if order is None else order
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= n:
        raise ValueError(f"order must be an integer in 1..{n} (number of players), got {order!r}")
    return index, order


class ExactInteractionComputer:
    """Evaluates a game once on all 2^n coalitions and computes any index from that table.

    Args:
        game: a :class:`~simshap.games.values.Game` (n <= 20 players) or a ``(B, 2^n, C)``
            table of coalition values (coalition index: bit i = player i).
        batch_size: coalitions per game call.

    Attributes:
        table: ``(B, 2^n, C)`` float64 game values.
        n_players: n.
    """

    def __init__(self, game: Game | torch.Tensor, batch_size: int = 16384) -> None:
        check_positive(batch_size, "batch_size")
        if isinstance(game, torch.Tensor):
            n = _check_table(game)
            self.dtype = float_dtype(game)
            self.table = game.to(torch.float64)
        else:
            check_game(game)
            n = game.num_players
            if n > MAX_EXACT_PLAYERS:
                raise ValueError(
                    f"exact interactions enumerate 2^n coalitions: n={n} players would need "
                    f"{2**n:,} evaluations per instance (limit n <= {MAX_EXACT_PLAYERS}); use "
                    "approx_fsii(game, order, budget) instead"
                )
            masks = coalitions_range(0, 2**n, n, game_device(game))
            values = evaluate_in_chunks(game, masks, batch_size)
            self.dtype = float_dtype(values)
            self.table = values.to(torch.float64)
        self.n_players = n
        self.device = self.table.device
        self._moebius_rows: torch.Tensor | None = None
        self._fsii_cache: dict[int, InteractionValues] = {}

    @property
    def num_instances(self) -> int:
        """B."""
        return self.table.shape[0]

    @property
    def num_outputs(self) -> int:
        """C."""
        return self.table.shape[2]

    @property
    def baseline_value(self) -> torch.Tensor:
        """v(∅), ``(B, C)``."""
        return self.table[:, 0]

    def moebius_rows(self) -> torch.Tensor:
        """Möbius coefficients as float64 ``(B*C, 2^n)`` (computed once)."""
        if self._moebius_rows is None:
            self._moebius_rows = _butterfly(_to_rows(self.table), self.n_players, "moebius")
        return self._moebius_rows

    def moebius(self) -> torch.Tensor:
        """Möbius coefficients ``(B, 2^n, C)`` by coalition index."""
        return _from_rows(self.moebius_rows(), self.num_instances, self.num_outputs)

    def _wrap(self, index: str, order: int, basis: _Basis, rows: torch.Tensor) -> InteractionValues:
        vals = _from_rows(rows, self.num_instances, self.num_outputs).to(self.dtype)
        return InteractionValues(
            values=vals,
            interactions=list(basis.tuples),
            index=index,
            order=order,
            n_players=self.n_players,
            baseline_value=self.baseline_value.to(self.dtype),
            n_evals=2**self.n_players,
        )

    def __call__(self, index: str, order: int | None = None) -> InteractionValues:
        """Compute ``index`` up to interaction size ``order`` (default n; SV: 1).

        Args:
            index: one of :data:`INDICES`.
            order: largest interaction size.

        Returns:
            InteractionValues with every interaction of size 0..order.
        """
        index, order = _check_index(index, order, self.n_players)
        n = self.n_players
        if index == "FSII":
            return self.fsii(order)
        basis = _make_basis(n, order, 0, self.device)
        m = self.moebius_rows()
        if index == "Moebius":
            return self._wrap(index, order, basis, m[:, basis.index])
        ranked = _ranked_superset(m, n, basis.index)  # (R, p, n + 1)
        a = _rank_weights(index, n, order).to(self.device)[basis.sizes]  # (p, n + 1)
        rows = (ranked * a).sum(-1)
        if order == 1:  # SV (and SII of order 1, which is SV): shapiq stores v(∅) as the empty
            rows[:, 0] = m[:, 0]
        return self._wrap(index, order, basis, rows)

    def fsii(self, order: int) -> InteractionValues:
        """Faithful Shapley interaction index of order ``order`` (exact, constrained WLS).

        The Shapley-kernel weighted squared error Σ_S p(S) (v(S) - Σ_{T ⊆ S} β_T)² over proper
        non-empty S is minimised subject to β_∅ = v(∅) and Σ_T β_T = v(N). For order n the
        solution is the Möbius transform itself (zero error).
        """
        _, order = _check_index("FSII", order, self.n_players)
        if order in self._fsii_cache:
            return self._fsii_cache[order]
        n = self.n_players
        basis = _make_basis(n, order, 0, self.device)
        if order == n:
            rows = self.moebius_rows()[:, basis.index]
        else:
            sizes = torch.arange(n + 1, device=self.device)
            w = shapley_kernel_subset_prob(n, sizes).to(self.device)  # 0 for ∅ and N
            v0 = self.table[:, :1]
            weighted = (self.table - v0) * w[_popcount(n, self.device)][None, :, None]
            rhs = _butterfly(_to_rows(weighted), n, "superset")[:, basis.index[1:]]
            gram = _fsii_gram(n, _make_basis(n, order, 1, self.device))
            b, c = self.num_instances, self.num_outputs
            rhs = rhs.view(b, c, -1).permute(0, 2, 1)  # (B, p - 1, C)
            total = self.table[:, -1] - self.table[:, 0]
            beta = constrained_least_squares(gram, rhs, total)  # (B, p - 1, C)
            rows = torch.cat([_to_rows(self.table[:, :1]), _to_rows(beta)], dim=1)
        iv = self._wrap("FSII", order, basis, rows)
        self._fsii_cache[order] = iv
        return iv

    def r2(self, order: int) -> torch.Tensor:
        """Shapley-weighted faithfulness R² of the order-``order`` FSII, ``(B, C)``.

        R²(k) = 1 - Σ_S p(S) (v(S) - v̂_k(S))² / Σ_S p(S) (v(S) - v̄)², with p the Shapley kernel
        on proper non-empty coalitions, v̂_k(S) = Σ_{T ⊆ S} FSII_k(T) (a zeta transform) and v̄
        the p-weighted mean of v. ∅ and N are reproduced exactly by FSII. A constant game
        (zero total sum of squares) has R² = 1.
        """
        iv = self.fsii(order)
        n = self.n_players
        b, c = self.num_instances, self.num_outputs
        coef = torch.zeros(b * c, 2**n, dtype=torch.float64, device=self.device)
        coef[:, _make_basis(n, order, 0, self.device).index] = _to_rows(iv.values)
        recon = _butterfly(coef, n, "zeta")
        true = _to_rows(self.table)
        w = shapley_kernel_subset_prob(n, _popcount(n, self.device))
        w = (w / w.sum()).to(self.device)
        sse = ((true - recon) ** 2 * w).sum(-1)
        mean = (true * w).sum(-1, keepdim=True)
        sst = ((true - mean) ** 2 * w).sum(-1)
        r2 = torch.where(sst > 0, 1.0 - sse / sst.clamp_min(1e-300), torch.ones_like(sst))
        return r2.view(b, c).to(self.dtype)

    def r2_curve(self, max_order: int | None = None) -> torch.Tensor:
        """R²(k) for k = 1..max_order (default n): ``(K, B, C)``."""
        max_order = self.n_players if max_order is None else max_order
        _check_index("FSII", max_order, self.n_players)
        return torch.stack([self.r2(k) for k in range(1, max_order + 1)])


def _popcount(n: int, device: torch.device) -> torch.Tensor:
    """Size of every coalition index 0..2^n-1."""
    return coalitions_range(0, 2**n, n, device).sum(-1)


def exact_interactions(
    game: Game | torch.Tensor, index: str, order: int | None = None, batch_size: int = 16384
) -> InteractionValues:
    """Exact interaction index of a game from one evaluation of all 2^n coalitions.

    Args:
        game: a Game with n <= 20 players, or a ``(B, 2^n, C)`` table of its values.
        index: "Moebius", "SII", "k-SII", "STII", "FSII" or "SV".
        order: largest interaction size (default n; "SV" is order 1).
        batch_size: coalitions per game call.

    Returns:
        InteractionValues ``(B, p, C)`` over every interaction of size 0..order.

    Raises:
        ValueError: unknown index, order out of range, or too many players.
    """
    return ExactInteractionComputer(game, batch_size)(index, order)


def faithfulness_r2(
    game: Game | torch.Tensor | ExactInteractionComputer, orders: Iterable[int] | None = None
) -> dict[int, torch.Tensor]:
    """Shapley-weighted faithfulness R²(k) of the order-k FSII (HyperSHAP, appendix C.2).

    Args:
        game: a Game, a ``(B, 2^n, C)`` table or an :class:`ExactInteractionComputer` (reused
            without evaluating the game again).
        orders: the orders k (default 1..n).

    Returns:
        ``{k: R² (B, C)}``.
    """
    comp = game if isinstance(game, ExactInteractionComputer) else ExactInteractionComputer(game)
    orders = range(1, comp.n_players + 1) if orders is None else orders
    return {int(k): comp.r2(int(k)) for k in orders}


# --------------------------------------------------------------------------- sampled FSII


def approx_fsii(
    game: Game,
    order: int,
    budget: int,
    paired: bool = True,
    batch_size: int = 4096,
    generator: torch.Generator | None = None,
) -> InteractionValues:
    """Regression estimate of FSII from ``budget`` coalitions (KernelSHAP-IQ style).

    The FSII least-squares problem with the Shapley kernel is solved on a sample: whole subset
    sizes that the budget covers are enumerated with their exact kernel weights (same rule as
    :func:`~simshap.games.estimators.kernel_shap`), the rest is drawn from the kernel restricted
    to the remaining sizes (complementary pairs with ``paired=True``); v(∅) and v(N) are kept
    as exact constraints. A budget of ``2^n - 2`` reproduces the exact FSII.

    Args:
        game: the game.
        order: interaction order k (1 <= k < n).
        budget: coalitions per instance besides ∅ and N; at least the number of interactions
            of size 1..k is needed for a unique solution.
        paired: sample complementary pairs.
        batch_size: coalitions per instance per game call.
        generator: optional ``torch.Generator``.

    Returns:
        InteractionValues with ``estimated=True`` and ``n_evals`` = evaluations per instance.
    """
    check_game(game)
    check_positive(budget, "budget")
    check_positive(batch_size, "batch_size")
    n, bsz = game.num_players, game.num_instances
    if n < 2 or not isinstance(order, int) or not 1 <= order < n:
        raise ValueError(f"order must be an integer in 1..{n - 1} for {n} players, got {order!r}")
    device = game_device(game)
    basis = _make_basis(n, order, 1, device)
    p = len(basis.tuples)
    if budget < p:
        raise ValueError(
            f"budget={budget} is below the {p} interactions of size 1..{order}: the regression "
            f"would be underdetermined; use budget >= {p} (a few times more for accuracy)"
        )
    v0, v1 = empty_and_full(game)
    dtype = float_dtype(v0)
    v0, v1 = v0.to(torch.float64), v1.to(torch.float64)
    budget = min(budget, 2**n - 2) if n <= 60 else budget
    sizes, n_left = kernel_shap_budget_plan(n, budget)
    members = basis.members.to(torch.float64)
    gram = torch.zeros(bsz, p, p, dtype=torch.float64, device=device)
    rhs = torch.zeros(bsz, p, v0.shape[-1], dtype=torch.float64, device=device)

    def accumulate(masks: torch.Tensor, w: torch.Tensor, values: torch.Tensor) -> None:
        # design row of S: 1{T ⊆ S} for every interaction T
        z = ((masks.to(torch.float64) @ members.T) == basis.sizes.to(torch.float64)).double()
        if z.ndim == 2:
            z = z.expand(bsz, -1, -1)
            w = w.expand(bsz, -1)
        gram.add_(torch.einsum("bmp,bm,bmq->bpq", z, w, z))
        rhs.add_(torch.einsum("bmp,bm,bmc->bpc", z, w, values - v0[:, None]))

    n_evals = 2
    if sizes:
        enum = subsets_of_sizes(n, sizes, device)
        w = shapley_kernel_subset_prob(n, enum.sum(-1)).to(device)
        for i in range(0, enum.shape[0], batch_size):
            part = enum[i : i + batch_size]
            accumulate(part, w[i : i + batch_size][None], game(part).to(torch.float64))
        n_evals += enum.shape[0]
    if n_left > 0 and len(sizes) < n - 1:
        probs = shapley_kernel_size_probs(n).clone()
        if sizes:
            probs[torch.tensor(sizes) - 1] = 0.0
        mass = float(probs.sum())
        masks = sample_by_size(
            probs, n_left, n, paired, generator, device, batch_shape=(bsz,)
        )
        w = torch.full((bsz, n_left), mass / n_left, dtype=torch.float64, device=device)
        for i in range(0, n_left, batch_size):
            part = masks[:, i : i + batch_size]
            accumulate(part, w[:, i : i + batch_size], game(part).to(torch.float64))
        n_evals += n_left
    beta = constrained_least_squares(gram, rhs, v1 - v0)
    full = _make_basis(n, order, 0, device)
    vals = torch.cat([v0[:, None], beta], dim=1).to(dtype)
    return InteractionValues(
        values=vals,
        interactions=list(full.tuples),
        index="FSII",
        order=order,
        n_players=n,
        baseline_value=v0.to(dtype),
        estimated=True,
        n_evals=n_evals,
    )
