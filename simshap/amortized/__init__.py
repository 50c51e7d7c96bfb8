"""Amortized explainers: the surrogate, SimSHAP, FastSHAP, the labels regression.

Also their training, validation, saving and export.
"""

from simshap.amortized.base import AmortizedExplainer, efficient_normalization
from simshap.amortized.fastshap import FastSHAP
from simshap.amortized.labels import LabelRegression
from simshap.amortized.simshap import SimSHAP
from simshap.amortized.surrogate import Surrogate

__all__ = [
    "AmortizedExplainer",
    "FastSHAP",
    "LabelRegression",
    "SimSHAP",
    "Surrogate",
    "efficient_normalization",
]
