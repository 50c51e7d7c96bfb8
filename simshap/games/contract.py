"""The game contract: a runtime-checkable ``Protocol``, the ``Game`` base class, coalition helpers.

A game is bound to a batch of B instances and answers many coalitions at once::

    values = game(masks)   # masks: bool (B, M, d) -> values: float (B, M, C)
    game.num_players       # d
    game.num_instances     # B

Any object with these three members is a game (:class:`GameProtocol`); it need not subclass
:class:`Game`. The helpers :func:`game_device`, :func:`empty_and_full`, :func:`can_select` and
:func:`call_game` give every estimator the optional extras (device, instance selection, v(∅)
and v(N)) with fallbacks for such duck-typed games.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import torch

from simshap.errors import UserError

__all__ = [
    "GameProtocol",
    "Game",
    "check_game",
    "game_device",
    "empty_and_full",
    "can_select",
    "call_game",
    "all_coalitions",
    "coalitions_range",
    "coalition_index",
]


@runtime_checkable
class GameProtocol(Protocol):
    """The game contract: ``num_players``, ``num_instances`` and ``__call__(masks)``.

    ``game(masks)`` maps bool ``(B, M, d)`` coalitions to float ``(B, M, C)`` values (a
    ``(B, M)`` answer is read as C = 1).
    """

    num_players: int
    num_instances: int

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:  # pragma: no cover - protocol
        """Values ``(B, M, C)`` of bool coalitions ``(B, M, d)``."""
        ...


def check_game(game: Any) -> None:
    """Raise a :class:`UserError` unless ``game`` honors :class:`GameProtocol`."""
    if not isinstance(game, GameProtocol):
        raise UserError(
            f"expected a game (an object with num_players, num_instances and __call__(masks)"
            f", e.g. BaselineGame or MaskedModelGame), got {type(game).__name__}"
        )
    for name in ("num_players", "num_instances"):
        n = getattr(game, name)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise UserError(f"game.{name} must be a positive integer, got {n!r}")


def game_device(game: Any) -> torch.device:
    """The device masks should be created on (``game.device``, else the CPU)."""
    dev = getattr(game, "device", None)
    return torch.device(dev) if dev is not None else torch.device("cpu")


def call_game(game: Any, masks: torch.Tensor) -> torch.Tensor:
    """Evaluate ``masks`` ``(B, M, d)`` (or shared ``(M, d)``) and return ``(B, M, C)``."""
    if masks.ndim == 2 and not isinstance(game, Game):
        masks = masks.unsqueeze(0).expand(game.num_instances, -1, -1)
    out = game(masks)
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(out)
    if out.ndim == 2:
        out = out.unsqueeze(-1)
    b, m = masks.shape[0] if masks.ndim == 3 else game.num_instances, masks.shape[-2]
    if out.ndim != 3 or out.shape[:2] != (b, m):
        raise UserError(
            f"the game must return values of shape (B, M, C) = ({b}, {m}, C), got "
            f"{tuple(out.shape)}"
        )
    return out


def empty_and_full(game: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``v(∅)`` and ``v(N)``, each ``(B, C)``, in one call (the game's own method if it has one)."""
    if isinstance(game, Game):
        return game.empty_and_full()
    masks = torch.zeros(2, game.num_players, dtype=torch.bool, device=game_device(game))
    masks[1] = True
    v = call_game(game, masks)
    return v[:, 0], v[:, 1]


def can_select(game: Any) -> bool:
    """Whether ``game.select(index)`` restricts the game to some instances."""
    return bool(getattr(game, "supports_select", False)) and callable(getattr(game, "select", None))


def coalitions_range(
    start: int, stop: int, d: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Coalitions with indices ``start..stop-1`` (bit i = player i) as bool ``(n, d)``."""
    k = torch.arange(start, stop, device=device)
    bits = 1 << torch.arange(d, device=device)
    return (k.unsqueeze(-1) & bits) != 0


def all_coalitions(d: int, device: torch.device | str | None = None) -> torch.Tensor:
    """All 2^d coalitions, bool ``(2^d, d)``: row ``k`` holds player ``i`` iff bit i of k is set."""
    return coalitions_range(0, 2**d, d, device)


def coalition_index(masks: torch.Tensor) -> torch.Tensor:
    """Integer index (bit i = player i) of each coalition in a bool ``(..., d)`` tensor."""
    d = masks.shape[-1]
    bits = 1 << torch.arange(d, device=masks.device)
    return (masks.long() * bits).sum(-1)


class Game(ABC):
    """Convenience base class of the game contract (any :class:`GameProtocol` object works too).

    Subclasses implement :meth:`value` on validated bool masks of shape ``(B, M, d)`` and return
    ``(B, M, C)``. Calling the game validates the masks first.
    """

    num_players: int
    num_instances: int

    @property
    def device(self) -> torch.device:
        """Device on which masks should be created (and values are returned)."""
        return torch.device("cpu")

    @abstractmethod
    def value(self, masks: torch.Tensor) -> torch.Tensor:
        """Values of validated coalitions: bool ``(B, M, d)`` -> float ``(B, M, C)``."""

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """Evaluate coalitions; see the module docstring for the contract."""
        return self.value(self.check_masks(masks))

    def check_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """Validate masks and broadcast a shared ``(M, d)`` mask to ``(B, M, d)``."""
        if not isinstance(masks, torch.Tensor):
            raise TypeError(
                f"masks must be a torch.Tensor of dtype bool, got {type(masks).__name__}"
            )
        if masks.dtype != torch.bool:
            raise TypeError(
                f"masks must have dtype torch.bool (True = player present), got {masks.dtype}; "
                "convert with masks.bool() or masks > 0.5"
            )
        d, b = self.num_players, self.num_instances
        if masks.ndim == 2 and masks.shape[-1] == d:
            masks = masks.unsqueeze(0).expand(b, -1, -1)
        if masks.ndim != 3 or masks.shape[0] != b or masks.shape[2] != d:
            raise UserError(
                f"masks must have shape (B, M, d) = ({b}, M, {d}) or (M, {d}), "
                f"got {tuple(masks.shape)}"
            )
        return masks.to(self.device)

    supports_select: bool = False

    def select(self, index: torch.Tensor) -> Game:
        """The same game restricted to the instances ``index`` (where ``supports_select``).

        Estimators use it to stop evaluating instances that have converged.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be restricted to instances")

    def empty_and_full(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Values ``v(∅)`` and ``v(N)`` for every instance, each ``(B, C)``, in one call."""
        masks = torch.zeros(2, self.num_players, dtype=torch.bool, device=self.device)
        masks[1] = True
        v = self(masks)
        return v[:, 0], v[:, 1]
