"""Fully connected networks: the tabular surrogate's and the tabular explainer's."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "MaskedInput"]

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}


class MLP(nn.Module):
    """A multilayer perceptron ``in_features -> hidden x (layers - 1) -> out_features``.

    Args:
        in_features: input width.
        out_features: output width.
        hidden: width of the hidden layers.
        layers: number of linear layers (>= 1).
        activation: ``"relu"``, ``"elu"`` or ``"gelu"``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 128,
        layers: int = 3,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        if layers < 1 or min(in_features, out_features, hidden) < 1:
            raise ValueError("layers, in_features, out_features and hidden must be positive")
        widths = [in_features] + [hidden] * (layers - 1) + [out_features]
        mods: list[nn.Module] = []
        for i in range(layers):
            mods.append(nn.Linear(widths[i], widths[i + 1]))
            if i < layers - 1:
                mods.append(_ACTIVATIONS[activation]())
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_features) -> (N, out_features)``."""
        return self.net(x)


class MaskedInput(nn.Module):
    """A model of ``(x, m)`` that feeds ``[x * m, m]`` (concatenated on dim 1) to ``net``.

    Works for tabular rows (``x (N, F)``, ``m (N, F)`` -> ``(N, 2F)``) and for images
    (``x (N, C, H, W)``, ``m (N, 1, H, W)`` -> ``(N, C + 1, H, W)``).

    Args:
        net: the network on the concatenated input.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits of the masked input; ``mask`` is bool or float, broadcastable to ``x``."""
        m = mask.to(x.dtype)
        return self.net(torch.cat([x * m, m], dim=1))
