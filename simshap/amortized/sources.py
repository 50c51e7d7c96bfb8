"""What an amortized explainer explains: the surrogate's game, or the model's own marginal game.

* ``game="surrogate"`` (:class:`SurrogateSource`): v_x(S) = s(x, m_S), the papers' conditional
  game, evaluated on the network inputs; v(N) = s(x, 1).
* ``game="marginal"`` / ``"baseline"`` (:class:`RowsSource`): v_x(S) = mean_k f(x_S, z^k) of the
  user's model f over background rows (one row for the baseline game), evaluated on raw rows
  (:class:`~simshap.games.rows.RowsGame`); v(N) = f(x). No surrogate is trained: each training
  coalition is evaluated on one random background row, an unbiased draw of v_x(S).

A source answers three questions for the explainer: the game of a batch (validation targets,
refinement, labels), one step's coalition values (training), and v(N) (the value the
attributions add up to).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from simshap.errors import UserError
from simshap.games.rows import RowsGame
from simshap.games.values import MaskedModelGame

__all__ = ["GAMES", "RowsSource", "SurrogateSource"]

GAMES = ("surrogate", "marginal", "baseline")


class SurrogateSource:
    """The surrogate's game on network inputs.

    Args:
        surrogate: the trained surrogate (``Surrogate.value(x, mask)``).
        batch_size: rows per surrogate call.
    """

    name = "surrogate"

    def __init__(self, surrogate: Any, batch_size: int | None = None) -> None:
        self.surrogate = surrogate
        self.batch_size = batch_size or 1 << 62

    def game(self, x: torch.Tensor, raw: Any = None, check_finite: bool = True) -> MaskedModelGame:
        """The game of a batch of network inputs ``x``."""
        return MaskedModelGame(
            self.surrogate.value,
            x,
            groups=self.surrogate.groups,
            batch_size=self.batch_size,
            check_finite=check_finite,
        )

    def draw(
        self, x: torch.Tensor, raw: Any, masks: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Values ``(B, M, C)`` of one step's coalitions (exact for the surrogate)."""
        with torch.no_grad():
            return self.game(x, check_finite=False)(masks).float()

    def v_full(self, x: torch.Tensor, raw: Any = None) -> torch.Tensor:
        """``(B, C)`` v(N) = s(x, 1)."""
        full = torch.ones(x.shape[0], self.surrogate.num_players, dtype=torch.bool, device=x.device)
        return self.surrogate.value(x, self.surrogate.groups.feature_mask(full)).float()

    def v_empty(self, x: torch.Tensor) -> torch.Tensor:
        """``(C,)`` v(∅) = s(x, 0), the same for every x (x * 0 = 0)."""
        empty = torch.zeros(1, self.surrogate.num_players, dtype=torch.bool, device=x.device)
        zero = torch.zeros_like(x[:1])
        return self.surrogate.value(zero, self.surrogate.groups.feature_mask(empty))[0].float()


class RowsSource:
    """The user's model's marginal (or baseline) game on raw rows.

    Args:
        model: the :class:`~simshap.models.adapter.ModelAdapter` of the user's model.
        background: raw background rows ``(K, d)`` (one row: the baseline game).
        tables: raw row tables that batches index into (``{"train": (n, d), "val": ...}``).
        batch_size: model rows per call.
        name: ``"marginal"`` or ``"baseline"``.
    """

    def __init__(
        self,
        model: Any,
        background: np.ndarray,
        tables: dict[str, np.ndarray] | None = None,
        batch_size: int = 65536,
        name: str = "marginal",
    ) -> None:
        self.model = model
        self.background = np.asarray(background)
        self.tables = dict(tables or {})
        self.batch_size = int(batch_size)
        self.name = name
        self._v_empty: torch.Tensor | None = None

    def rows(self, raw: Any) -> np.ndarray:
        """Raw rows of a batch: an index tensor into the training table, or the rows."""
        if isinstance(raw, tuple):  # (table name, row indices)
            table, index = raw
            return self.tables[table][index.cpu().numpy()]
        return np.asarray(raw)

    def _require_model(self) -> Any:
        if self.model is None:
            raise UserError(
                f"this explainer explains the {self.name} game of a model, which it needs to "
                "evaluate (v(N) = f(x), the value its attributions add up to, and any refinement): "
                "pass model= to simshap.load (--model to serve and explain), or "
                "efficient=False for the raw network output"
            )
        return self.model

    def game(self, x: torch.Tensor | None, raw: Any, check_finite: bool = True) -> RowsGame:
        """The game of a batch of raw rows."""
        model = self._require_model()
        return RowsGame(
            model.on_array, self.rows(raw), self.background, self.batch_size, v_empty=self._v_empty
        )

    def draw(
        self, x: torch.Tensor, raw: Any, masks: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """One step's values ``(B, M, C)``: each coalition on one random background row."""
        gen = generator if generator is None or generator.device.type == "cpu" else None
        values = self.game(None, raw).draw(masks.cpu(), gen)
        return values.to(device=masks.device, dtype=torch.float32)

    def v_full(self, x: torch.Tensor | None, raw: Any) -> torch.Tensor:
        """``(B, C)`` v(N) = f(x), float64 as the model gave it (the values add up to it)."""
        out = torch.from_numpy(self._require_model().on_array(self.rows(raw))).double()
        return out if x is None else out.to(x.device)

    def v_empty(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """``(C,)`` v(∅) = mean_k f(z^k) over the background rows."""
        if self._v_empty is None:
            model = self._require_model()
            self._v_empty = torch.from_numpy(model.on_array(self.background)).mean(0)
        out = self._v_empty.float()
        return out if x is None else out.to(x.device)
