"""A compact U-Net that maps an image to per-class values on its superpixel grid."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet"]


class _DoubleConv(nn.Sequential):
    """(3x3 conv, BatchNorm, ReLU) twice."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Encoder-decoder with skip connections whose output lives on the superpixel grid.

    The encoder halves the resolution ``depth`` times (doubling the width each time, capped at
    ``max_width``); the decoder upsamples back with transposed convolutions and skip connections
    but stops at the superpixel resolution ``(H / superpixel_size, W / superpixel_size)``, where a
    1x1 convolution gives one map per class. For 32x32 images and 2x2 superpixels the output is
    ``(N, num_classes, 16, 16)``: one value per player and class, as the explainers need.

    Args:
        in_channels: input channels.
        num_classes: output maps (one per class).
        base_width: channels at full resolution.
        depth: number of 2x downsamplings (input sides must be divisible by ``2**depth``).
        superpixel_size: side of a superpixel; a power of two, at most ``2**depth``.
        max_width: cap on the channel width of the deeper levels.

    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        base_width: int = 64,
        depth: int = 3,
        superpixel_size: int = 2,
        max_width: int = 512,
    ) -> None:
        super().__init__()
        if min(in_channels, num_classes, base_width, depth, max_width) < 1:
            raise ValueError(
                "in_channels, num_classes, base_width, depth and max_width must be positive, got "
                f"{in_channels}, {num_classes}, {base_width}, {depth}, {max_width}"
            )
        k = superpixel_size
        if k < 1 or k & (k - 1) or k > 2**depth:
            raise ValueError(
                f"superpixel_size must be a power of two between 1 and 2**depth = {2**depth}, "
                f"got {superpixel_size}; raise depth or change the superpixel size"
            )
        self.depth = depth
        self.superpixel_size = k
        self.num_classes = num_classes
        widths = [min(base_width * 2**i, max_width) for i in range(depth + 1)]
        self.stem = _DoubleConv(in_channels, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _DoubleConv(widths[i], widths[i + 1]))
            for i in range(depth)
        )
        stop = k.bit_length() - 1  # decoder level of the superpixel grid (log2 k)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in range(depth - 1, stop - 1, -1):
            self.up.append(nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
            self.merge.append(_DoubleConv(2 * widths[level], widths[level]))
        self.head = nn.Conv2d(widths[stop], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(N, in_channels, H, W)`` to ``(N, num_classes, H / k, W / k)``."""
        if x.ndim != 4:
            raise ValueError(f"UNet expects images (N, C, H, W), got shape {tuple(x.shape)}")
        side = 2**self.depth
        if x.shape[-2] % side or x.shape[-1] % side:
            raise ValueError(
                f"image size {tuple(x.shape[-2:])} must be divisible by 2**depth = {side}; "
                "lower depth or pad the images"
            )
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            h = merge(torch.cat([up(h), skips.pop()], dim=1))
        return self.head(h)
