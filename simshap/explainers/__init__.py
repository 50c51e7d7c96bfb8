"""Amortized explainers: SimSHAP and FastSHAP (Lightning modules with ``explain``)."""

from typing import Any

from simshap.explainers.base import AmortizedExplainer, efficient_normalization
from simshap.explainers.fastshap import FastSHAP
from simshap.explainers.simshap import SimSHAP

__all__ = [
    "AmortizedExplainer",
    "FastSHAP",
    "SimSHAP",
    "efficient_normalization",
    "load_explainer",
]


def __getattr__(name: str) -> Any:
    # saving and loading live one layer up, in simshap.io (no import cycle)
    if name == "load_explainer":
        from simshap.io import load_explainer

        return load_explainer
    raise AttributeError(f"module 'simshap.explainers' has no attribute {name!r}")
