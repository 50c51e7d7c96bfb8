"""Amortized explainers: SimSHAP and FastSHAP (Lightning modules with ``explain``)."""

from simshap.explainers.base import AmortizedExplainer, load_explainer
from simshap.explainers.fastshap import FastSHAP, additive_efficient_normalization
from simshap.explainers.simshap import SimSHAP

__all__ = [
    "AmortizedExplainer",
    "FastSHAP",
    "SimSHAP",
    "additive_efficient_normalization",
    "load_explainer",
]
