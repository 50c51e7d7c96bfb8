"""Run configuration: YAML files in ``configs/`` merged over defaults, with strict keys."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "IMAGE_DATASETS",
    "IMAGE_DEFAULTS",
    "TABULAR_DEFAULTS",
    "defaults_for",
    "load_config",
    "merge_config",
]

IMAGE_DATASETS = ("cifar10", "cifar10-subset", "fashion_mnist")

TABULAR_DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "data_dir": None,
    "seed": 0,
    "model": {"max_rounds": 5000, "early_stopping_rounds": 50},
    "surrogate": {
        "hidden": 512,
        "layers": 4,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 128,
        "masks_per_row": 4,
        "max_epochs": 100,
        "patience": 10,
    },
    "explainer": {
        "hidden": 512,
        "layers": 3,
        "n_masks": 32,
        "paired": True,
        "centered": True,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 32,
        "max_epochs": 100,
        "patience": 10,
        "val_instances": 128,
        "val_budget": 2048,
        "efficiency_lambda": 0.0,
    },
    "evaluation": {
        "n_instances": 100,
        "threshold": 0.01,
        "budgets": [128, 256, 512, 1024, 2048],
    },
    "trainer": {"accelerator": "auto", "devices": 1, "precision": "32-true",
                "progress_bar": True},
}


# Image runs (issue 4): filled in by simshap.image_pipeline's owner; same strict-key rules.
IMAGE_DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "data_dir": None,
    "seed": 0,
}


def defaults_for(dataset: str | None) -> dict[str, Any]:
    """The defaults that apply to a data set (image or tabular)."""
    return IMAGE_DEFAULTS if dataset in IMAGE_DATASETS else TABULAR_DEFAULTS


def merge_config(defaults: dict[str, Any], user: dict[str, Any], where: str = "") -> dict:
    """Merge ``user`` over ``defaults``; unknown keys raise a ``ValueError`` naming them."""
    out = copy.deepcopy(defaults)
    for key, value in user.items():
        if key not in defaults:
            allowed = ", ".join(sorted(defaults))
            scope = f" in {where[:-1]}" if where else ""
            raise ValueError(f"unknown config key {where + key!r}; allowed keys{scope}: {allowed}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"config key {where + key!r} must be a mapping")
            out[key] = merge_config(defaults[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike[str], defaults: dict[str, Any] | None = None) -> dict:
    """Read a YAML config and merge it over ``defaults`` (by default those of its data set)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found (see configs/ for examples)")
    with open(path) as fh:
        user = yaml.safe_load(fh) or {}
    if not isinstance(user, dict):
        raise ValueError(f"{path} must hold a YAML mapping of config keys")
    cfg = merge_config(defaults or defaults_for(user.get("dataset")), user)
    if not cfg.get("dataset"):
        raise ValueError(f"{path} must name a dataset (key 'dataset')")
    return cfg
