"""Your own image classifier: the user's model and images, surrogate, explainers, accuracy.

A config with ``modality: image`` runs this job (``simshap run CONFIG --out DIR``)::

    modality: image
    model: {path: model.pt}            # TorchScript, torch.export .pt2, or module:function
    dataset: {path: images/, channels: 3, image_size: [32, 32],
              mean: [0.49, 0.48, 0.45], std: [0.25, 0.24, 0.26]}
    superpixel_size: 4                 # divides H and W

Stages (all in ``DIR``): the surrogate (a copy of the user's classifier fine-tuned on masked
images, warm-started from the user's weights), SimSHAP and FastSHAP (trunk of the user's model
cut at the superpixel grid with a 1x1 head, or a U-Net), then the evaluation of
:mod:`simshap.runs.user_image_eval` and the ONNX export of the SimSHAP explainer.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized.fastshap import FastSHAP
from simshap.amortized.image_export import export_image_explainer
from simshap.amortized.io import save_explainer
from simshap.amortized.schedule import budget_callbacks, max_time
from simshap.amortized.simshap import SimSHAP
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.training import fit_module
from simshap.data.image_folder import ImageArrays, augment_images, load_image_dataset
from simshap.errors import ExistingOutputError, UserError
from simshap.models.user_image import describe_model, find_grid_node, load_image_model
from simshap.players import Players
from simshap.runs.user_image_eval import evaluate_user_image

__all__ = [
    "USER_IMAGE_DEFAULTS",
    "UserImageRun",
    "merge_user_image_config",
    "user_image_table",
]

USER_IMAGE_DEFAULTS: dict[str, Any] = {
    "modality": "image",
    "seed": 0,
    "model": {"path": None},
    "dataset": {"path": None, "channels": 3, "image_size": None, "mean": None, "std": None},
    "superpixel_size": 4,
    # max_minutes: a wall-clock budget (Trainer(max_time)); the cosine schedule is then sized to
    # it after the first epoch (simshap.amortized.schedule). None: max_epochs alone, exactly
    # reproducible for a seed. patience: validations without improvement before stopping.
    "surrogate": {
        "max_epochs": 3,
        "max_minutes": None,
        "patience": 5,
        "lr": 1e-4,
        "batch_size": 64,
        "train_size": None,
        "mask_channel": False,  # the mask as one more input channel of the first convolution
    },
    "explainer": {
        "methods": ["simshap", "fastshap"],
        "backbone": "user",
        "max_epochs": 5,
        "max_minutes": None,
        "patience": 5,
        "lr": 1e-3,
        "batch_size": 32,
        "n_masks": 16,
        "augment": True,  # the mirror images as extra rows
        "crops": 0,  # rounds of copies shifted by up to superpixel_size pixels (reflect pad)
        "val_instances": 32,
        "val_budget": 1024,
        "train_size": None,
    },
    "evaluation": {
        "images": 50,
        "gradient_baselines": True,  # IG and DeepSHAP, rescaled to efficiency, as rows
        "budgets": [512, 2048],
        "truth_threshold": 0.02,
        "truth_max_evals": 100000,
    },
}


def merge_user_image_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The defaults with ``cfg`` on top (one level of sections); unknown keys are errors.

    Raises:
        UserError: an unknown key, or no ``model.path`` / ``dataset.path``.
    """
    out = copy.deepcopy(USER_IMAGE_DEFAULTS)
    for key, value in cfg.items():
        if key not in out:
            raise UserError(f"unknown config key {key!r} for an image run")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"config key {key!r} should be a mapping, got {value!r}")
            bad = set(value) - set(out[key])
            if bad:
                raise UserError(f"unknown config key {key}.{sorted(bad)[0]}")
            out[key].update(value)
        else:
            out[key] = value
    for key in ("model", "dataset"):
        if not out[key]["path"]:
            raise UserError(f"an image run needs {key}.path")
    k = out["superpixel_size"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"superpixel_size must be a positive integer, got {k!r}")
    if out["explainer"]["backbone"] not in ("user", "unet"):
        raise UserError(
            f"explainer.backbone must be 'user' or 'unet', got {out['explainer']['backbone']!r}"
        )
    for section in ("surrogate", "explainer"):
        minutes = out[section]["max_minutes"]
        if minutes is not None and (
            isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0
        ):
            raise UserError(f"{section}.max_minutes must be a positive number, got {minutes!r}")
    return out


class UserImageRun:
    """One run folder of the user-image job.

    Args:
        out: the run folder.
        config: the config (merged with :data:`USER_IMAGE_DEFAULTS`).
        overwrite: allow an existing folder's files to be replaced.
    """

    def __init__(self, out: str | Path, config: dict[str, Any], overwrite: bool = False) -> None:
        self.out = Path(out)
        self.config = merge_user_image_config(config)
        if self.out.exists() and any(self.out.iterdir()) and not overwrite:
            raise ExistingOutputError(f"{self.out} exists; pass --overwrite to replace it")
        self.out.mkdir(parents=True, exist_ok=True)
        self.seed = int(self.config["seed"])
        self.timings: dict[str, float] = {}
        self.training: dict[str, dict[str, Any]] = {}  # per stage: epochs, time to accuracy
        self._val_targets: tuple[dict, dict] | None = None
        d = self.config["dataset"]
        self.data: ImageArrays = load_image_dataset(
            d["path"], d["channels"], d["image_size"], d["mean"], d["std"], self.seed
        )
        self.image_shape = tuple(self.data.x_train.shape[1:])
        self.players = Players.superpixels(self.image_shape[1:], self.config["superpixel_size"])
        self.model_ref = str(self.config["model"]["path"])
        self.classifier = load_image_model(self.model_ref)
        probe = self.data.x_train[:3]
        self.num_classes = describe_model(self.classifier, probe)["num_classes"]
        if int(self.data.y_train.max()) >= self.num_classes:
            raise UserError(
                f"labels go up to {int(self.data.y_train.max())} but the model has "
                f"{self.num_classes} outputs"
            )

    # ------------------------------------------------------------------ stages
    def accuracy(self, model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy of ``model`` (logits) on ``(x, y)``."""
        with torch.no_grad():
            pred = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
        return float((pred == y).float().mean())

    def _train_rows(self, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.x_train, self.data.y_train
        return (x, y) if n is None else (x[:n], y[:n])

    def fit_surrogate(self) -> Surrogate:
        """The surrogate: a copy of the user's classifier fine-tuned on masked images (KL)."""
        s = self.config["surrogate"]
        torch.manual_seed(self.seed)
        surrogate = Surrogate(
            {
                "kind": "user",
                "model": self.model_ref,
                "in_channels": self.image_shape[0],
                "num_classes": self.num_classes,
                "mask_channel": bool(s["mask_channel"]),
            },
            self.players.to_dict(),
            original=load_image_model(self.model_ref),
            lr=s["lr"],
            max_epochs_hint=s["max_epochs"],
            seed=self.seed,
        )
        x, y = self._train_rows(s["train_size"])
        n_val = max(1, min(512, len(x) // 10))
        train = DataLoader(TensorDataset(x[n_val:], y[n_val:]), s["batch_size"], shuffle=True)
        val = DataLoader(TensorDataset(x[:n_val], y[:n_val]), s["batch_size"])
        self._fit("surrogate", surrogate, train, val, "val_loss", s)
        surrogate.original = None
        torch.save(surrogate.state_dict(), self.out / "surrogate.pt")
        return surrogate.eval()

    def _fit(self, name: str, module: Any, train: Any, val: Any, monitor: str, c: dict) -> None:
        """Lightning fit: early stopping, best weights restored, optional time budget.

        Records the training seconds, and the validation curve with the time to the best score.
        """
        curve, budget = budget_callbacks(c["max_minutes"], monitor)
        fit = fit_module(
            module, train, val, monitor, c["max_epochs"], c["patience"], self.out / f"logs/{name}",
            accelerator="cpu", progress_bar=False, resume=False,
            max_time=max_time(c["max_minutes"]), callbacks=[curve, *([budget] if budget else [])],
        )  # fmt: skip
        self.timings[f"{name}_train_s"] = fit.train_seconds
        self.training[name] = {
            **self.training.get(name, {}), "epochs": fit.epochs, "best_" + monitor: fit.best_score,
            **curve.summary(), **(budget.summary() if budget else {}),
        }  # fmt: skip

    def explainer_net_spec(self) -> dict[str, Any]:
        """The user's trunk at the superpixel grid (1x1 head), or a U-Net."""
        c, h, w = self.image_shape
        k = self.config["superpixel_size"]
        if self.config["explainer"]["backbone"] == "user":
            probe = torch.zeros(1, c, h, w)
            try:
                node, feats = find_grid_node(
                    load_image_model(self.model_ref), probe, (h // k, w // k)
                )
            except Exception as err:  # noqa: BLE001 - untraceable models (TorchScript)
                raise UserError(
                    f"cannot cut the model at the {h // k}x{w // k} superpixel grid ({err}); "
                    "give model.path as module:function or .pt2, or set explainer.backbone: unet"
                ) from None
            return {
                "kind": "user_trunk", "model": self.model_ref, "in_channels": c,
                "num_classes": self.num_classes, "image_size": [h, w],
                "superpixel_size": k, "node": node, "features": feats,
            }  # fmt: skip
        depth = max(1, k.bit_length() - 1)
        return {
            "kind": "unet", "in_channels": c, "num_classes": self.num_classes,
            "base_width": 32, "depth": depth, "superpixel_size": k,
        }  # fmt: skip

    def fit_explainer(self, name: str, surrogate: Surrogate) -> Any:
        """Train SimSHAP or FastSHAP on the surrogate's game (flips as augmentation)."""
        e = self.config["explainer"]
        if e["val_budget"] < self.players.num_players:
            raise UserError(f"explainer.val_budget must be >= {self.players.num_players} players")
        common = dict(
            n_masks=e["n_masks"], lr=e["lr"], val_budget=e["val_budget"],
            max_epochs_hint=e["max_epochs"], seed=self.seed,
            class_names=list(self.data.classes)[: self.num_classes]
            if len(self.data.classes) == self.num_classes else None,
        )  # fmt: skip
        torch.manual_seed(self.seed)
        spec = self.explainer_net_spec()
        if name == "fastshap":
            module: Any = FastSHAP(spec, surrogate, **common)
        else:
            module = SimSHAP(spec, surrogate, **common)
        x, _ = self._train_rows(e["train_size"])
        n_val = min(e["val_instances"], max(1, len(x) // 10))
        x_train = augment_images(
            x[n_val:], e["augment"], e["crops"], self.config["superpixel_size"], self.seed
        )  # fixed rows: flips, then shifted copies
        train = DataLoader(module.training_dataset(x_train), e["batch_size"], shuffle=True)
        val = DataLoader(TensorDataset(x[:n_val]), batch_size=n_val)
        # the validation targets: computed once, shared (same game, seed and budget), timed
        # apart from each explainer's training budget
        if self._val_targets is None:
            t0 = time.perf_counter()
            module.validation_targets(x[:n_val], 0)
            self.timings["val_targets_s"] = time.perf_counter() - t0
            self._val_targets = (module._val_targets, module._val_full)
        module._val_targets, module._val_full = self._val_targets
        self.training[name] = {"train_rows": len(x_train), "val_instances": n_val}
        self._fit(name, module, train, val, "val_l2", e)
        save_explainer(module, self.out / f"{name}.pt", overwrite=True)
        return module.eval()

    def run(self) -> dict[str, Any]:
        """Every stage; writes ``results.json`` and ``simshap.onnx``; returns the results."""
        t0 = time.perf_counter()
        x_te, y_te = self.data.x_test, self.data.y_test
        results: dict[str, Any] = {
            "model": self.model_ref,
            "dataset": str(self.config["dataset"]["path"]),
            "image_shape": list(self.image_shape),
            "superpixel_size": self.config["superpixel_size"],
            "players": self.players.num_players,
            "train_images": len(self.data.x_train),
            "test_images": len(x_te),
            "original_accuracy": self.accuracy(self.classifier.eval(), x_te, y_te),
        }
        surrogate = self.fit_surrogate()
        with torch.no_grad():
            ones = torch.ones_like(x_te[:, :1])
            results["surrogate_full_accuracy"] = self.accuracy(
                lambda z: surrogate.net(z, ones[: len(z)]), x_te, y_te
            )
        explainers = {
            n: self.fit_explainer(n, surrogate) for n in self.config["explainer"]["methods"]
        }
        if "simshap" in explainers:
            path = export_image_explainer(
                explainers["simshap"],
                self.out / "simshap.onnx",
                self.image_shape,
                self.data.mean,
                self.data.std,
                overwrite=True,
            )
            results["onnx"] = str(path)
            meta = json.loads(Path(str(path) + ".json").read_text())
            results["onnx_max_abs_diff"] = meta["max_abs_diff_onnx_eager"]
        ev = self.config["evaluation"]
        results["methods"] = evaluate_user_image(
            self.classifier, surrogate, explainers, x_te[: ev["images"]], self.players,
            budgets=ev["budgets"], threshold=ev["truth_threshold"],
            max_evals=ev["truth_max_evals"], seed=self.seed,
            gradient_baselines=ev["gradient_baselines"],
        )  # fmt: skip
        results["training"] = self.training
        results["timings"] = {**self.timings, "total_s": time.perf_counter() - t0}
        (self.out / "results.json").write_text(json.dumps(results, indent=2))
        return results


def user_image_table(results: dict[str, Any]) -> str:
    """Markdown table of a user-image run's results (one row per method)."""
    head = (
        "| method | l2 on the game | insertion (game) | deletion (game) | insertion (prob) "
        "| deletion (prob) | s / image |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    rows = [head]
    for name, m in results["methods"].items():
        if name == "ground_truth":
            continue
        rows.append(
            f"| {name} | {m['l2_game']:.4f} ± {m['l2_game_se']:.4f} | {m['insertion_game']:.3f} "
            f"| {m['deletion_game']:.3f} | {m['insertion_prob']:.3f} | {m['deletion_prob']:.3f} "
            f"| {m['seconds_per_image']:.4f} |"
        )
    return "\n".join(rows)
