"""The game contract and games built from models.

A game is bound to a batch of B instances and answers many coalitions at once::

    values = game(masks)   # masks: bool (B, M, d) -> values: float (B, M, C)
    game.num_players       # d
    game.num_instances     # B

``masks`` may also be a bool ``(M, d)`` tensor: the same coalitions for every instance.
Model-based games chunk their model calls (``batch_size`` rows per call) so that many coalitions
on a large model never become one allocation.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from simshap.errors import UserError
from simshap.games.contract import (
    Game,
    GameProtocol,
    all_coalitions,
    coalition_index,
    coalitions_range,
)
from simshap.players import Players

__all__ = [
    "Game",
    "GameProtocol",
    "Players",
    "TableGame",
    "FunctionGame",
    "ModelGame",
    "BaselineGame",
    "MarginalGame",
    "MaskedModelGame",
    "SklearnModel",
    "all_coalitions",
    "coalitions_range",
    "coalition_index",
]

Model = Callable[[torch.Tensor], torch.Tensor]
MaskedModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TableGame(Game):
    """A game given by the values of all 2^d coalitions (index: bit i = player i).

    Args:
        table: ``(B, 2^d, C)`` or ``(2^d,)`` / ``(2^d, C)`` tensor of coalition values.
    """

    def __init__(self, table: torch.Tensor) -> None:
        table = torch.as_tensor(table)
        if table.ndim == 1:
            table = table[None, :, None]
        elif table.ndim == 2:
            table = table[None]
        if table.ndim != 3:
            raise UserError(f"table must be (B, 2^d, C), got shape {tuple(table.shape)}")
        d = int(round(math.log2(table.shape[1])))
        if 2**d != table.shape[1]:
            raise UserError(f"table's second axis must have length 2^d, got {table.shape[1]}")
        _check_finite(table, "table")
        self.table = table
        self.num_players = d
        self.num_instances = table.shape[0]

    supports_select = True

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.table.device

    def select(self, index: torch.Tensor) -> TableGame:  # noqa: D102
        return TableGame(self.table[index.to(self.table.device)])

    def value(self, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        idx = coalition_index(masks)  # (B, M)
        c = self.table.shape[-1]
        return torch.gather(self.table, 1, idx.unsqueeze(-1).expand(-1, -1, c))


class FunctionGame(Game):
    """A game from a function of the masks: ``fn(masks (B, M, d)) -> (B, M, C)``.

    Args:
        fn: vectorised value function.
        num_players: d.
        num_instances: B.
        device: device of the masks passed to ``fn``.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        num_players: int,
        num_instances: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.fn = fn
        self.num_players = num_players
        self.num_instances = num_instances
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self._device

    def value(self, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.fn(masks)
        if out.ndim == 2:
            out = out.unsqueeze(-1)
        return out


# --------------------------------------------------------------------------- model-based games


def _check_finite(x: torch.Tensor, name: str) -> None:
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise UserError(f"{name} contains NaN or infinite values; impute or drop them first")


def _as_2d_output(out: Any, n: int) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out))
    if out.ndim == 1:
        out = out.unsqueeze(-1)
    if out.ndim != 2 or out.shape[0] != n:
        raise UserError(
            f"the model must return a tensor of shape (N, C) (or (N,)) for N={n} inputs, "
            f"got {tuple(out.shape)}"
        )
    return out


class ModelGame(Game):
    """Common machinery of games built from a model evaluated on masked copies of ``x``.

    Args:
        x: inputs ``(B, *shape)``: tabular ``(B, F)`` or images ``(B, C, H, W)``.
        groups: :class:`~simshap.players.Players` mapping input features to players (default:
            one player per column of a 2-D ``x``).
        batch_size: rows per model call (bounds memory).
        check_finite: refuse NaN/inf in ``x`` (a host sync; trainers that already checked
            their data turn it off inside the training step).
    """

    def __init__(
        self,
        x: torch.Tensor,
        groups: Players | None = None,
        batch_size: int = 4096,
        check_finite: bool = True,
    ) -> None:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        if x.ndim < 2:
            raise UserError(
                f"x must be a batch of instances (B, ...), got shape {tuple(x.shape)}; "
                "use x[None] for a single instance"
            )
        if check_finite:
            _check_finite(x, "x")
        if groups is None:
            if x.ndim != 2:
                raise UserError("inputs with more than 2 dims need a grouping (e.g. superpixels)")
            groups = Players.identity(x.shape[1])
        groups.check_input(x)
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        self.x = x
        self.groups = groups
        self.batch_size = int(batch_size)
        self.num_players = groups.num_players
        self.num_instances = x.shape[0]

    supports_select = True
    per_instance: tuple[str, ...] = ("x",)  # attributes with one row per instance

    @property
    def players(self) -> Players:
        """The owner map from input features to players."""
        return self.groups

    @property
    def device(self) -> torch.device:  # noqa: D102
        return self.x.device

    def select(self, index: torch.Tensor) -> ModelGame:  # noqa: D102
        sub = copy.copy(self)
        for name in self.per_instance:
            setattr(sub, name, getattr(self, name)[index.to(self.device)])
        sub.num_instances = sub.x.shape[0]
        return sub

    def value(self, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b, m, d = masks.shape
        rows_per_coalition = self.rows_per_coalition()
        chunk = max(1, self.batch_size // rows_per_coalition)
        flat = masks.reshape(b * m, d)
        inst = torch.arange(b, device=masks.device).repeat_interleave(m)
        outs = [
            self.evaluate_rows(inst[i : i + chunk], flat[i : i + chunk])
            for i in range(0, b * m, chunk)
        ]
        return torch.cat(outs).view(b, m, -1)

    def rows_per_coalition(self) -> int:
        """Model rows needed per coalition (the background size for marginal games)."""
        return 1

    @abstractmethod
    def evaluate_rows(self, instance: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Values ``(n, C)`` of ``n`` (instance index, player mask) pairs."""


class BaselineGame(ModelGame):
    """Absent features take the baseline's values: v(S) = f(x_S, b_{N∖S}).

    Args:
        model: ``model(x) -> (N, C)``.
        x: inputs ``(B, *shape)``.
        baseline: ``(*shape)`` or ``(1, *shape)`` shared, or ``(B, *shape)`` per instance.
        groups: player grouping (default: one player per column).
        batch_size: rows per model call.
    """

    def __init__(
        self,
        model: Model,
        x: torch.Tensor,
        baseline: torch.Tensor,
        groups: Players | None = None,
        batch_size: int = 4096,
    ) -> None:
        super().__init__(x, groups, batch_size)
        baseline = torch.as_tensor(baseline, dtype=self.x.dtype, device=self.x.device)
        _check_finite(baseline, "baseline")
        if baseline.shape == self.x.shape[1:]:
            baseline = baseline.unsqueeze(0)
        if baseline.shape == (1, *self.x.shape[1:]):
            baseline = baseline.expand_as(self.x)
        if baseline.shape != self.x.shape:
            shape = tuple(self.x.shape[1:])
            raise UserError(
                f"baseline must have shape {shape}, {(1, *shape)} or {tuple(self.x.shape)} "
                f"(one row shared by all instances, or one per instance), got "
                f"{tuple(baseline.shape)}"
            )
        self.model = model
        self.baseline = baseline
        self.per_instance = ("x", "baseline")

    def evaluate_rows(self, instance: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        fmask = self.groups.feature_mask(masks)
        inputs = torch.where(fmask, self.x[instance], self.baseline[instance])
        return _as_2d_output(self.model(inputs), len(instance))


class MarginalGame(ModelGame):
    """Interventional value: v(S) = mean_k f(x_S, z^k_{N∖S}) over background rows z^k.

    Args:
        model: ``model(x) -> (N, C)``.
        x: inputs ``(B, *shape)``.
        background: ``(K, *shape)`` background rows.
        groups: player grouping.
        batch_size: rows per model call (a coalition costs K rows).
    """

    def __init__(
        self,
        model: Model,
        x: torch.Tensor,
        background: torch.Tensor,
        groups: Players | None = None,
        batch_size: int = 4096,
    ) -> None:
        super().__init__(x, groups, batch_size)
        background = torch.as_tensor(background, dtype=self.x.dtype, device=self.x.device)
        _check_finite(background, "background")
        if background.shape[1:] != self.x.shape[1:] or background.shape[0] < 1:
            raise UserError(
                f"background must have shape (K, {', '.join(map(str, self.x.shape[1:]))}), "
                f"got {tuple(background.shape)}"
            )
        self.model = model
        self.background = background

    def rows_per_coalition(self) -> int:  # noqa: D102
        return self.background.shape[0]

    def evaluate_rows(self, instance: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n, k = len(instance), self.background.shape[0]
        fmask = self.groups.feature_mask(masks).unsqueeze(1)  # (n, 1, ...)
        inputs = torch.where(fmask, self.x[instance].unsqueeze(1), self.background.unsqueeze(0))
        out = _as_2d_output(self.model(inputs.reshape(n * k, *self.x.shape[1:])), n * k)
        return out.view(n, k, -1).mean(1)


class MaskedModelGame(ModelGame):
    """Calls a model of ``(x, mask)``, such as a surrogate s(x, m): v(S) = s(x, m_S).

    The model receives the input rows and the player-to-feature mask (bool, broadcastable to the
    input: ``(N, F)`` for tabular data, ``(N, 1, H, W)`` for superpixels).

    Args:
        masked_model: ``masked_model(x, mask) -> (N, C)``.
        x: inputs ``(B, *shape)``.
        groups: player grouping.
        batch_size: rows per model call.
        output_transform: optional map applied to the model's output (e.g. ``softmax``).
        check_finite: refuse NaN/inf in ``x``.
    """

    def __init__(
        self,
        masked_model: MaskedModel,
        x: torch.Tensor,
        groups: Players | None = None,
        batch_size: int = 4096,
        output_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__(x, groups, batch_size, check_finite)
        self.masked_model = masked_model
        self.output_transform = output_transform

    def evaluate_rows(self, instance: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        fmask = self.groups.feature_mask(masks)
        out = self.masked_model(self.x[instance], fmask)
        if self.output_transform is not None:
            out = self.output_transform(out)
        return _as_2d_output(out, len(instance))


# --------------------------------------------------------------------------- model wrappers


class SklearnModel:
    """Makes an sklearn / LightGBM estimator a torch callable ``model(x) -> (N, C)``.

    Args:
        estimator: a fitted estimator (``predict_proba``, ``decision_function`` or ``predict``).
        output: ``"proba"`` (default), ``"decision"`` or ``"predict"``.
        dtype: dtype of the returned tensor.
    """

    def __init__(self, estimator: Any, output: str = "proba", dtype: torch.dtype = torch.float32):
        methods = {"proba": "predict_proba", "decision": "decision_function", "predict": "predict"}
        if output not in methods:
            raise UserError(f"output must be one of {sorted(methods)}, got {output!r}")
        fn = getattr(estimator, methods[output], None)
        if fn is None:
            raise TypeError(f"{type(estimator).__name__} has no {methods[output]}()")
        self.estimator = estimator
        self.output = output
        self.dtype = dtype
        self._fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Predict on a tensor; returns ``(N, C)`` on ``x``'s device."""
        arr = x.detach().cpu().numpy()
        out = np.asarray(self._fn(arr))
        if out.ndim == 1:
            out = out[:, None]
        return torch.as_tensor(out, dtype=self.dtype, device=x.device)
