"""Explainer networks g(x) -> (B, d, C) and their rebuildable specs (for weights-only loading)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from simshap.models.mlp import MLP
from simshap.models.unet import UNet

__all__ = ["MLPExplainerNet", "UNetExplainerNet", "build_explainer_net"]


class MLPExplainerNet(nn.Module):
    """Tabular explainer: an MLP ``(B, F) -> (B, d, C)`` (one value per player and class).

    Args:
        in_features: input width F.
        num_players: d.
        num_classes: C.
        hidden: hidden width (128 or 512 in the paper).
        layers: linear layers (3 in the paper).
    """

    def __init__(
        self, in_features: int, num_players: int, num_classes: int, hidden: int = 128,
        layers: int = 3,
    ) -> None:
        super().__init__()
        self.spec = {
            "kind": "mlp", "in_features": in_features, "num_players": num_players,
            "num_classes": num_classes, "hidden": hidden, "layers": layers,
        }
        self.num_players, self.num_classes = num_players, num_classes
        self.mlp = MLP(in_features, num_players * num_classes, hidden, layers, "relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, F) -> (B, d, C)``."""
        return self.mlp(x).view(-1, self.num_players, self.num_classes)


class UNetExplainerNet(nn.Module):
    """Image explainer: a U-Net ``(B, 3, H, W) -> (B, C, h, w)``, returned as ``(B, h*w, C)``.

    Players are the superpixels in row-major order, as in ``SuperpixelGrouping``.

    Args:
        in_channels: image channels.
        num_classes: C.
        base_width: U-Net width at full resolution.
        depth: U-Net depth.
        superpixel_size: superpixel side (2: a 16x16 grid for 32x32 images).
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, base_width: int = 64, depth: int = 3,
        superpixel_size: int = 2,
    ) -> None:
        super().__init__()
        self.spec = {
            "kind": "unet", "in_channels": in_channels, "num_classes": num_classes,
            "base_width": base_width, "depth": depth, "superpixel_size": superpixel_size,
        }
        self.unet = UNet(in_channels, num_classes, base_width, depth, superpixel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, d, C)``."""
        maps = self.unet(x)  # (B, C, h, w)
        return maps.flatten(2).transpose(1, 2)


def build_explainer_net(spec: dict[str, Any]) -> nn.Module:
    """Rebuild an explainer network from its ``spec`` dict."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind == "mlp":
        return MLPExplainerNet(**spec)
    if kind == "unet":
        return UNetExplainerNet(**spec)
    raise ValueError(f"unknown explainer network kind {kind!r}; expected 'mlp' or 'unet'")
