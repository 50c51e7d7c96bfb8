"""simshap: amortized Shapley-value explanations (SimSHAP, FastSHAP) and their game layer."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Players", "ShapleyValues", "__version__", "load_explainer"]


def __getattr__(name: str) -> Any:
    # heavy layers (Lightning) load only when asked for
    if name == "ShapleyValues":
        from simshap.shapley_values import ShapleyValues

        return ShapleyValues
    if name == "Players":
        from simshap.players import Players

        return Players
    if name == "load_explainer":
        from simshap.io import load_explainer

        return load_explainer
    raise AttributeError(f"module 'simshap' has no attribute {name!r}")
