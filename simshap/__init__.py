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
    "fit": "simshap.api",
    "load": "simshap.io",
    "save": "simshap.io",
    "load_explainer": "simshap.io",
    "save_explainer": "simshap.io",
    "ShapleyValues": "simshap.shapley_values",
    "Players": "simshap.players",
    "UserError": "simshap.errors",
    "ModelAdapter": "simshap.adapter",
    "SimSHAP": "simshap.explainers",
    "FastSHAP": "simshap.explainers",
    "exact_shapley": "simshap.games.estimators",
    "kernel_shap": "simshap.games.estimators",
    "permutation_shapley": "simshap.games.estimators",
    "appro_semivalue": "simshap.games.estimators",
    "sim_semivalue": "simshap.games.estimators",
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
