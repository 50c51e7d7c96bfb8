"""One run of the end-to-end job, whatever the modality: model, surrogate, explainers, evaluation.

:class:`Run` owns the stages that do not depend on the data: training the surrogate and the
explainers (Lightning, resumable from ``last.ckpt``, rank-0 writes under DDP), the explainer
options (every option works for tabular and image runs alike), the trainer settings and the
stage bookkeeping of the run folder. A modality subclass (``TabularRun`` in
:mod:`simshap.runs.tabular`, ``ImageRun`` in :mod:`simshap.runs.image`) supplies what does:
the data, the original model, the network specs, the loaders and the evaluation protocol.
"""

from __future__ import annotations

import json
import shutil
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from simshap.amortized import FastSHAP, SimSHAP
from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.io import load_surrogate, save_explainer, save_surrogate
from simshap.amortized.labels import LabelRegression
from simshap.amortized.simshap import SIMSHAP_TARGETS
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.training import fit_module, is_rank_zero
from simshap.errors import UserError
from simshap.runs.config import validate_config
from simshap.runs.folder import RunFolder
from simshap.runs.labelled import labelled_loader, module_loader

__all__ = ["EXPLAINERS", "Run", "resolve_precision"]

#: the explainers a run can train (``explainer.methods``): SimSHAP with the default
#: (variance-reduced) target, SimSHAP with the paper's target (Algorithm 1), FastSHAP, and a
#: regression on labels computed once per training row (tabular runs)
EXPLAINERS: dict[str, type[AmortizedExplainer]] = {
    "simshap": SimSHAP,
    "simshap_paper": SimSHAP,
    "fastshap": FastSHAP,
    "labels": LabelRegression,
}


def resolve_precision(precision: str | int) -> str | int:
    """``"auto"`` -> ``"bf16-mixed"`` on a bf16-capable CUDA GPU, else ``"32-true"``."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


class Run(RunFolder):
    """The stages every modality shares; subclasses fill in the modality hooks.

    Stages (each done when its manifest entry is written, see :class:`RunFolder`): ``model``
    (:attr:`model_file`), ``surrogate`` (``surrogate.pt``; only for the surrogate game), one
    per explainer (``<name>.pt``) and ``evaluate`` (results, table and plots).
    """

    #: file the original-model stage writes
    model_file = "model.txt"
    #: the explainers this modality can train (``explainer.methods`` picks among them)
    explainer_choices: dict[str, type[AmortizedExplainer]] = EXPLAINERS
    #: ``"tabular"`` or ``"image"``
    modality = "tabular"

    def __init__(
        self,
        out: str | Path,
        config: dict[str, Any] | None = None,
        example_config: str = "breast_cancer",
    ) -> None:
        super().__init__(out, None if config is None else validate_config(config), example_config)

    @property
    def game_name(self) -> str:
        """The game explained: ``surrogate`` (images always), ``marginal``, ``baseline``."""
        return self.config.get("game", "surrogate")

    def stages(self) -> list[tuple[str, str, Any]]:
        """``(stage, label, compute)`` in order; ``simshap run`` skips the done ones."""
        out: list[tuple[str, str, Any]] = [("model", "original model", self.fit_model)]
        if self.game_name == "surrogate":
            out.append(("surrogate", "surrogate", self.fit_surrogate))
        for name in self.explainer_names:
            out.append((name, name, lambda n=name: self.fit_explainer(n)))
        return out

    def explainer_inputs(self) -> list[str]:
        """The stages an explainer is trained from."""
        return ["surrogate"] if self.game_name == "surrogate" else ["model"]

    def logs(self, stage: str, after: list[str], overwrite: bool) -> Path:
        """A training stage's Lightning folder, emptied when the stages it is trained from changed.

        A checkpoint is resumed only when it was written with the same inputs: the folder keeps
        their digests, and a recomputed surrogate (say) makes the explainers start afresh.
        """
        folder = self.path(f"{stage}_logs")
        marker = folder / "inputs.json"
        want = {dep: self.stage_digest(dep) for dep in after}
        try:
            have = json.loads(marker.read_text()) if marker.is_file() else None
        except ValueError:
            have = None
        if folder.exists() and (overwrite or have != want):
            shutil.rmtree(folder)
        if not marker.is_file():
            self.write(f"{stage}_logs/inputs.json", json.dumps(want, sort_keys=True))
        return folder

    # ------------------------------------------------------------------ modality hooks
    @abstractmethod
    def fit_model(self, overwrite: bool = False) -> dict[str, Any]:
        """Train (or check) the original model and store it as :attr:`model_file`."""

    @abstractmethod
    def evaluate(self, overwrite: bool = False) -> dict[str, Any]:
        """The modality's evaluation protocol; writes ``results.json``."""

    @staticmethod
    @abstractmethod
    def table(results: dict[str, Any]) -> str:
        """Markdown table of a results dict."""

    @abstractmethod
    def build_surrogate(self) -> Surrogate:
        """A fresh surrogate (network and player specs from the config)."""

    @abstractmethod
    def surrogate_loaders(self) -> tuple[DataLoader, DataLoader]:
        """Training and validation batches for the surrogate."""

    @abstractmethod
    def surrogate_report(self, surrogate: Surrogate) -> dict[str, float]:
        """Accuracy figures of a trained surrogate."""

    @abstractmethod
    def explainer_net_spec(self) -> dict[str, Any]:
        """Spec of the explainer network (MLP or U-Net)."""

    @abstractmethod
    def explainer_loaders(self) -> tuple[DataLoader, DataLoader]:
        """Training and validation batches for the explainers."""

    def explainer_extras(self) -> dict[str, Any]:
        """Extra explainer arguments (tabular: names and the fitted preprocessing)."""
        return {}

    def speed_up(self, net: torch.nn.Module, compile_net: bool) -> None:  # noqa: B027
        """GPU speed-ups for a network (images only; a no-op by default)."""

    def training_surrogate(self) -> Surrogate:
        """The fresh surrogate that :meth:`fit_surrogate` trains (images attach the classifier)."""
        return self.build_surrogate()

    # ------------------------------------------------------------------ shared settings
    @property
    def explainer_names(self) -> list[str]:
        """The explainers this run trains and evaluates (``explainer.methods``), checked."""
        names = self.config["explainer"]["methods"]
        if isinstance(names, str):
            names = [names]
        bad = [n for n in names if n not in self.explainer_choices]
        if not names or bad or len(set(names)) != len(names):
            raise UserError(
                f"explainer.methods must be a non-empty list of distinct names from "
                f"{list(self.explainer_choices)}, got {names!r}"
            )
        return list(names)

    @property
    def device(self) -> torch.device:
        """Where evaluation runs: the GPU when the trainer may use one and CUDA is present."""
        acc = self.config["trainer"]["accelerator"]
        if acc in ("auto", "gpu", "cuda") and torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")

    def trainer_kwargs(self) -> dict[str, Any]:
        """Lightning settings of every training stage (``config["trainer"]``)."""
        t = self.config["trainer"]
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
            torch.set_float32_matmul_precision("high")  # TF32 for what stays in float32
        return {
            "accelerator": t["accelerator"],
            "devices": t["devices"],
            "strategy": t["strategy"],
            "num_nodes": t["num_nodes"],
            "precision": resolve_precision(t["precision"]),
            "progress_bar": t["progress_bar"],
            "max_time": t["max_time"],
        }

    # ------------------------------------------------------------------ surrogate
    def fit_surrogate(self, overwrite: bool = False) -> dict[str, Any]:
        """Train the surrogate s(x, m) on the original model's outputs under uniform masks."""
        if self.game_name != "surrogate":
            raise UserError(
                f"this run explains the {self.game_name} game of the model itself: "
                "it has no surrogate (set game: surrogate for one)"
            )
        self._require(self.model_file, "model", "fit-model")
        self.begin("surrogate", overwrite)
        s = self.config["surrogate"]
        train, val = self.surrogate_loaders()
        torch.manual_seed(self.seed)
        module = self.training_surrogate()
        fit = fit_module(
            module,
            train,
            val,
            monitor="val_loss",
            max_epochs=s["max_epochs"],
            patience=s["patience"],
            out_dir=self.logs("surrogate", ["model"], overwrite),
            resume=not overwrite,
            **self.trainer_kwargs(),
        )
        if not is_rank_zero():
            return {}
        report = self.surrogate_report(module.eval())
        save_surrogate(module, self.path("surrogate.pt"))
        self._record_time("surrogate_train_s", fit.train_seconds)
        self.commit("surrogate", ["surrogate.pt"], after=["model"])
        return {
            "val_loss": fit.best_score,
            "train_s": fit.train_seconds,
            "epochs": fit.epochs,
            **report,
        }

    def surrogate(self) -> Surrogate:
        """The stored surrogate, in eval mode on :attr:`device`."""
        return load_surrogate(self._require("surrogate.pt", "surrogate", "fit-surrogate")).to(
            self.device
        )

    # ------------------------------------------------------------------ explainers
    def build_explainer(self, name: str, surrogate: Surrogate | None) -> AmortizedExplainer:
        """A fresh SimSHAP or FastSHAP explainer; every option applies to every modality."""
        if name not in self.explainer_choices:
            raise UserError(
                f"unknown explainer {name!r}; choose from {sorted(self.explainer_choices)}"
            )
        e = self.config["explainer"]
        d = self.explainer_net_spec()["num_players"] if surrogate is None else surrogate.num_players
        if e["val_budget"] < d:
            raise UserError(
                f"explainer.val_budget={e['val_budget']} is below the {d} players: the "
                "KernelSHAP validation targets would be undetermined; use at least "
                f"{d} (1024-2048 for 256 superpixels)"
            )
        common: dict[str, Any] = dict(
            n_masks=e["n_masks"],
            paired=e["paired"],
            lr=e["lr"],
            weight_decay=e["weight_decay"],
            val_budget=e["val_budget"],
            max_epochs_hint=self.explainer_epochs(name) if e["cosine"] else 0,
            surrogate_batch_size=e["surrogate_batch_size"],
            seed=self.seed,
            **({"input_noise": e["input_noise"]} if "input_noise" in e else {}),
            **self.explainer_extras(),
        )
        if e["target"] not in SIMSHAP_TARGETS:
            raise UserError(
                f"explainer.target must be one of {SIMSHAP_TARGETS}, got {e['target']!r}"
            )
        target = "paper" if name == "simshap_paper" else e["target"]
        if self.explainer_choices[name] is SimSHAP:
            average = e.get("average_targets", False)  # image configs have no such key
            if average not in (None, True, False):
                raise UserError(
                    "explainer.average_targets must be true, false or null (on "
                    f"unless input_noise > 0), got {average!r}"
                )
            if average and e["target"] == "paper":
                raise UserError(
                    "explainer.average_targets: true needs explainer.target: "
                    "default (the paper target is Algorithm 1, a fresh target "
                    "every step)"
                )
            extra: dict[str, Any] = {
                "centered": e["centered"],
                "target": target,
                "average_targets": False if target == "paper" else average,
                "normalize": e["normalize"] and target != "paper",
            }
            if name == "simshap" and self._memory_epochs() > 0:
                if average is False or (average is None and e.get("input_noise", 0.0)):
                    raise UserError(
                        "explainer.memory_epochs fits SimSHAP to its mean targets, "
                        "so it needs averaged targets (average_targets: true or "
                        "null without input_noise); set memory_epochs: 0"
                    )
                extra["sampling_epochs"] = e["max_epochs"]
        elif self.explainer_choices[name] is LabelRegression:
            extra = {"label_budget": e["label_budget"]}
        else:
            extra = {"normalize": e["normalize"], "efficiency_lambda": e["efficiency_lambda"]}
        cls = self.explainer_choices[name]
        module = cls(self.explainer_net_spec(), surrogate, **common, **extra)
        self.speed_up(module.net, compile_net=e["compile"])
        return module

    def explainer_game(self, module: AmortizedExplainer) -> None:
        """Attach what a model's game needs (the model, the raw row tables); tabular hook."""

    def fit_explainer(self, name: str, overwrite: bool = False) -> dict[str, Any]:
        """Train an explainer on the game: the stored (frozen) surrogate's, or the model's."""
        if name not in self.explainer_choices:
            raise UserError(
                f"unknown explainer {name!r}; choose from {sorted(self.explainer_choices)}"
            )
        after = self.explainer_inputs()
        for dep in after:
            self._require(
                self.model_file if dep == "model" else f"{dep}.pt",
                dep,
                "fit-model" if dep == "model" else f"fit-{dep}",
            )
        self.begin(name, overwrite)
        e = self.config["explainer"]
        surrogate = None
        if self.game_name == "surrogate":
            surrogate = self.surrogate()
            self.speed_up(surrogate.net, compile_net=self.config["surrogate"]["compile"])
        train, val = self.explainer_loaders()
        torch.manual_seed(self.seed)
        module = self.build_explainer(name, surrogate)
        self.explainer_game(module)
        labelled: dict[str, Any] = {}
        if isinstance(module, LabelRegression):
            train, labelled = self._labelled_loader(module, train)
        else:
            train = self._module_loader(module, train)
        label_s = labelled.get("label_s", 0.0)
        fit = fit_module(
            module,
            train,
            val,
            monitor="val_l2",
            max_epochs=self.explainer_epochs(name),
            patience=e["patience"],
            out_dir=self.logs(name, after, overwrite),
            resume=not overwrite,
            **self.trainer_kwargs(),
        )
        if not is_rank_zero():
            return {}
        save_explainer(module, self.path(f"{name}.pt"), overwrite=True)
        self._record_time(f"{name}_train_s", fit.train_seconds + label_s)  # labels included
        self.commit(name, [f"{name}.pt"], after=after)
        out = {
            "val_l2": fit.best_score,
            "train_s": fit.train_seconds + label_s,
            "epochs": fit.epochs,
        }
        return {**out, **labelled}

    def explainer_epochs(self, name: str) -> int:
        """Epochs of an explainer: ``explainer.label_epochs`` for ``labels`` when set.

        A labels epoch calls no surrogate (the labels are stored), so many epochs are cheap.
        ``simshap`` trains ``max_epochs`` sampling epochs plus ``explainer.memory_epochs``
        epochs on its mean targets, which call no surrogate either.
        """
        e = self.config["explainer"]
        label_epochs = e.get("label_epochs")
        epochs = label_epochs if name == "labels" and label_epochs else e["max_epochs"]
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise UserError(f"explainer epochs must be a positive integer, got {epochs!r}")
        return epochs + (self._memory_epochs() if name == "simshap" else 0)

    def _memory_epochs(self) -> int:
        """``explainer.memory_epochs`` (0 when absent: image configs), checked."""
        n = self.config["explainer"].get("memory_epochs", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise UserError(f"explainer.memory_epochs must be an integer >= 0, got {n!r}")
        return n

    #: the training loader rebuilt from ``module.training_dataset`` (see :func:`module_loader`)
    _module_loader = staticmethod(module_loader)

    def _labelled_loader(
        self, module: LabelRegression, train: DataLoader
    ) -> tuple[DataLoader, dict[str, Any]]:
        """Training rows with their labels (see :func:`simshap.runs.labelled.labelled_loader`)."""
        return labelled_loader(self, module, train)
