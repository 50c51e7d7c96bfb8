"""Games of a model of raw rows: the marginal (interventional) and baseline games.

v_x(S) = mean_k f(x_S, z^k_{N∖S}): a row takes the columns of S from the explained row x and the
others from background row z^k, and the user's model f sees it as it sees any row (strings and
NaN included, as a DataFrame when the rows came as one). With K background rows this is the
interventional value of ``shap.KernelExplainer`` with the same background; with one row it is the
baseline game.

For training amortized explainers, :meth:`RowsGame.draw` evaluates each coalition on ONE
background row drawn uniformly at random: f(x_S, z_{N∖S}) with z uniform on the K rows is an
unbiased draw of v_x(S), so every target and loss linear in v (Sim-Semivalue, FastSHAP's) stays
unbiased at 1/K of the cost. v(∅) = mean_k f(z^k) and v(N) = f(x) are exact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from simshap.errors import UserError
from simshap.games.contract import Game

__all__ = ["RowsGame"]

RowsModel = Callable[[np.ndarray], np.ndarray]


class RowsGame(Game):
    """The marginal game over ``background`` rows (K = 1: the baseline game) of a rows model.

    Args:
        model: ``model(rows (n, d) array) -> (n, C)`` (a
            :class:`~simshap.models.adapter.ModelAdapter`'s
            :meth:`~simshap.models.adapter.ModelAdapter.on_array`).
        x: the explained raw rows ``(B, d)`` (``object`` arrays hold strings and NaN).
        background: background raw rows ``(K, d)``.
        batch_size: model rows per call (bounds memory; a coalition costs K rows).
        v_empty: ``(C,)`` mean_k f(z^k) when already known (it does not depend on x).
    """

    supports_select = True

    def __init__(
        self,
        model: RowsModel,
        x: np.ndarray,
        background: np.ndarray,
        batch_size: int = 65536,
        v_empty: torch.Tensor | None = None,
    ) -> None:
        x, background = np.asarray(x), np.asarray(background)
        if x.ndim != 2 or background.ndim != 2 or x.shape[1] != background.shape[1]:
            raise UserError(
                f"x (B, d) and background (K, d) must share d columns, got shapes "
                f"{x.shape} and {background.shape}"
            )
        if len(x) < 1 or len(background) < 1:
            raise UserError("a rows game needs at least one explained row and one background row")
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.x = x
        self.background = background
        self.batch_size = int(batch_size)
        self.num_players = x.shape[1]
        self.num_instances = x.shape[0]
        self._v_empty = v_empty

    def select(self, index: torch.Tensor) -> RowsGame:  # noqa: D102
        idx = index.cpu().numpy()
        return RowsGame(self.model, self.x[idx], self.background, self.batch_size, self._v_empty)

    def _predict(self, rows: np.ndarray) -> torch.Tensor:
        outs = [
            np.asarray(self.model(rows[i : i + self.batch_size]), dtype=np.float64)
            for i in range(0, len(rows), self.batch_size)
        ]
        return torch.from_numpy(np.concatenate(outs))

    def _hybrid(self, inst: np.ndarray, masks: np.ndarray, bg: np.ndarray) -> np.ndarray:
        """Rows taking the columns of ``masks`` from ``x[inst]`` and the rest from ``bg``."""
        return np.where(masks, self.x[inst], bg)

    def value(self, masks: torch.Tensor) -> torch.Tensor:
        """Exact v_x(S): every coalition on every background row, averaged."""
        b, m, d = masks.shape
        k = len(self.background)
        flat = masks.reshape(b * m, d).cpu().numpy()
        inst = np.repeat(np.arange(b), m)
        per_chunk = max(1, self.batch_size // k)
        out = []
        for i in range(0, b * m, per_chunk):
            mk, ins = flat[i : i + per_chunk], inst[i : i + per_chunk]
            rows = self._hybrid(
                np.repeat(ins, k), np.repeat(mk, k, axis=0), np.tile(self.background, (len(ins), 1))
            )
            out.append(self._predict(rows).view(len(ins), k, -1).mean(1))
        return torch.cat(out).view(b, m, -1)

    def draw(self, masks: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Unbiased one-row draws of v_x(S): each coalition on one random background row.

        Where the coalitions come in complementary pairs (row ``2k+1`` the complement of row
        ``2k``, as the paired samplers draw them), both members of a pair take the same
        background row: each coalition's row is still uniform, so every draw stays unbiased
        and the targets linear in v do too, while the pair's difference v(S) - v(N∖S), which
        the Shapley targets weigh, loses the row's common part (census LightGBM, 100
        background rows, 16 rows x 32 coalitions: the Sim-Semivalue targets' summed variance
        falls from 4.96 to 3.44, by 31%).

        Args:
            masks: bool ``(B, M, d)``.
            generator: CPU ``torch.Generator`` for the background rows.

        Returns:
            ``(B, M, C)`` float64 values (on the CPU).
        """
        b, m, d = masks.shape
        pick = torch.randint(len(self.background), (b, m), generator=generator)
        pairs = m // 2
        if pairs and bool((masks[:, 1 : 2 * pairs : 2] == ~masks[:, 0 : 2 * pairs : 2]).all()):
            pick[:, 1 : 2 * pairs : 2] = pick[:, 0 : 2 * pairs : 2]
        inst = np.repeat(np.arange(b), m)
        flat = masks.reshape(b * m, d).cpu().numpy()
        rows = self._hybrid(inst, flat, self.background[pick.reshape(-1).numpy()])
        return self._predict(rows).view(b, m, -1)

    def v_empty(self) -> torch.Tensor:
        """``(C,)`` v(∅) = mean_k f(z^k), computed once."""
        if self._v_empty is None:
            self._v_empty = self._predict(self.background).mean(0)
        return self._v_empty

    def full(self) -> torch.Tensor:
        """``(B, C)`` v(N) = f(x)."""
        return self._predict(self.x)

    def empty_and_full(self) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        full = self.full()
        return self.v_empty().to(full).expand_as(full).clone(), full
