"""Figures of the ParaACE study: pulls against the naive budget, pair-score heat maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simshap.studies.paraace.detect import all_pairs
from simshap.studies.paraace.synthetic import FUNCTIONS, pair_labels

__all__ = ["plot_heatmaps", "plot_pulls", "score_matrix"]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def score_matrix(p: int, scores: Any) -> np.ndarray:
    """Symmetric ``(p, p)`` matrix of pair scores given in :func:`all_pairs` order."""
    mat = np.zeros((p, p))
    for (i, j), s in zip(all_pairs(p), np.asarray(scores, dtype=np.float64), strict=True):
        mat[i, j] = mat[j, i] = s
    return mat


def plot_pulls(summary: dict[str, Any], path: Path) -> Path:
    """Bar chart of the mean UCB pulls per data set beside the naive m·n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = summary["per_dataset"]
    names = list(per)
    pulls = [per[n]["pulls"]["mean"] for n in names]
    err = [per[n]["pulls"]["std"] for n in names]
    naive = [per[n]["naive_pulls"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(names))
    ax.bar(x, pulls, yerr=err, color="tab:green", label="UCB (Algorithm 1)")
    ax.plot(x, naive, "k_", markersize=28, mew=2, label="naive m·n")
    ax.plot(x, np.asarray(naive) / 2, "r_", markersize=28, mew=1.5, label="half of naive")
    ax.set_xticks(x, names)
    ax.set_ylabel("pulls")
    ax.set_title("Pulls to detect the top-k pairs")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_heatmaps(records: dict[str, dict[str, Any]], path: Path) -> Path:
    """For each data set: UCB pair scores beside the ground truth (synthetic data).

    Args:
        records: ``{name: detection record}`` (one seed each, as from ``run_detection``).
        path: PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(records)
    fig, axes = plt.subplots(len(names), 2, figsize=(5, 2.4 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        scores = np.array(list(records[name]["ucb"]["scores"].values()))
        p = int(round((1 + np.sqrt(1 + 8 * len(scores))) / 2))
        ax = axes[row, 0]
        ax.imshow(score_matrix(p, np.sqrt(scores)), cmap="viridis")
        ax.set_title(f"{name}: sqrt(UCB score)", fontsize=8)
        ax = axes[row, 1]
        if name in FUNCTIONS:
            truth = score_matrix(p, pair_labels(name, all_pairs(p)))
            ax.imshow(truth, cmap="Greys", vmin=0, vmax=1)
            ax.set_title(f"{name}: ground truth", fontsize=8)
        else:
            ax.axis("off")
        for a in axes[row]:
            a.set_xticks(range(p), [str(i + 1) for i in range(p)], fontsize=6)
            a.set_yticks(range(p), [str(i + 1) for i in range(p)], fontsize=6)
    return _save(fig, path)
