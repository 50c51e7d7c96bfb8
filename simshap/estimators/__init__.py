"""Shapley-value estimators, each returning :class:`~simshap.ShapleyValues`.

Exact, KernelSHAP (+ Leverage SHAP, tree-adjusted), permutation sampling, ApproSemivalue and
Sim-Semivalue, and the refinement of an amortized estimate.

Every estimator takes a game, works on all its instances and outputs at once, counts its
``budget`` in game evaluations per instance (v(∅) and v(N) included) and returns
:class:`~simshap.ShapleyValues`.
"""

from simshap.estimators.exact import MAX_EXACT_PLAYERS, exact_shapley
from simshap.estimators.kernel import convergence_ratio, kernel_shap
from simshap.estimators.permutation import permutation_shapley
from simshap.estimators.refine import kernel_shap_with_prior
from simshap.estimators.semivalues import (
    appro_semivalue,
    semivalue_mc,
    sim_semivalue,
    sim_semivalue_target,
)

__all__ = [
    "MAX_EXACT_PLAYERS",
    "appro_semivalue",
    "convergence_ratio",
    "exact_shapley",
    "kernel_shap",
    "kernel_shap_with_prior",
    "permutation_shapley",
    "semivalue_mc",
    "sim_semivalue",
    "sim_semivalue_target",
]
