"""simshap: amortized Shapley-value explanations (SimSHAP, FastSHAP) and their game layer.

The public API, flat::

    import simshap
    explainer = simshap.fit(model, X)          # train an explainer of your model
    sv = explainer(X_new)                      # ShapleyValues: base + Σφ = prediction
    simshap.save(explainer, "explainer.pt"); simshap.load("explainer.pt", model=model)

and the estimators of the game layer (``exact_shapley``, ``kernel_shap``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module; loaded when first used (Lightning and torch load only when asked for)
_EXPORTS = {
    "fit": "simshap.runs.fit",
    "load": "simshap.amortized.io",
    "save": "simshap.amortized.io",
    "load_explainer": "simshap.amortized.io",
    "save_explainer": "simshap.amortized.io",
    "export_explainer": "simshap.amortized.export",
    "explain_file": "simshap.serving.files",
    "explain_spark": "simshap.serving.spark",
    "explain_ray": "simshap.serving.ray",
    "ShapleyValues": "simshap.results",
    "InteractionValues": "simshap.interactions.values",
    "Players": "simshap.players",
    "UserError": "simshap.errors",
    "ModelAdapter": "simshap.models.adapter",
    "SimSHAP": "simshap.amortized",
    "FastSHAP": "simshap.amortized",
    "exact_shapley": "simshap.estimators",
    "kernel_shap": "simshap.estimators",
    "permutation_shapley": "simshap.estimators",
    "appro_semivalue": "simshap.estimators",
    "sim_semivalue": "simshap.estimators",
    "kernel_shap_with_prior": "simshap.estimators",
    "chunked_shapley": "simshap.estimators.chunks",
    "exact_interactions": "simshap.interactions",
    "approx_fsii": "simshap.interactions",
    "BaselineGame": "simshap.games.values",
    "MarginalGame": "simshap.games.values",
    "MaskedModelGame": "simshap.games.values",
    "RowsGame": "simshap.games.rows",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'simshap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
