"""Run configuration: YAML files in ``configs/`` merged over defaults, with strict keys."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from simshap.errors import MissingFileError, UserError

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
    # model.path: your own trained model (LightGBM .txt, or a joblib/pickle estimator that
    # takes the table's raw rows) instead of training LightGBM here
    "model": {"path": None, "max_rounds": 5000, "early_stopping_rounds": 50},
    "surrogate": {
        "hidden": 512,
        "layers": 4,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "cosine": False,
        "batch_size": 128,
        "masks_per_row": 4,
        "max_epochs": 100,
        "patience": 10,
        "compile": False,
    },
    "explainer": {
        "methods": ["simshap", "simshap_paper", "fastshap"],  # the explainers a run trains
        "hidden": 512,
        "layers": 3,
        "n_masks": 32,
        "paired": True,
        "centered": True,
        "target": "default",
        # SimSHAP (default target): regress on each row's mean target over the epochs so far;
        # null: on unless input_noise > 0 (a row's noisy copies are different inputs)
        "average_targets": None,
        # SimSHAP (averaging targets): epochs after the max_epochs sampling epochs that fit g
        # to the mean targets with no surrogate call (0: none)
        "memory_epochs": 0,
        "normalize": True,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "cosine": True,
        "label_budget": None,  # 'labels' explainer: evaluations per row (None: 2048)
        "label_rows": None,  # 'labels' explainer: training rows to label (None: all)
        "label_epochs": None,  # 'labels' explainer: epochs (None: max_epochs; epochs are cheap)
        "batch_size": 32,
        "surrogate_batch_size": None,
        "compile": False,
        "max_epochs": 100,
        "patience": 10,
        "val_instances": 128,
        "val_budget": 2048,
        "efficiency_lambda": 0.0,
        "input_noise": 0.0,  # std of Gaussian noise on the standardized training inputs
    },
    "evaluation": {
        "n_instances": 100,
        # auto: exact Shapley values when d <= 16, else KernelSHAP until Covert & Lee's
        # per-class criterion < threshold; or exact / kernel_shap
        "ground_truth": "auto",
        "threshold": 0.01,
        "budgets": [128, 256, 512, 1024, 2048],
    },
    "trainer": {"accelerator": "auto", "devices": 1, "num_nodes": 1, "strategy": "auto",
                "precision": "32-true", "progress_bar": True, "max_time": None},
}


# Image runs (issue 4, ``simshap.image_pipeline.ImageRun``): GPU-sized defaults, same strict-key
# rules. ``superpixel_size``: the players are k x k superpixels (2: 256 players on 32 x 32 images).
# ``data``: where the images come from (``source`` only for CIFAR-10: auto / torchvision / subset;
# ``train_size``: keep only the first n training images, for quick runs); ``model``: the original
# ResNet-18 classifier; ``surrogate``: the 4-channel ResNet-18 s(x, m) trained with KL to the
# classifier on augmented batches (``compile``: torch.compile its network; ``init``: random, or
# ``classifier`` to start from the classifier's weights, the mask channel's at zero); ``explainer``:
# the network shared by SimSHAP (``n_masks`` paired, ``centered``) and FastSHAP (``normalize``,
# ``efficiency_lambda``): ``backbone: unet`` (``base_width``, ``depth``) or ``resnet18`` (the
# classifier's ResNet-18 trunk at ``model.width`` cut at the superpixel grid, a 1x1 head), with
# ``init: classifier`` to start that trunk from the classifier's weights; ``evaluation``:
# insertion / deletion on the first ``n_images`` test images for SimSHAP, FastSHAP and each of
# ``baselines`` (options per method); ``trainer``: Lightning
# settings (``precision: auto`` = bf16-mixed on a bf16-capable GPU, else 32-true; ``devices: N``
# with ``strategy: ddp`` trains on N GPUs; ``max_time`` caps every training stage).
IMAGE_DEFAULTS: dict[str, Any] = {
    "dataset": None,
    "data_dir": None,
    "seed": 0,
    "superpixel_size": 2,
    "data": {
        "source": "auto",
        "val_size": 0.1,
        "train_size": None,
        "num_workers": 4,
        "augment": True,
    },
    "model": {
        "width": 64,
        "optimizer": "sgd",
        "lr": 0.1,
        "weight_decay": 5e-4,
        "scheduler": "onecycle",
        "label_smoothing": 0.0,
        "batch_size": 256,
        "max_epochs": 40,
        "patience": 10,
    },
    "surrogate": {
        "width": 64,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "batch_size": 256,
        "masks_per_row": 1,
        "max_epochs": 40,
        "patience": 8,
        "compile": False,
        "init": "random",
    },
    "explainer": {
        "methods": ["simshap", "simshap_paper", "fastshap"],
        "backbone": "unet",
        "init": "random",
        "base_width": 64,
        "depth": 3,
        "n_masks": 8,
        "paired": True,
        "centered": True,
        "target": "default",
        "normalize": True,
        "efficiency_lambda": 0.1,
        "lr": 2e-4,
        "weight_decay": 0.0,
        "cosine": True,
        "batch_size": 128,
        "augment": True,
        "max_epochs": 40,
        "patience": 8,
        "val_instances": 64,
        "val_budget": 1024,
        "surrogate_batch_size": None,
        "compile": False,
    },
    "evaluation": {
        "n_images": 100,
        "batch_size": 1024,
        # paper normalization: images with f_x - f_blur or f_x - f_0 below this many logits
        # are counted and reported apart (their normalized AUCs explode or flip sign)
        "denominator_eps": 0.5,
        "figure_images": 6,
        "baselines": ["random", "ig", "smoothgrad", "gradcam", "kernelshap", "kernelshap_s",
                      "deepshap"],
        # budget: model passes per image (gradient methods) or game evaluations per image
        # (KernelSHAP, ∅ and N included; kernelshap's None = shap's default 2d + 2048)
        "ig": {"budget": 64, "internal_batch_size": 256},
        "smoothgrad": {"budget": 32, "stdev": 0.15, "samples_batch_size": 8},
        "gradcam": {"relu_attributions": False},
        "kernelshap": {"budget": None, "batch_size": 1024},
        "kernelshap_s": {"budget": 2562, "batch_size": 4096},
        "deepshap": {"explainer": "auto", "budget": 200, "background_size": 32},
    },
    "trainer": {
        "accelerator": "auto",
        "devices": 1,
        "num_nodes": 1,
        "strategy": "auto",
        "precision": "auto",
        "channels_last": True,
        "progress_bar": True,
        "max_time": None,
    },
}


def defaults_for(dataset: str | None) -> dict[str, Any]:
    """The defaults that apply to a data set (image or tabular)."""
    return IMAGE_DEFAULTS if dataset in IMAGE_DATASETS else TABULAR_DEFAULTS


def merge_config(
    defaults: dict[str, Any],
    user: dict[str, Any],
    where: str = "",
    replace: tuple[str, ...] = (),
) -> dict:
    """Merge ``user`` over ``defaults``: the one config mechanism of runs, studies, benchmarks.

    Unknown keys raise :class:`~simshap.errors.UserError` naming them and the allowed ones; a
    mapping default only takes a mapping.

    Args:
        defaults: every allowed key with its default value (nested mappings merge key by key).
        user: the user's values.
        where: dotted prefix of ``user`` inside the whole config (for messages).
        replace: dotted keys whose user mapping replaces the default wholesale (free keys, such
            as a search space).

    Returns:
        A new dict; ``defaults`` is not modified.
    """
    if not isinstance(user, dict):
        raise UserError(f"the config{' at ' + where[:-1] if where else ''} must be a mapping")
    out = copy.deepcopy(defaults)
    for key, value in user.items():
        if key not in defaults:
            allowed = ", ".join(sorted(defaults))
            scope = f" in {where[:-1]}" if where else ""
            raise UserError(f"unknown config key {where + key!r}; allowed keys{scope}: {allowed}")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"config key {where + key!r} must be a mapping")
            if where + key in replace:
                out[key] = copy.deepcopy(value)
            else:
                out[key] = merge_config(defaults[key], value, f"{where}{key}.", replace)
        else:
            out[key] = value
    return out


def _renamed(user: dict[str, Any]) -> dict[str, Any]:
    """Map renamed keys of older configs (and run folders) to their new names.

    ``explainer.control_variate`` (true / false) became ``explainer.target`` (default / paper).
    """
    explainer = user.get("explainer")
    if isinstance(explainer, dict) and "control_variate" in explainer:
        if "target" in explainer:
            raise UserError(
                "give explainer.target only (explainer.control_variate is its old name)"
            )
        explainer = dict(explainer)
        cv = explainer.pop("control_variate")
        explainer["target"] = "default" if cv else "paper"
        user = {**user, "explainer": explainer}
    return user


def load_config(path: str | os.PathLike[str], defaults: dict[str, Any] | None = None) -> dict:
    """Read a YAML config and merge it over ``defaults`` (by default those of its data set)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"config file {path} not found (see configs/ for examples)")
    with open(path) as fh:
        try:
            user = yaml.safe_load(fh) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(user, dict):
        raise UserError(f"{path} must hold a YAML mapping of config keys")
    cfg = merge_config(defaults or defaults_for(user.get("dataset")), _renamed(user))
    if not cfg.get("dataset"):
        raise UserError(f"{path} must name a dataset (key 'dataset')")
    return cfg
