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

import math
from collections.abc import Iterable

import torch

from simshap.estimators.budget import check_positive, evaluate_in_chunks, float_dtype
from simshap.estimators.exact import MAX_EXACT_PLAYERS
from simshap.estimators.regression import constrained_least_squares
from simshap.games.contract import Game, check_game, coalitions_range, game_device
from simshap.games.sampling import (
    shapley_kernel_subset_prob,
)
from simshap.interactions.transforms import (
    _Basis,
    _butterfly,
    _check_table,
    _from_rows,
    _make_basis,
    _ranked_superset,
    _to_rows,
    interaction_basis,
    moebius_transform,
    superset_transform,
    zeta_transform,
)
from simshap.interactions.values import InteractionValues

__all__ = [
    "INDICES",
    "InteractionValues",
    "ExactInteractionComputer",
    "exact_interactions",
    "faithfulness_r2",
    "interaction_basis",
    "moebius_transform",
    "zeta_transform",
    "superset_transform",
]

INDICES: tuple[str, ...] = ("Moebius", "SII", "k-SII", "STII", "FSII", "SV")

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
            shapley_kernel_subset_prob(n, s) * math.comb(n - u, s - u) for s in range(max(u, 1), n)
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
                    "simshap.interactions.fsii.approx_fsii(game, order, budget) instead"
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
