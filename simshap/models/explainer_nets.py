"""Explainer networks g(x) -> (B, d, C) and their rebuildable specs (for weights-only loading)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch import nn

from simshap.models.mlp import MLP
from simshap.models.resnet import cifar_resnet18, warm_start_from_classifier
from simshap.models.unet import UNet

__all__ = [
    "MLPExplainerNet",
    "ResNetExplainerNet",
    "UNetExplainerNet",
    "UserExplainerNet",
    "build_explainer_net",
    "cut_points",
]

# superpixel side -> ResNet-18 stages kept: a 32x32 image leaves layer j at 32 / 2^(j-1) pixels
_RESNET_STAGES = {1: 1, 2: 2, 4: 3, 8: 4}


class MLPExplainerNet(nn.Module):
    """Tabular explainer: an MLP ``(B, F) -> (B, d, C)`` (one value per player and class).

    Args:
        in_features: input width F.
        num_players: d.
        num_classes: C.
        hidden: hidden width (128 or 512 in the paper).
        layers: linear layers (3 in the paper).
        output_scale: per class, the unit of the outputs (a regression's: the standard deviation
            of the model's predictions), so the network learns values of order 1 whatever the
            target's unit and weight decay means the same in every unit; ``None``: 1.
        cuts: per input column (the first ``len(cuts)``), cut points ``c``; each adds the input
            ``x_j > c`` (a thermometer code, :func:`cut_points`), so the MLP sees the steps of a
            model's function (a tree's splits) where standardized numbers alone blur them.
            ``None``: the inputs as given.
    """

    def __init__(
        self,
        in_features: int,
        num_players: int,
        num_classes: int,
        hidden: int = 128,
        layers: int = 3,
        output_scale: list[float] | None = None,
        cuts: list[list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.spec: dict[str, Any] = {
            "kind": "mlp",
            "in_features": in_features,
            "num_players": num_players,
            "num_classes": num_classes,
            "hidden": hidden,
            "layers": layers,
        }
        scale = torch.ones(num_classes)
        if output_scale is not None:
            scale = torch.as_tensor(output_scale, dtype=torch.float32).reshape(-1)
            if scale.numel() != num_classes or not bool((scale > 0).all() & scale.isfinite().all()):
                raise ValueError(f"output_scale must be {num_classes} positive numbers")
            self.spec["output_scale"] = [float(v) for v in scale]
        columns, values = _flat_cuts(cuts, in_features)
        if cuts is not None:
            self.spec["cuts"] = [[float(c) for c in col] for col in cuts]
        self.num_players, self.num_classes, self.n_cuts = num_players, num_classes, len(values)
        self.mlp = MLP(in_features + len(values), num_players * num_classes, hidden, layers, "relu")
        # rebuilt from the spec: not part of the weights (older files load unchanged)
        self.register_buffer("output_scale", scale, persistent=False)
        self.register_buffer("cut_columns", torch.tensor(columns, dtype=torch.long), False)
        self.register_buffer("cut_values", torch.tensor(values, dtype=torch.float32), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, F) -> (B, d, C)``."""
        if self.n_cuts:  # a Python int: export traces no branch
            x = torch.cat([x, (x[:, self.cut_columns] > self.cut_values).to(x.dtype)], dim=1)
        return self.mlp(x).view(-1, self.num_players, self.num_classes) * self.output_scale


def _flat_cuts(cuts: list[list[float]] | None, in_features: int) -> tuple[list[int], list[float]]:
    """(column, value) of every cut point, checked: finite, increasing, within the inputs."""
    if cuts is None:
        return [], []
    if len(cuts) > in_features:
        raise ValueError(f"cuts for {len(cuts)} columns, but the network has {in_features} inputs")
    columns, values = [], []
    for j, col in enumerate(cuts):
        v = np.asarray(col, dtype=np.float64)
        if v.ndim != 1 or not np.isfinite(v).all() or (np.diff(v) <= 0).any():
            raise ValueError(f"cuts[{j}] must be finite increasing numbers, got {list(col)[:5]}")
        columns += [j] * len(v)
        values += v.tolist()
    return columns, values


def cut_points(x: np.ndarray, bins: int) -> list[list[float]]:
    """Cut points of each column of ``x`` for :class:`MLPExplainerNet`'s thermometer inputs.

    A column with at most ``bins`` distinct values is cut between every two neighbours (a cut
    per step a model can take on it); a column with more is cut next to its ``bins - 1`` inner
    quantiles (ties merged). Every cut lies midway between two neighbouring values at least 1e-5
    (relative) apart, so float rounding of a training value (float32 inputs, ONNX's own
    standardization) never flips its code. Constant columns get none.

    Args:
        x: ``(n, k)`` network inputs of the training rows (standardized columns); of a table
            above 200,000 rows, evenly spaced rows.
        bins: at most this many intervals per column (>= 2).

    Returns:
        ``k`` lists of increasing cut points.
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    x = np.asarray(x, dtype=np.float64)
    x = x[:: max(1, len(x) // 200_000)]  # evenly spaced rows of a very large table
    out = []
    for col in x.T:
        values = np.unique(col[np.isfinite(col)])
        # the gaps between neighbours a cut may take: 1e-5 (relative) or wider, as closer values
        # are one value to a float32 network, and a cut midway cannot flip under rounding
        lo, hi = values[:-1], values[1:]
        wide = np.flatnonzero(hi - lo > 1e-5 * np.maximum(1.0, np.maximum(abs(lo), abs(hi))))
        if len(values) > bins and len(wide):  # the first wide gap at or above each quantile
            q = np.quantile(col, np.arange(1, bins) / bins)
            at = np.clip(np.searchsorted(values, q, "right") - 1, 0, len(values) - 2)
            wide = np.unique(wide[np.minimum(np.searchsorted(wide, at), len(wide) - 1)])
        out.append([float(c) for c in (lo[wide] + hi[wide]) / 2])
    return out


class UNetExplainerNet(nn.Module):
    """Image explainer: a U-Net ``(B, 3, H, W) -> (B, C, h, w)``, returned as ``(B, h*w, C)``.

    Players are the superpixels in row-major order, as in ``Players.superpixels``.

    Args:
        in_channels: image channels.
        num_classes: C.
        base_width: U-Net width at full resolution.
        depth: U-Net depth.
        superpixel_size: superpixel side (2: a 16x16 grid for 32x32 images).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        base_width: int = 64,
        depth: int = 3,
        superpixel_size: int = 2,
    ) -> None:
        super().__init__()
        self.spec = {
            "kind": "unet",
            "in_channels": in_channels,
            "num_classes": num_classes,
            "base_width": base_width,
            "depth": depth,
            "superpixel_size": superpixel_size,
        }
        self.unet = UNet(in_channels, num_classes, base_width, depth, superpixel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, d, C)``."""
        maps = self.unet(x)  # (B, C, h, w)
        return maps.flatten(2).transpose(1, 2)


class ResNetExplainerNet(nn.Module):
    """Image explainer: the CIFAR ResNet-18 trunk cut at the superpixel grid, then a 1x1 head.

    The trunk (stem and the first stages of :func:`~simshap.models.resnet.cifar_resnet18`) stops
    at the stage whose resolution is the superpixel grid: ``layer3`` (8x8) for 4x4 superpixels
    on 32x32 images, ``layer2`` (16x16) for 2x2 ones. A 1x1 convolution then gives one value per
    superpixel and class. As in FastSHAP's image explainer (a pretrained ResNet backbone), the
    trunk can start from the classifier's weights (:meth:`load_trunk`): its keys are the
    classifier's own. The head starts at zero, so an untrained explainer outputs zeros.

    Args:
        in_channels: image channels.
        num_classes: C.
        width: channels of the first stage (the classifier's ``model.width`` to warm-start).
        superpixel_size: superpixel side: 1, 2, 4 or 8 (32x32 images: 32x32 to 4x4 grids).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 64,
        superpixel_size: int = 2,
    ) -> None:
        super().__init__()
        if superpixel_size not in _RESNET_STAGES:
            raise ValueError(
                f"the resnet18 explainer needs superpixel_size in "
                f"{sorted(_RESNET_STAGES)}, got {superpixel_size}"
            )
        self.spec = {
            "kind": "resnet18",
            "in_channels": in_channels,
            "num_classes": num_classes,
            "width": width,
            "superpixel_size": superpixel_size,
        }
        full = cifar_resnet18(num_classes, in_channels, width)
        stages = _RESNET_STAGES[superpixel_size]
        names = ["conv1", "bn1", "relu", *(f"layer{j}" for j in range(1, stages + 1))]
        self.trunk = nn.Sequential(OrderedDict((n, getattr(full, n)) for n in names))
        self.head = nn.Conv2d(width * 2 ** (stages - 1), num_classes, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def load_trunk(self, classifier: nn.Module) -> None:
        """Copy the classifier's stem and stages into the trunk (in place; the head is kept).

        Raises:
            ValueError: if the classifier is not a ResNet-18 of the same width and channels.
        """
        warm_start_from_classifier(
            self.trunk, classifier, "explainer.init", "the explainer's width"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, d, C)``."""
        if x.ndim != 4:
            raise ValueError(
                f"the resnet18 explainer expects images (N, C, H, W), got shape {tuple(x.shape)}"
            )
        return self.head(self.trunk(x)).flatten(2).transpose(1, 2)


class UserExplainerNet(nn.Module):
    """Your own explainer network g(x): any module from the network inputs to ``d x C`` values.

    Its output may be ``(B, d, C)`` or ``(B, d * C)`` (read as ``(B, d, C)``). A saved file keeps
    its weights and ``spec`` but not its code: load it with ``simshap.load(path, net=...)``.

    Args:
        module: the network.
        spec: ``num_players``, ``num_classes`` and ``in_features`` (tables: the preprocessed
            width) or ``in_channels`` (images).
    """

    def __init__(self, module: nn.Module, spec: dict[str, Any]) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(module).__name__}")
        kind = type(module)
        self.spec = {**spec, "kind": "user", "module": f"{kind.__module__}.{kind.__qualname__}"}
        self.num_players, self.num_classes = spec["num_players"], spec["num_classes"]
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, ...) -> (B, d, C)``."""
        out = self.module(x)
        d, c = self.num_players, self.num_classes
        if out.ndim == 2 and out.shape[1] == d * c:
            return out.view(-1, d, c)
        if out.ndim != 3 or tuple(out.shape[1:]) != (d, c):
            raise ValueError(
                f"net returned shape {tuple(out.shape)}; an explainer network returns "
                f"(B, {d}, {c}) or (B, {d * c}): one value per player and class"
            )
        return out


def build_explainer_net(spec: dict[str, Any]) -> nn.Module:
    """Rebuild an explainer network from its ``spec`` dict."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind == "user":
        raise ValueError(
            f"this explainer was trained with your own network ({spec.get('module')}); a "
            "file holds its weights, not its code: pass net=YourNetwork(...) (simshap.load(path, "
            "net=...))"
        )
    if kind == "mlp":
        return MLPExplainerNet(**spec)
    if kind == "unet":
        return UNetExplainerNet(**spec)
    if kind == "resnet18":
        return ResNetExplainerNet(**spec)
    if kind == "user_trunk":
        from simshap.models.user_image import UserTrunkExplainerNet

        return UserTrunkExplainerNet(**spec)
    raise ValueError(
        f"unknown explainer network kind {kind!r}; expected 'mlp', 'unet' or 'resnet18'"
    )
