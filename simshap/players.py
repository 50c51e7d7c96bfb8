"""``Players``: who owns which input feature, as one serializable integer owner map.

Like captum's ``feature_mask``: ``owner[f]`` is the player that owns input feature ``f``.

- tabular inputs ``(B, F)``: ``owner`` is ``(F,)`` (identity: ``arange(F)``; groups: any map
  onto ``0..d-1``);
- images ``(B, channels, H, W)``: ``owner`` is ``(H, W)`` and broadcasts over channels
  (superpixels: square blocks on an ``(h, w)`` grid, row-major).

A player mask ``(N, d)`` becomes an input mask with :meth:`Players.feature_mask`. ``to_dict`` /
``from_dict`` save and restore it. This module sits at the bottom of the layer stack (torch only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from simshap.errors import UserError

__all__ = ["Players"]


class Players:
    """An integer owner map from input features to players.

    Args:
        owner: ``(F,)`` (tabular) or ``(H, W)`` (images) integers in ``0..d-1``, each player
            owning at least one feature.
        names: optional player names (length d).
        kind: ``"identity"``, ``"groups"`` or ``"superpixels"`` (how it was built; it decides
            the compact form ``to_dict`` writes).
        superpixel_size: side of a superpixel (``kind="superpixels"``).
    """

    def __init__(
        self,
        owner: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
        names: Sequence[str] | None = None,
        kind: str = "groups",
        superpixel_size: int | None = None,
    ) -> None:
        owner = torch.as_tensor(owner)
        if owner.dtype.is_floating_point or owner.dtype == torch.bool or owner.ndim not in (1, 2):
            raise UserError(
                f"owner must be an integer (F,) or (H, W) map of players, got dtype {owner.dtype} "
                f"and shape {tuple(owner.shape)}"
            )
        owner = owner.long().cpu()
        d = int(owner.max()) + 1 if owner.numel() else 0
        if owner.numel() == 0 or int(owner.min()) < 0 or owner.unique().numel() != d:
            raise UserError(
                "owner must map every feature to a player 0..d-1 with every player owning at "
                "least one feature (renumber the players)"
            )
        if names is not None and len(names) != d:
            raise UserError(f"names must hold one name per player ({d}), got {len(names)}")
        if kind not in ("identity", "groups", "superpixels"):
            raise UserError(f"kind must be 'identity', 'groups' or 'superpixels', got {kind!r}")
        self.owner = owner
        self.num_players = d
        self.names = list(names) if names is not None else None
        self.kind = kind
        self.superpixel_size = superpixel_size
        self._identity = owner.ndim == 1 and torch.equal(owner, torch.arange(owner.numel()))
        self._device_owner: dict[torch.device, torch.Tensor] = {}

    # ------------------------------------------------------------------ constructors
    @classmethod
    def identity(cls, num_features: int, names: Sequence[str] | None = None) -> Players:
        """One player per column of a ``(B, F)`` input."""
        if isinstance(num_features, bool) or int(num_features) < 1:
            raise UserError(f"num_features must be a positive integer, got {num_features!r}")
        return cls(torch.arange(int(num_features)), names=names, kind="identity")

    @classmethod
    def groups(
        cls,
        groups: Sequence[Sequence[int]],
        num_features: int | None = None,
        names: Sequence[str] | None = None,
    ) -> Players:
        """Players are groups of columns; the groups partition ``0..num_features-1``."""
        cols = [int(c) for g in groups for c in g]
        num_features = num_features if num_features is not None else len(cols)
        if sorted(cols) != list(range(num_features)):
            raise UserError(
                "groups must partition the columns 0..num_features-1: every column in exactly "
                f"one group (got {len(cols)} entries for {num_features} columns)"
            )
        owner = torch.empty(num_features, dtype=torch.long)
        for player, g in enumerate(groups):
            owner[list(g)] = player
        return cls(owner, names=names, kind="groups")

    @classmethod
    def superpixels(cls, image_size: Sequence[int] = (32, 32), superpixel_size: int = 2) -> Players:
        """Square ``k x k`` superpixels on an ``(H/k, W/k)`` grid, numbered row-major."""
        h, w = (int(v) for v in image_size)
        k = int(superpixel_size)
        if k < 1 or h % k or w % k:
            raise UserError(
                f"image size {(h, w)} is not divisible by superpixel_size={superpixel_size}; "
                "choose a superpixel size that divides both sides"
            )
        gh, gw = h // k, w // k
        grid = torch.arange(gh * gw).view(gh, gw)
        owner = grid.repeat_interleave(k, 0).repeat_interleave(k, 1)
        return cls(owner, kind="superpixels", superpixel_size=k)

    # ------------------------------------------------------------------ properties
    @property
    def num_features(self) -> int:
        """Number of input features the map covers (F, or H * W)."""
        return self.owner.numel()

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` for image maps, else ``None``."""
        return tuple(self.owner.shape) if self.owner.ndim == 2 else None  # type: ignore[return-value]

    @property
    def grid(self) -> tuple[int, int] | None:
        """``(h, w)`` superpixel grid (``kind="superpixels"``), else ``None``."""
        if self.kind != "superpixels" or self.superpixel_size is None:
            return None
        h, w = self.owner.shape
        return (h // self.superpixel_size, w // self.superpixel_size)

    # ------------------------------------------------------------------ masks
    def _owner_on(self, device: torch.device) -> torch.Tensor:
        if device not in self._device_owner:
            self._device_owner[device] = self.owner.to(device)
        return self._device_owner[device]

    def feature_mask(self, masks: torch.Tensor) -> torch.Tensor:
        """Bool player masks ``(N, d)`` -> input masks ``(N, F)`` or ``(N, 1, H, W)``."""
        if self._identity:
            return masks
        if self.kind == "superpixels" and self.grid is not None:
            k = self.superpixel_size
            grid = masks.reshape(masks.shape[0], 1, *self.grid)
            return grid.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
        owner = self._owner_on(masks.device)
        out = masks[:, owner.flatten()]
        if self.owner.ndim == 2:
            out = out.view(masks.shape[0], 1, *self.owner.shape)
        return out

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a :class:`UserError` if ``x`` ``(B, ...)`` does not fit the map."""
        if self.owner.ndim == 1:
            if x.ndim != 2 or x.shape[1] != self.num_features:
                raise UserError(
                    f"expected inputs of shape (B, {self.num_features}), got {tuple(x.shape)}"
                )
        elif x.ndim != 4 or tuple(x.shape[-2:]) != tuple(self.owner.shape):
            h, w = self.owner.shape
            raise UserError(f"expected images of shape (B, C, {h}, {w}), got {tuple(x.shape)}")

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_dict` restores."""
        out: dict[str, Any]
        if self.kind == "identity":
            out = {"kind": "identity", "num_features": self.num_features}
        elif self.kind == "superpixels":
            out = {
                "kind": "superpixels",
                "image_size": list(self.owner.shape),
                "superpixel_size": self.superpixel_size,
            }
        else:
            out = {"kind": "groups", "owner": self.owner.tolist()}
        if self.names is not None:
            out["names"] = list(self.names)
        return out

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Players:
        """Restore from :meth:`to_dict` (also reads the surrogate's older grouping specs)."""
        spec = dict(spec)
        kind = spec.pop("kind", None)
        names = spec.pop("names", None)
        if kind == "identity":
            return cls.identity(int(spec["num_features"]), names=names)
        if kind == "superpixels":
            p = cls.superpixels(tuple(spec["image_size"]), int(spec["superpixel_size"]))
            p.names = names
            return p
        if kind == "groups":
            return cls(torch.tensor(spec["owner"]), names=names, kind="groups")
        raise UserError(
            f"unknown players kind {kind!r}; expected 'identity', 'groups' or 'superpixels'"
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Players)
            and self.kind == other.kind
            and self.superpixel_size == other.superpixel_size
            and self.names == other.names
            and torch.equal(self.owner, other.owner)
        )

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.owner.shape), self.num_players))

    def __getstate__(self) -> dict[str, Any]:
        return self.to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(Players.from_dict(state).__dict__)

    def __repr__(self) -> str:
        return (
            f"Players(kind={self.kind!r}, num_players={self.num_players}, owner shape "
            f"{tuple(self.owner.shape)})"
        )
