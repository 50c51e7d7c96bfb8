"""How faithful a surrogate is to the model it stands in for, said in numbers and warnings.

The surrogate game's values are the Shapley values of s(x, m), not of the model f. How far they
can be from the model's own is bounded by how far s(x, 1) = v(N) is from f(x): :func:`fidelity`
measures it on held-out rows (mean and max |v(N) − f(x)|, class agreement or R²), and
:func:`warn_fidelity` warns below the documented thresholds :data:`FIDELITY_WARNING`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

__all__ = ["FIDELITY_WARNING", "fidelity", "fidelity_problems", "warn_fidelity"]


#: fidelity below these is warned about: class agreement, R² (regression), mean |v(N) - f(x)|
FIDELITY_WARNING = {"agreement": 0.95, "r2": 0.9, "mean_abs_gap": 0.05}


@torch.no_grad()
def fidelity(surrogate: Any, x: torch.Tensor, target: Any, task: str) -> dict[str, Any]:
    """How faithful the surrogate's full-coalition value v(N) is to the model, on held-out rows.

    Args:
        surrogate: the trained surrogate.
        x: network inputs of held-out rows ``(n, F)``.
        target: the model's explained quantity on those rows ``(n, C)``.
        task: ``"classification"`` or ``"regression"``.

    Returns:
        ``{"rows", "mean_abs_gap", "max_abs_gap"}`` (|v(N) − f(x)| over rows and outputs) plus
        ``"agreement"`` (the share of rows where both predict the same class) or ``"r2"``.
    """
    x = torch.as_tensor(x, dtype=torch.float32).to(surrogate.device)
    full = torch.ones(x.shape[0], surrogate.num_players, dtype=torch.bool, device=x.device)
    v = surrogate.value(x, surrogate.groups.feature_mask(full)).double().cpu()
    f = torch.as_tensor(np.asarray(target), dtype=torch.float64)
    gap = (v - f).abs()
    out: dict[str, Any] = {
        "rows": int(x.shape[0]),
        "mean_abs_gap": float(gap.mean()),
        "max_abs_gap": float(gap.max()),
    }
    if task == "regression":
        ss_res = float(((v - f) ** 2).sum())
        ss_tot = float(((f - f.mean(0)) ** 2).sum())
        out["r2"] = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    else:
        out["agreement"] = float((v.argmax(1) == f.argmax(1)).double().mean())
    return out


def fidelity_problems(fid: dict[str, Any] | None) -> list[str]:
    """The fidelity figures below :data:`FIDELITY_WARNING`, as readable phrases."""
    if not fid:
        return []
    problems = []
    if fid.get("agreement", 1.0) < FIDELITY_WARNING["agreement"]:
        problems.append(
            f"it predicts the model's class on {fid['agreement']:.1%} of held-out "
            f"rows (below {FIDELITY_WARNING['agreement']:.0%})"
        )
    r2 = fid.get("r2")
    if r2 is not None and not r2 >= FIDELITY_WARNING["r2"]:
        problems.append(
            f"its R² against the model's predictions is {r2:.3f} (below {FIDELITY_WARNING['r2']})"
        )
    if "agreement" in fid and fid["mean_abs_gap"] > FIDELITY_WARNING["mean_abs_gap"]:
        problems.append(
            f"its value v(N) misses the model's output by {fid['mean_abs_gap']:.3f} "
            f"on average (above {FIDELITY_WARNING['mean_abs_gap']})"
        )
    return problems


def warn_fidelity(fid: dict[str, Any] | None) -> None:
    """Warn when the surrogate is a poor stand-in for the model (see :data:`FIDELITY_WARNING`)."""
    problems = fidelity_problems(fid)
    if problems:
        warnings.warn(
            "the surrogate is not faithful to the model: " + "; ".join(problems) + ". Its game's "
            "Shapley values may be far from the model's: train it longer or wider "
            "(surrogate max_epochs / hidden), give it more rows, or explain the model itself "
            "with game='marginal'",
            UserWarning,
            stacklevel=3,
        )
