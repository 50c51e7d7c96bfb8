"""Figures of an image run: the paper's Figure 3 grid and the mean insertion / deletion curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["attribution_grid", "mean_curves"]


def attribution_grid(
    images: torch.Tensor,
    target: torch.Tensor,
    maps: dict[str, torch.Tensor],
    class_names: list[str] | None,
    path: Path,
) -> None:
    """Images (rows) and each method's superpixel map over them (columns), like Figure 3.

    Args:
        images: ``(k, C, H, W)`` images in display units ([0, 1]).
        target: ``(k,)`` explained class per image.
        maps: method label -> ``(N >= k, h, w)`` attributions.
        class_names: names of the classes (row labels).
        path: the PNG to write (nothing is written for ``k = 0``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = images.shape[0]
    if k == 0:
        return
    names = list(maps)
    pixels = images.permute(0, 2, 3, 1).numpy()
    h, w = pixels.shape[1:3]
    fig, axes = plt.subplots(
        k, len(names) + 1, figsize=(1.6 * (len(names) + 1), 1.6 * k), squeeze=False
    )
    for i in range(k):
        img = pixels[i].squeeze(-1) if pixels.shape[-1] == 1 else pixels[i]
        cmap = "gray" if img.ndim == 2 else None
        axes[i, 0].imshow(img, cmap=cmap)
        c = int(target[i])
        axes[i, 0].set_ylabel(class_names[c] if class_names else str(c), fontsize=7)
        for j, name in enumerate(names, start=1):
            a = maps[name][i].numpy()
            lim = float(np.abs(a).max()) or 1.0
            axes[i, j].imshow(img, cmap=cmap, alpha=0.35)
            axes[i, j].imshow(
                a,
                cmap="bwr",
                vmin=-lim,
                vmax=lim,
                alpha=0.8,
                extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                interpolation="nearest",
            )
    for j, title in enumerate(["image", *names]):
        axes[0, j].set_title(title, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def mean_curves(curves: dict[str, dict[str, torch.Tensor]], path: Path) -> None:
    """Mean insertion and deletion curves (paper normalization) of every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, c in curves.items():
        for ax, kind in zip(axes, ("insertion", "deletion"), strict=True):
            curve = c[kind]
            steps = torch.linspace(0, 1, curve.shape[1])
            ax.plot(steps, torch.nanmean(curve, 0), label=name)
    for ax, kind in zip(axes, ("insertion", "deletion"), strict=True):
        ax.set(
            xlabel="fraction of superpixels",
            ylabel="normalized logit (paper)",
            title=f"mean {kind} curve",
        )
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
