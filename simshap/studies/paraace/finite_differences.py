"""Mixed finite differences of a model: ParaACE's interaction strength (Eqs. 1 and 8).

For a set S of s features and a point x, the mixed difference is

    D_S F(x) = 1 / ((2h)^s) · Σ_{σ ∈ {-1, +1}^s} (Π_j σ_j) · F(x + h Σ_{j ∈ S} σ_j e_j),

which for s = 2 is the paper's four-point formula (Eq. 1) and for s = 3 its eight-point formula
(Eq. 8). With ``standardize=True`` the step of feature i is ``h · std(X_i)``, so the difference
approximates the derivative with respect to the standardized features (the paper's setting); the
local interaction strength is ``g(x, S) = D_S F(x)²`` and the global one its mean over the data.

Every model is evaluated on many (point, subset) rows per call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from simshap.errors import UserError
from simshap.games import SklearnModel

__all__ = [
    "BatchFunction",
    "as_batch_function",
    "check_data",
    "feature_steps",
    "mixed_difference",
    "interaction_strength",
    "sign_patterns",
]

BatchFunction = Callable[[torch.Tensor], torch.Tensor]


def _pick_output(out: torch.Tensor, output: int | None) -> torch.Tensor:
    if out.ndim == 1:
        return out
    if out.ndim != 2:
        raise UserError(f"the model must return (N,) or (N, C) outputs, got {tuple(out.shape)}")
    if output is None:
        if out.shape[1] == 1:
            return out[:, 0]
        if out.shape[1] == 2:  # binary classifier: the positive class
            return out[:, 1]
        raise UserError(
            f"the model returns {out.shape[1]} outputs; pass output=<column> to pick one"
        )
    if not 0 <= output < out.shape[1]:
        raise UserError(f"output={output} is out of range for a model with {out.shape[1]} outputs")
    return out[:, output]


def as_batch_function(model: Any, output: int | None = None) -> BatchFunction:
    """Wraps a model as ``F(x: (N, p) float64 tensor) -> (N,) float64 tensor``.

    Args:
        model: a torch module, a scikit-learn / LightGBM estimator (``predict_proba`` is used when
            present, else ``predict``) or any callable on a batch of rows.
        output: which output column to explain when the model has several (default: the only
            one, or the positive class of a binary classifier).

    Returns:
        The wrapped function; it runs torch modules under ``no_grad`` in their own dtype/device.
    """
    if isinstance(model, nn.Module):
        param = next(iter(model.parameters()), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else torch.device("cpu")

        def module_fn(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                out = model(x.to(device=device, dtype=dtype))
            return _pick_output(out, output).to(device="cpu", dtype=torch.float64)

        return module_fn
    if hasattr(model, "predict_proba") or hasattr(model, "predict"):
        kind = "proba" if hasattr(model, "predict_proba") else "predict"
        wrapped = SklearnModel(model, output=kind, dtype=torch.float64)

        def estimator_fn(x: torch.Tensor) -> torch.Tensor:
            return _pick_output(wrapped(x), output)

        return estimator_fn
    if callable(model):

        def callable_fn(x: torch.Tensor) -> torch.Tensor:
            out = model(x)
            if not isinstance(out, torch.Tensor):
                out = torch.as_tensor(np.asarray(out))
            return _pick_output(out, output).to(device="cpu", dtype=torch.float64)

        return callable_fn
    raise UserError(
        f"model must be a torch module, an estimator with predict/predict_proba or a callable, "
        f"got {type(model).__name__}"
    )


def check_data(X: Any, min_features: int = 2) -> torch.Tensor:
    """``X`` as a float64 ``(N, p)`` tensor; refuses bad shapes and NaN/infinite rows.

    Raises:
        UserError: with the offending rows named.
    """
    x = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < min_features:
        raise UserError(
            f"X must be a 2-D array of rows with at least {min_features} features, got shape "
            f"{tuple(x.shape)}"
        )
    bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten()
    if len(bad):
        shown = bad[:5].tolist()
        raise UserError(
            f"X has NaN or infinite values in {len(bad)} row(s) (e.g. rows {shown}); drop or "
            "impute them before detecting interactions"
        )
    return x


def check_step(h: float) -> float:
    """``h`` as a positive float, or a :class:`UserError` naming the fix."""
    if not isinstance(h, (int, float)) or not math.isfinite(h) or h <= 0:
        raise UserError(
            f"the finite-difference step h must be a positive number, got {h!r}; the paper "
            "recommends h in [0.6, 0.9] on standardized features"
        )
    return float(h)


def feature_steps(X: torch.Tensor, h: float, standardize: bool = True) -> torch.Tensor:
    """Per-feature steps ``(p,)``: ``h · std(X_i)`` (``h`` when ``standardize=False``).

    Constant features get the step ``h`` so that no step is zero.
    """
    h = check_step(h)
    if not standardize:
        return torch.full((X.shape[1],), h, dtype=torch.float64)
    std = X.std(dim=0) if X.shape[0] > 1 else torch.ones(X.shape[1], dtype=torch.float64)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return h * std.to(torch.float64)


def sign_patterns(s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``2^s`` sign vectors ``(2^s, s)`` and their products ``(2^s,)``."""
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=s)), dtype=torch.float64)
    return signs, signs.prod(dim=1)


def mixed_difference(
    F: BatchFunction,
    points: torch.Tensor,
    subsets: torch.Tensor,
    steps: torch.Tensor,
    batch_rows: int = 65536,
) -> torch.Tensor:
    """The mixed difference D_S F(x) of each row's point and feature subset.

    Args:
        F: a batch function (see :func:`as_batch_function`).
        points: ``(B, p)`` float64 points x.
        subsets: ``(B, s)`` long feature indices S (distinct within a row), one subset per row.
        steps: ``(p,)`` per-feature steps h_i.
        batch_rows: model rows per call (``2^s`` rows per (point, subset)).

    Returns:
        ``(B,)`` float64 estimates of ∂^s F / Π_{j∈S} ∂x_j (in units of the steps' scale: divided
        by Π_j 2 h_j / std_j when the steps are standardized, see :func:`interaction_strength`).
    """
    b, p = points.shape
    s = subsets.shape[1]
    signs, coef = sign_patterns(s)  # (K, s), (K,)
    k = signs.shape[0]
    h = steps[subsets]  # (B, s)
    delta = torch.zeros(b, k, p, dtype=torch.float64)
    idx = subsets.unsqueeze(1).expand(b, k, s)
    delta.scatter_add_(2, idx, signs.unsqueeze(0) * h.unsqueeze(1))
    rows = (points.unsqueeze(1) + delta).reshape(b * k, p)
    values = torch.cat([F(rows[i : i + batch_rows]) for i in range(0, b * k, batch_rows)])
    values = values.reshape(b, k).to(torch.float64)
    return (values * coef).sum(dim=1) / (2.0 * h).prod(dim=1)


def interaction_strength(
    model: Any,
    X: Any,
    subsets: Sequence[Sequence[int]],
    h: float = 0.8,
    standardize: bool = True,
    n_points: int | None = None,
    seed: int = 0,
    output: int | None = None,
) -> np.ndarray:
    """Global strength E_x[(D_S F(x))²] of each subset S by plain averaging (no bandit).

    Derivatives are taken with respect to standardized features when ``standardize`` is true
    (the raw difference quotient is multiplied by Π_j std_j).

    Args:
        model: torch module, estimator or callable (see :func:`as_batch_function`).
        X: ``(N, p)`` data; the expectation runs over its rows.
        subsets: feature subsets (all of the same size s ≥ 2).
        h: step on the standardized scale.
        standardize: steps ``h · std_i`` (True) or ``h`` (False).
        n_points: average over this many rows drawn with replacement (default: every row).
        seed: seed of the row draw.
        output: output column for multi-output models.

    Returns:
        ``(len(subsets),)`` strengths.
    """
    x = check_data(X)
    F = as_batch_function(model, output)
    subs = torch.as_tensor(np.asarray(subsets, dtype=np.int64))
    if subs.ndim != 2 or subs.shape[1] < 2:
        raise UserError("subsets must be a list of feature tuples of one size s >= 2")
    steps = feature_steps(x, h, standardize)
    scale = steps / h  # the std of each feature (1 without standardization)
    if n_points is None:
        rows = x
    else:
        gen = torch.Generator().manual_seed(seed)
        rows = x[torch.randint(x.shape[0], (n_points,), generator=gen)]
    out = []
    for sub in subs:
        d = mixed_difference(F, rows, sub.expand(rows.shape[0], -1), steps)
        d = d * scale[sub].prod()
        out.append(float((d**2).mean()))
    return np.asarray(out)
