"""Figures of the causal study: analogues of the paper's Figs. 2, 3 and 4.

``fig2_optimizer_ite.png``: ITE of each optimizer value on Y and on E per bucket (Fig. 2);
``fig3_ite_scatter.png`` and ``fig3_correlations.png``: ITE_Y against ITE_E and their
correlations (Fig. 3, left and right); ``fig4_direct_total.png``: total vs direct (Fig. 4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = [
    "plot_correlations",
    "plot_direct_total",
    "plot_ite_scatter",
    "plot_optimizer_ites",
    "write_figures",
]

_LABELS = {
    "identity": "Identity",
    "gradient": "Grad",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "IG",
    "gradcam": "Grad-CAM",
    "shapley": "Shapley (4x4)",
}


def _save(fig: plt.Figure, path: Path) -> None:
    """Write the figure atomically (temp file + rename)."""
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def plot_ite_scatter(res: Mapping[str, Any], path: Path) -> None:
    """ITE_Y (x) against ITE_E (y) per bucket (columns) and method (rows), the total effect."""
    buckets, methods = res["buckets"], res["methods"]
    fig, axes = plt.subplots(
        len(methods),
        len(buckets),
        figsize=(2.2 * len(buckets), 2.0 * len(methods)),
        squeeze=False,
    )
    for j, b in enumerate(buckets):
        y = b["ite"]["Y"].flatten()
        for i, m in enumerate(methods):
            ax = axes[i, j]
            ax.scatter(y, b["ite"][f"total/{m}"].flatten(), s=2, alpha=0.3, rasterized=True)
            r = b["corr"][m]["total_pearson"]["value"]
            ax.set_title(f"{b['name']}  r={r:.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel(f"ITE_E {_LABELS.get(m, m)}", fontsize=7)
            if i == len(methods) - 1:
                ax.set_xlabel("ITE_Y", fontsize=7)
    _save(fig, path)


def plot_optimizer_ites(
    res: Mapping[str, Any], grid: Mapping[str, Any], path: Path, hparam: str = "optimizer"
) -> None:
    """Mean ITE (± std over images) of each value of ``hparam`` on Y and E, per bucket (Fig. 2).

    Rows: Y, then each method's total effect; columns: buckets. Within a bucket the ITEs are
    relative to that bucket's control group, so compare patterns, not heights, across columns.
    """
    names = list(grid)
    i = names.index(hparam)
    buckets, methods = res["buckets"], res["methods"]
    keys = ["Y"] + [f"total/{m}" for m in methods if m != "identity"]
    fig, axes = plt.subplots(
        len(keys), len(buckets), figsize=(1.9 * len(buckets), 1.5 * len(keys)), squeeze=False
    )
    for j, b in enumerate(buckets):
        rows = [(r, v) for r, (h, v) in enumerate(b["contrasts"]) if h == i]
        for r, key in enumerate(keys):
            ax = axes[r, j]
            ite = b["ite"][key]
            vals = [np.asarray(ite[row], dtype=float) for row, _ in rows]
            ax.bar(
                range(len(rows)), [v.mean() for v in vals], yerr=[v.std() for v in vals], capsize=2
            )
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels([str(grid[hparam][v]) for _, v in rows], fontsize=6)
            ax.tick_params(labelsize=6)
            if r == 0:
                ax.set_title(b["name"], fontsize=7)
            if j == 0:
                label = "ITE_Y" if key == "Y" else f"ITE_E {_LABELS.get(key[6:], key[6:])}"
                ax.set_ylabel(label, fontsize=7)
    _save(fig, path)


def _yerr(vals: Sequence[Mapping[str, Any]]) -> list[list[float]]:
    """Error bars of percentile intervals (which need not contain the point estimate)."""
    return [
        [max(0.0, v["value"] - v["ci"][0]) for v in vals],
        [max(0.0, v["ci"][1] - v["value"]) for v in vals],
    ]


def _bucket_axis(ax: plt.Axes, names: Sequence[str]) -> None:
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, fontsize=7)
    ax.axhline(0.0, color="grey", lw=0.5)


def plot_correlations(res: Mapping[str, Any], path: Path) -> None:
    """Pearson and Spearman corr(ITE_Y, ITE_E) per bucket and method, with bootstrap CIs."""
    buckets, methods = res["buckets"], res["methods"]
    names = [b["name"] for b in buckets]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, kind in zip(axes, ("pearson", "spearman"), strict=True):
        for k, m in enumerate(methods):
            vals = [b["corr"][m][f"total_{kind}"] for b in buckets]
            xs = [x + (k - len(methods) / 2) * 0.06 for x in range(len(buckets))]
            mid = [v["value"] for v in vals]
            err = _yerr(vals)
            ax.errorbar(xs, mid, yerr=err, marker="o", ms=3, capsize=2, label=_LABELS.get(m, m))
        _bucket_axis(ax, names)
        ax.set_title(f"{kind.capitalize()} corr(ITE_Y, ITE_E)")
        ax.set_ylim(-1.05, 1.05)
    axes[1].legend(fontsize=7)
    _save(fig, path)


def plot_direct_total(res: Mapping[str, Any], path: Path) -> None:
    """Pearson correlation for total vs direct effect, and total minus direct (mediated by Y)."""
    buckets, methods = res["buckets"], res["methods"]
    names = [b["name"] for b in buckets]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in methods:
        tot = [b["corr"][m]["total_pearson"]["value"] for b in buckets]
        dire = [b["corr"][m]["direct_pearson"]["value"] for b in buckets]
        line = axes[0].plot(tot, ls=":", marker="o", ms=3, label=f"{_LABELS.get(m, m)} total")
        axes[0].plot(dire, ls="-", marker="x", ms=3, color=line[0].get_color())
        med = [b["corr"][m]["mediated_pearson"] for b in buckets]
        err = _yerr(med)
        axes[1].errorbar(
            range(len(buckets)),
            [v["value"] for v in med],
            yerr=err,
            marker="o",
            ms=3,
            capsize=2,
            label=_LABELS.get(m, m),
        )
    axes[0].set_title("corr(ITE_Y, ITE_E): total (dotted) vs direct (solid)")
    axes[1].set_title("total − direct (mediated through Y)")
    for ax in axes:
        _bucket_axis(ax, names)
    axes[0].legend(fontsize=6)
    _save(fig, path)


FIGURES: tuple[str, ...] = (
    "fig2_optimizer_ite",
    "fig3_ite_scatter",
    "fig3_correlations",
    "fig4_direct_total",
)


def write_figures(res: Mapping[str, Any], out: Path, grid: Mapping[str, Any]) -> list[Path]:
    """Write the four figures of :data:`FIGURES` as PNG files into ``out``."""
    paths = [out / f"{name}.png" for name in FIGURES]
    plot_optimizer_ites(res, grid, paths[0])
    for fn, p in zip(
        (plot_ite_scatter, plot_correlations, plot_direct_total), paths[1:], strict=True
    ):
        fn(res, p)
    return paths
