"""The tabular end-to-end job: original model, surrogate, SimSHAP / FastSHAP, evaluation.

Every stage reads its inputs from and writes its outputs to one run folder, so stages can be run
separately (``simshap fit-model`` ... ``simshap evaluate``) and resume where the last stopped.

Run folder::

    config.yaml          the merged configuration
    model.txt            the LightGBM original model
    surrogate.pt         the surrogate (weights-only file)
    simshap.pt           SimSHAP explainer        fastshap.pt    FastSHAP explainer
    ground_truth.pt      cached ground truth (exact for d <= 16, else converged KernelSHAP)
    timings.json         training seconds per stage
    results.json, results.md, error_vs_budget.png, <first explainer>_bar.png and _beeswarm.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from simshap.data.tabular import TabularData, load_tabular
from simshap.evaluation.metrics import attribution_errors, truth_noise
from simshap.evaluation.report import environment, results_table
from simshap.evaluation.tabular import amortized_at_budgets, estimators_at_budgets
from simshap.evaluation.timing import seconds_per_instance, timed
from simshap.evaluation.truth import ground_truth
from simshap.fingerprint import fingerprint
from simshap.games.values import MaskedModelGame
from simshap.io import load_explainer
from simshap.original import (
    fit_original_model,
    load_original_model,
    load_user_model,
    predict_probabilities,
    save_original_model,
)
from simshap.run import EXPLAINERS, Run
from simshap.shapley_values import ShapleyValues
from simshap.surrogate import Surrogate
from simshap.training import EpochSampler

__all__ = ["EXPLAINERS", "TabularRun"]



class TabularRun(Run):
    """One run folder of the tabular job.

    Args:
        out: the run folder.
        config: the merged configuration (``None``: read ``out/config.yaml``).
    """

    def __init__(self, out: str | Path, config: dict[str, Any] | None = None) -> None:
        super().__init__(out, config, example_config="configs/breast_cancer.yaml")
        self._data: TabularData | None = None

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def table(results: dict[str, Any]) -> str:
        """Markdown table of a results dict."""
        return results_table(results)

    @property
    def data(self) -> TabularData:
        """The split, standardized data set."""
        if self._data is None:
            self._data = load_tabular(
                self.config["dataset"], data_dir=self.config["data_dir"], seed=self.seed
            )
        return self._data

    @property
    def device(self) -> torch.device:
        """Tabular evaluation runs on the CPU (small networks; training may use a GPU)."""
        return torch.device("cpu")

    # ------------------------------------------------------------------ stages
    def original_model(self) -> Any:
        """The original model: the user's (``model.path``) or the stored LightGBM."""
        path = self.config["model"]["path"]
        if path is not None:
            return load_user_model(path)
        return load_original_model(self._require("model.txt", "fit-model"))

    def original_probs(self, split: str, n: int | None = None) -> np.ndarray:
        """The original model's probabilities on (the first ``n`` rows of) a split.

        A user model (``model.path``) sees the raw rows as a DataFrame with the table's
        column names; the LightGBM trained here sees the standardized features it was fitted on.
        """
        data = self.data
        if self.config["model"]["path"] is not None:
            raw = getattr(data, f"raw_{split}")[:n]
            rows = pd.DataFrame(raw, columns=data.feature_names).infer_objects()
            return predict_probabilities(self.original_model(), rows)
        return predict_probabilities(self.original_model(), getattr(data, f"x_{split}")[:n])

    def fit_model(self, overwrite: bool = False) -> dict[str, float]:
        """Train and store the LightGBM original model (or check the user's); test accuracy."""
        target = self._write_output("model.txt", overwrite)
        m = self.config["model"]
        if m["path"] is not None:  # the user's own model: nothing to train
            acc = float((self.original_probs("test").argmax(1) == self.data.y_test).mean())
            target.write_text(f"user model: {Path(m['path']).resolve()}\n")
            return {"test_accuracy": acc, "train_s": 0.0}
        model, seconds = timed(
            lambda: fit_original_model(
                self.data, seed=self.seed, max_rounds=m["max_rounds"],
                early_stopping_rounds=m["early_stopping_rounds"],
            )
        )
        save_original_model(model, target)
        self._record_time("model_train_s", seconds)
        acc = float((model.predict(self.data.x_test) == self.data.y_test).mean())
        return {"test_accuracy": acc, "train_s": seconds}

    def build_surrogate(self) -> Surrogate:
        """A fresh MLP surrogate on ``[x * m, m]``, with the fitted preprocessing."""
        s, data = self.config["surrogate"], self.data
        d = data.n_features
        return Surrogate(
            {"kind": "mlp", "in_features": d, "num_classes": data.n_classes,
             "hidden": s["hidden"], "layers": s["layers"]},
            {"kind": "identity", "num_features": d},
            lr=s["lr"], weight_decay=s["weight_decay"], masks_per_row=s["masks_per_row"],
            max_epochs_hint=s["max_epochs"] if s["cosine"] else 0, seed=self.seed,
            preprocessor=data.preprocessor.to_dict(),
        )  # fmt: skip

    def surrogate_loaders(self) -> tuple[DataLoader, DataLoader]:
        """``(x, p, y)`` batches: the original model's probabilities p, precomputed."""
        s, data = self.config["surrogate"], self.data

        def loader(split: str, shuffle: bool) -> DataLoader:
            x = getattr(data, f"x_{split}")
            probs = torch.as_tensor(self.original_probs(split), dtype=torch.float32)
            ds = TensorDataset(torch.as_tensor(x), probs,
                               torch.as_tensor(getattr(data, f"y_{split}")))
            sampler = EpochSampler(len(ds), self.seed) if shuffle else None
            return DataLoader(ds, batch_size=s["batch_size"], sampler=sampler)

        return loader("train", True), loader("val", False)

    def surrogate_accuracy(self, surrogate: Surrogate) -> dict[str, float]:
        """Test accuracy of the surrogate with all features present and of the original model."""
        x = torch.as_tensor(self.data.x_test)
        full = torch.ones_like(x, dtype=torch.bool)
        pred = surrogate.masked_probs(x.to(surrogate.device), full.to(surrogate.device))
        y = self.data.y_test
        orig = self.original_probs("test").argmax(1)
        return {
            "surrogate_full_mask_accuracy": float((pred.argmax(-1).cpu().numpy() == y).mean()),
            "original_accuracy": float((orig == y).mean()),
        }

    surrogate_report = surrogate_accuracy

    def explainer_net_spec(self) -> dict[str, Any]:
        """An MLP from the d standardized features to ``(d, C)`` attributions."""
        e, data = self.config["explainer"], self.data
        d = data.n_features
        return {"kind": "mlp", "in_features": d, "num_players": d, "num_classes": data.n_classes,
                "hidden": e["hidden"], "layers": e["layers"]}  # fmt: skip

    def explainer_extras(self) -> dict[str, Any]:
        """Names and the fitted preprocessing: the explainer takes raw rows."""
        data = self.data
        return {"feature_names": data.feature_names, "class_names": data.class_names,
                "preprocessor": data.preprocessor.to_dict()}  # fmt: skip

    def explainer_loaders(self) -> tuple[DataLoader, DataLoader]:
        """Standardized training rows (epoch-seeded order) and the first validation rows."""
        e, data = self.config["explainer"], self.data
        train = DataLoader(TensorDataset(torch.as_tensor(data.x_train)),
                           batch_size=e["batch_size"],
                           sampler=EpochSampler(len(data.x_train), self.seed))  # fmt: skip
        val = DataLoader(TensorDataset(torch.as_tensor(data.x_val[: e["val_instances"]])),
                         batch_size=256)  # fmt: skip
        return train, val

    def evaluate(self, overwrite: bool = False) -> dict[str, Any]:
        """Ground truth, l1/l2 of every method at matched budgets, timings, table and plots."""
        self._write_output("results.json", overwrite)
        ev, data = self.config["evaluation"], self.data
        surrogate = self.surrogate()
        n = min(ev["n_instances"], len(data.x_test))
        x = torch.as_tensor(data.x_test[:n])
        raw = data.raw_test[:n]  # what users pass: the explainers hold their preprocessing
        classes = torch.as_tensor(self.original_probs("test", n).argmax(1))  # explained class
        game = MaskedModelGame(surrogate.masked_probs, x, groups=surrogate.groups)
        truth, truth_s = self._ground_truth(game, surrogate, ev["ground_truth"], ev["threshold"])
        methods: dict[str, dict[str, float]] = {}
        timings = self._timings()
        for name in self.explainer_names:
            explainer = load_explainer(self._require(f"{name}.pt", "fit-explainer"))
            pred = explainer.explain(raw)
            methods[name] = {
                **attribution_errors(pred, truth.values, classes),
                "inference_s_per_instance": seconds_per_instance(
                    lambda e=explainer: e.explain(raw), n
                ),
                "train_s": timings.get(f"{name}_train_s", float("nan")),
            }
        methods.update(
            estimators_at_budgets(game, truth.values, classes, list(ev["budgets"]), self.seed)
        )
        for name in ("simshap", "labels"):  # amortized + budget: g(x) refined by k calls
            if name in self.explainer_names:
                methods.update(amortized_at_budgets(
                    load_explainer(self.path(f"{name}.pt")), raw, truth.values, classes,
                    list(ev["budgets"]), self.seed, name=name,
                ))  # fmt: skip
        results = {
            "dataset": data.name,
            "n_features": data.n_features,
            "ground_truth": {
                "method": truth.method,
                "threshold": ev["threshold"] if truth.method == "kernel_shap" else None,
                "n_instances": n,
                "seconds_per_instance": truth_s,
                "max_n_evals": truth.n_evals,
                **truth_noise(truth, classes),
            },
            "methods": methods,
            "surrogate": self.surrogate_accuracy(surrogate),
            "training_s": timings,
            "environment": environment(),
        }
        self.path("results.json").write_text(json.dumps(results, indent=2))
        self.path("results.md").write_text(results_table(results))
        self._plots(results, raw, classes)
        return results

    def _ground_truth(
        self, game: MaskedModelGame, surrogate: Surrogate, method: str, threshold: float
    ) -> tuple[ShapleyValues, float]:
        """Ground truth (exact when d <= 16 under ``auto``), cached under a key of its inputs.

        The key hashes the surrogate's weights, the estimator settings and the explained
        instances: a new surrogate (``fit-surrogate --overwrite``), another method or threshold
        or other instances never reuse a stale cache.
        """
        cache = self.path("ground_truth.pt")
        key = fingerprint(surrogate.net, {"method": method, "paired": True,
                                          "threshold": threshold, "seed": self.seed}, game.x)
        if cache.exists():
            blob = torch.load(cache, weights_only=True)
            if blob.get("key") == key:
                truth = ShapleyValues(values=blob["values"], base_values=blob["base_values"],
                                      std=blob["std"], n_evals=int(blob["n_evals"]),
                                      method=blob["method"])  # fmt: skip
                return truth, float(blob["seconds_per_instance"])
        start = time.perf_counter()
        truth = ground_truth(game, method=method, threshold=threshold, seed=self.seed)
        seconds = (time.perf_counter() - start) / game.num_instances
        torch.save({"values": truth.values, "base_values": truth.base_values, "std": truth.std,
                    "n_evals": truth.n_evals, "method": truth.method, "key": key,
                    "seconds_per_instance": seconds}, cache)  # fmt: skip
        return truth, seconds

    def _plots(self, results: dict[str, Any], x: Any, classes: torch.Tensor) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import shap

        methods = results["methods"]
        fig, ax = plt.subplots(figsize=(6, 4))
        families = sorted({k.split("@")[0] for k in methods if "@" in k})
        for fam in families:
            pts = sorted((int(k.split("@")[1]), v["l2"]) for k, v in methods.items()
                         if k.split("@")[0] == fam)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
        for name, style in zip(self.explainer_names, ("-", "--", ":", "-."), strict=False):
            ax.axhline(methods[name]["l2"], linestyle=style, color="k", label=name)
        ax.set(xscale="log", yscale="log", xlabel="surrogate evaluations per instance",
               ylabel="mean l2 to ground truth", title=results["dataset"])
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.path("error_vs_budget.png"), dpi=120)
        plt.close(fig)
        first = self.explainer_names[0]  # the bar and beeswarm plots show one explainer
        explainer = load_explainer(self.path(f"{first}.pt"))
        cls = int(torch.mode(classes).values)
        exp = explainer.to_shap_explanation(x, output=cls)
        for kind, plot in (("bar", shap.plots.bar), ("beeswarm", shap.plots.beeswarm)):
            plot(exp, show=False)
            plt.gcf().savefig(self.path(f"{first}_{kind}.png"), dpi=120, bbox_inches="tight")
            plt.close("all")
