"""Plots of the HPI study: interaction graph, R²(k) curves, anytime curves (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simshap.interactions.exact import InteractionValues

__all__ = ["interaction_graph", "r2_curves", "anytime_curves"]


def _save(fig: Any, path: Path | str) -> Path:
    """Write ``fig`` to ``path`` and close it."""
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def interaction_graph(
    iv: InteractionValues,
    names: Sequence[str],
    path: Path | str,
    title: str = "",
    instance: int = 0,
    output: int = 0,
) -> Path:
    """Players on a circle; node area ∝ |main effect|, edge width ∝ |pairwise interaction|.

    Red means positive, blue negative (nodes and edges alike).

    Args:
        iv: interaction values with orders 1 and 2 (e.g. FSII of order 2).
        names: player names.
        path: output image file.
        title: figure title.
        instance: which instance of ``iv``.
        output: which output of ``iv``.

    Returns:
        the path written.
    """
    if iv.order < 2:
        raise ValueError("the interaction graph needs pairwise values (order >= 2)")
    plt = _pyplot()
    values = iv.to_dict(instance, output)
    n = iv.n_players
    angle = 2 * np.pi * np.arange(n) / n
    xy = np.stack([np.cos(angle), np.sin(angle)], 1)
    mains = np.array([values[(i,)] for i in range(n)])
    pairs = {t: v for t, v in values.items() if len(t) == 2}
    scale = max(np.abs(mains).max(), max((abs(v) for v in pairs.values()), default=0.0), 1e-12)
    fig, ax = plt.subplots(figsize=(6, 6))
    for (i, j), v in pairs.items():
        ax.plot(
            *xy[[i, j]].T,
            color="tab:red" if v > 0 else "tab:blue",
            linewidth=8 * abs(v) / scale,
            alpha=0.6,
            zorder=1,
        )
    colors = ["tab:red" if m > 0 else "tab:blue" for m in mains]
    ax.scatter(*xy.T, s=50 + 2500 * np.abs(mains) / scale, c=colors, alpha=0.8, zorder=2)
    for i, name in enumerate(names):
        ax.annotate(f"{name}\n{mains[i]:+.4f}", 1.22 * xy[i], ha="center", va="center", fontsize=8)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return _save(fig, path)


def r2_curves(curves: Mapping[str, Sequence[float]], path: Path | str) -> Path:
    """R²(k) against the FSII order k, one line per game."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, r2 in curves.items():
        ax.plot(np.arange(1, len(r2) + 1), r2, marker="o", label=label)
    ax.set_xlabel("FSII order k")
    ax.set_ylabel("Shapley-weighted R²(k)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def anytime_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, Sequence[str]]], path: Path | str
) -> Path:
    """Anytime best score (mean ± std over seeds): all hyperparameters vs the top ones.

    Args:
        curves: ``{data set: (all (seeds, trials), top (seeds, trials), top names)}``.
        path: output image file.
    """
    plt = _pyplot()
    k = max(len(curves), 1)
    fig, axes = plt.subplots(1, k, figsize=(4.5 * k, 3.5), squeeze=False)
    for ax, (name, (all_c, top_c, top_names)) in zip(axes[0], curves.items(), strict=False):
        steps = np.arange(1, all_c.shape[1] + 1)
        for c, label in ((all_c, "all hyperparameters"), (top_c, "top: " + ", ".join(top_names))):
            mean, std = c.mean(0), c.std(0)
            ax.plot(steps, mean, label=label)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.set_title(name)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best validation score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)
