"""Profiles: the sizes and schedules a tabular run's keys left at None take, by the table's size.

``profile: auto`` (the default) is ``small`` up to :data:`SMALL_TABLE_ROWS` training rows and
``large`` above; ``profile: small`` or ``profile: large`` chooses one. A key set in the config
always wins over its profile.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["GAME_PROFILES", "PROFILES", "SMALL_TABLE_ROWS", "resolve_profile"]

#: training rows up to which ``profile: auto`` is ``small``
SMALL_TABLE_ROWS = 2000
#: the sizes and schedules a profile gives the keys left at None. ``small`` is the breast-cancer
#: main job's settings, chosen on its validation split (455 training rows: the rows, not the
#: targets, limit the explainer, so longer training on noised inputs pays), with the explainer's
#: weight decay and epochs chosen on the README one call's validation l2 (0.05 x 200 epochs:
#: 0.0434; 0.4 x 200: 0.0413; 0.4 x 300: 0.0366); ``large`` those of the census and news runs.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "small": {
        "surrogate": {
            "hidden": 128,
            "layers": 3,
            "batch_size": 64,
            "masks_per_row": 8,
            "max_epochs": 60,
            "patience": 8,
            "weight_decay": 0.0,
        },
        "explainer": {
            "hidden": 512,
            "layers": 3,
            "n_masks": 128,
            "batch_size": 32,
            "max_epochs": 300,
            "patience": 300,
            "weight_decay": 0.4,
            "input_noise": 0.3,
            "input_bins": 0,
            "val_instances": 64,
            "val_budget": 4096,
        },
    },
    "large": {
        "surrogate": {
            "hidden": 512,
            "layers": 4,
            "batch_size": 128,
            "masks_per_row": 4,
            "max_epochs": 100,
            "patience": 10,
            "weight_decay": 0.0,
        },
        "explainer": {
            "hidden": 512,
            "layers": 3,
            "n_masks": 32,
            "batch_size": 32,
            "max_epochs": 100,
            "patience": 10,
            "weight_decay": 0.0,
            "input_noise": 0.0,
            "input_bins": 0,
            "val_instances": 128,
            "val_budget": 2048,
        },
    },
}


#: keys left at None that a game sets before the size profile does. The marginal game's
#: validation targets cost ``val_instances * val_budget * background_size`` model rows (26M with
#: the large profile's 128 x 2048 and 100 background rows, four minutes of a LightGBM model on
#: census): fewer rows and evaluations keep them to a few million. Its values are the model's
#: own, with a step wherever a tree splits: thermometer inputs at 127 cuts per feature let the
#: MLP follow them (census LightGBM, the MLP regressed on the exact values: relative l2 0.179 on
#: standardized inputs, 0.048 with them; see docs/tabular.md).
GAME_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "marginal": {"explainer": {"val_instances": 32, "val_budget": 1024, "input_bins": 128}},
}


def resolve_profile(cfg: dict[str, Any], train_rows: int) -> dict[str, Any]:
    """The config with every key left at None taken from its profile (by the table's size).

    The game's own settings (:data:`GAME_PROFILES`) come first, then the size profile's.
    """
    name = cfg.get("profile", "auto")
    if name == "auto":
        name = "small" if train_rows <= SMALL_TABLE_ROWS else "large"
    out = copy.deepcopy(cfg)
    for section, values in GAME_PROFILES.get(str(cfg.get("game", "surrogate")), {}).items():
        for key, value in values.items():
            if out[section].get(key) is None:
                out[section][key] = value
    for section, values in PROFILES[name].items():
        for key, value in values.items():
            if out[section].get(key) is None:
                out[section][key] = value
    out["profile"] = name
    return out
