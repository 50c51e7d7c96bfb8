"""The tabular end-to-end job: original model, surrogate, SimSHAP / FastSHAP, evaluation.

Every stage reads its inputs from and writes its outputs to one run folder, so stages can be run
separately (``simshap fit-model`` ... ``simshap evaluate``) and resume where the last stopped.

Run folder::

    config.yaml          the merged configuration
    model.txt            the LightGBM original model
    surrogate.pt         the surrogate (weights-only file)
    simshap.pt           SimSHAP explainer        fastshap.pt    FastSHAP explainer
    ground_truth.pt      cached KernelSHAP ground truth (threshold 0.01)
    timings.json         training seconds per stage
    results.json, results.md, error_vs_budget.png, simshap_bar.png, simshap_beeswarm.png
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from simshap.config import IMAGE_DATASETS, load_config
from simshap.data.tabular import TabularData, load_tabular
from simshap.errors import ExistingOutputError, UserError
from simshap.evaluation.metrics import attribution_errors
from simshap.evaluation.tabular import estimators_at_budgets, ground_truth
from simshap.evaluation.timing import seconds_per_instance, timed
from simshap.explainers import FastSHAP, SimSHAP
from simshap.fingerprint import fingerprint
from simshap.games.values import MaskedModelGame
from simshap.io import load_explainer, load_surrogate, save_explainer, save_surrogate
from simshap.original import (
    fit_original_model,
    load_original_model,
    load_user_model,
    predict_probabilities,
    save_original_model,
)
from simshap.run_folder import RunFolder
from simshap.surrogate import Surrogate
from simshap.training import EpochSampler, fit_module, is_rank_zero

__all__ = ["TabularRun", "make_run", "register"]

EXPLAINERS = {"simshap": SimSHAP, "fastshap": FastSHAP}


class TabularRun(RunFolder):
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

    def _trainer_kwargs(self) -> dict[str, Any]:
        t = self.config["trainer"]
        return {"accelerator": t["accelerator"], "devices": t["devices"],
                "strategy": t["strategy"], "num_nodes": t["num_nodes"],
                "precision": t["precision"], "progress_bar": t["progress_bar"]}

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

    def fit_surrogate(self, overwrite: bool = False) -> dict[str, float]:
        """Train the surrogate on the original model's probabilities under uniform masks."""
        target = self._write_output("surrogate.pt", overwrite)
        s, data = self.config["surrogate"], self.data
        torch.manual_seed(self.seed)
        d = data.n_features
        module = Surrogate(
            {"kind": "mlp", "in_features": d, "num_classes": data.n_classes,
             "hidden": s["hidden"], "layers": s["layers"]},
            {"kind": "identity", "num_features": d},
            lr=s["lr"], weight_decay=s["weight_decay"], masks_per_row=s["masks_per_row"],
            max_epochs_hint=s["max_epochs"] if s["cosine"] else 0, seed=self.seed,
        )

        def loader(split: str, shuffle: bool) -> DataLoader:
            x = getattr(data, f"x_{split}")
            probs = torch.as_tensor(self.original_probs(split), dtype=torch.float32)
            ds = TensorDataset(torch.as_tensor(x), probs,
                               torch.as_tensor(getattr(data, f"y_{split}")))
            sampler = EpochSampler(len(ds), self.seed) if shuffle else None
            return DataLoader(ds, batch_size=s["batch_size"], sampler=sampler)

        fit = fit_module(
            module, loader("train", True), loader("val", False), monitor="val_kl",
            max_epochs=s["max_epochs"], patience=s["patience"],
            out_dir=self.path("surrogate_logs"), resume=not overwrite, **self._trainer_kwargs(),
        )
        if not is_rank_zero():
            return {}
        save_surrogate(module, target)
        self._record_time("surrogate_train_s", fit.train_seconds)
        full = self.surrogate_accuracy(module)
        return {"val_kl": fit.best_score, "train_s": fit.train_seconds, **full}

    def surrogate(self) -> Surrogate:
        """The stored surrogate."""
        return load_surrogate(self._require("surrogate.pt", "fit-surrogate"))

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

    def fit_explainer(self, name: str, overwrite: bool = False) -> dict[str, float]:
        """Train SimSHAP or FastSHAP against the stored surrogate."""
        if name not in EXPLAINERS:
            raise UserError(f"unknown explainer {name!r}; choose from {sorted(EXPLAINERS)}")
        target = self._write_output(f"{name}.pt", overwrite)
        e, data = self.config["explainer"], self.data
        surrogate = self.surrogate()
        torch.manual_seed(self.seed)
        d = data.n_features
        common = dict(
            n_masks=e["n_masks"], paired=e["paired"], lr=e["lr"], weight_decay=e["weight_decay"],
            val_budget=e["val_budget"], seed=self.seed, feature_names=data.feature_names,
            preprocessor=data.preprocessor.to_dict(), class_names=data.class_names,
            max_epochs_hint=e["max_epochs"] if e["cosine"] else 0,
        )
        extra = ({"centered": e["centered"], "control_variate": e["control_variate"]}
                 if name == "simshap"
                 else {"efficiency_lambda": e["efficiency_lambda"]})
        module = EXPLAINERS[name](
            {"kind": "mlp", "in_features": d, "num_players": d, "num_classes": data.n_classes,
             "hidden": e["hidden"], "layers": e["layers"]},
            surrogate, **common, **extra,
        )
        train = DataLoader(TensorDataset(torch.as_tensor(data.x_train)),
                           batch_size=e["batch_size"],
                           sampler=EpochSampler(len(data.x_train), self.seed))
        val = DataLoader(TensorDataset(torch.as_tensor(data.x_val[: e["val_instances"]])),
                         batch_size=256)
        fit = fit_module(
            module, train, val, monitor="val_l2", max_epochs=e["max_epochs"],
            patience=e["patience"], out_dir=self.path(f"{name}_logs"), resume=not overwrite,
            **self._trainer_kwargs(),
        )
        if not is_rank_zero():
            return {}
        save_explainer(module, target, overwrite=True)
        self._record_time(f"{name}_train_s", fit.train_seconds)
        return {"val_l2": fit.best_score, "train_s": fit.train_seconds, "epochs": fit.epochs}

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
        truth, truth_s = self._ground_truth(game, surrogate, ev["threshold"])
        methods: dict[str, dict[str, float]] = {}
        timings = self._timings()
        for name in EXPLAINERS:
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
        results = {
            "dataset": data.name,
            "n_features": data.n_features,
            "ground_truth": {
                "method": "kernel_shap(paired=True)",
                "threshold": ev["threshold"],
                "n_instances": n,
                "seconds_per_instance": truth_s,
                "max_n_evals": truth.n_evals,
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
        self, game: MaskedModelGame, surrogate: Surrogate, threshold: float
    ) -> tuple[Any, float]:
        """KernelSHAP ground truth, cached in ``ground_truth.pt`` under a key of its inputs.

        The key hashes the surrogate's weights, the estimator settings and the explained
        instances: a new surrogate (``fit-surrogate --overwrite``), another threshold or other
        instances never reuse a stale cache.
        """
        cache = self.path("ground_truth.pt")
        key = fingerprint(surrogate.net, {"method": "kernel_shap", "paired": True,
                                          "threshold": threshold, "seed": self.seed}, game.x)
        if cache.exists():
            blob = torch.load(cache, weights_only=True)
            if blob.get("key") == key:
                from simshap.games.estimators import ShapleyEstimate

                est = ShapleyEstimate(blob["values"], blob["std"], int(blob["n_evals"]))
                return est, float(blob["seconds_per_instance"])
        est, seconds = ground_truth(game, threshold=threshold, seed=self.seed)
        torch.save({"values": est.values, "std": est.std, "n_evals": est.n_evals, "key": key,
                    "threshold": threshold, "seconds_per_instance": seconds}, cache)
        return est, seconds

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
        for name, style in (("simshap", "-"), ("fastshap", "--")):
            ax.axhline(methods[name]["l2"], linestyle=style, color="k", label=name)
        ax.set(xscale="log", yscale="log", xlabel="surrogate evaluations per instance",
               ylabel="mean l2 to ground truth", title=results["dataset"])
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(self.path("error_vs_budget.png"), dpi=120)
        plt.close(fig)
        explainer = load_explainer(self.path("simshap.pt"))
        cls = int(torch.mode(classes).values)
        exp = explainer.to_shap_explanation(x, output=cls)
        for kind, plot in (("bar", shap.plots.bar), ("beeswarm", shap.plots.beeswarm)):
            plot(exp, show=False)
            plt.gcf().savefig(self.path(f"simshap_{kind}.png"), dpi=120, bbox_inches="tight")
            plt.close("all")


def environment() -> dict[str, Any]:
    """Versions and device of this run."""
    import lightning
    import shap
    import sklearn

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "shap": shap.__version__,
        "sklearn": sklearn.__version__,
        "device": device or platform.machine(),
        "platform": platform.platform(),
    }


def results_table(results: dict[str, Any]) -> str:
    """Markdown table of ``results.json``'s methods (sorted by l2)."""
    gt = results["ground_truth"]
    lines = [
        f"## {results['dataset']} ({results['n_features']} features)",
        "",
        f"Ground truth: {gt['method']}, threshold {gt['threshold']}, {gt['n_instances']} test "
        f"instances, {gt['seconds_per_instance']:.3g} s per instance.",
        "",
        "| method | l1 | l2 | evaluations | inference s / instance | train s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = sorted(results["methods"].items(), key=lambda kv: kv[1]["l2"])
    for name, m in rows:
        evals = m.get("n_evals", "1 forward")
        train = f"{m['train_s']:.1f}" if "train_s" in m else ""
        lines.append(
            f"| {name} | {m['l1']:.4f} | {m['l2']:.4f} | {evals} | "
            f"{m['inference_s_per_instance']:.3g} | {train} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def make_run(out: str | Path, config: dict[str, Any] | None = None) -> Any:
    """The run object for a config: ``TabularRun`` or, for image data sets, ``ImageRun``."""
    if config is None:
        cfg_path = Path(out) / "config.yaml"
        config = load_config(cfg_path) if cfg_path.is_file() else None
    if config is not None and config["dataset"] in IMAGE_DATASETS:
        from simshap.image_pipeline import ImageRun

        return ImageRun(out, config)
    return TabularRun(out, config)


def _run_for(args: argparse.Namespace, new: bool) -> Any:
    if args.config is not None:
        cfg = load_config(args.config)
        run = make_run(args.out, cfg)
        if new or not run.path("config.yaml").exists():
            if run.start(overwrite=args.overwrite):
                print(f"[simshap] resuming {run.out} (same config)", flush=True)
        elif load_config(run.path("config.yaml")) != cfg:
            raise ExistingOutputError(
                f"{run.out} was started with another config; pass --overwrite with `run` to "
                "start over, or omit the config to resume it"
            )
        return run
    return make_run(args.out)


# (stage, its output file) in order; `run` skips stages whose output exists (resume)
def _stages(run: Any) -> list[tuple[str, str, Any]]:
    model_file = "classifier.pt" if hasattr(run, "classifier") else "model.txt"
    stages: list[tuple[str, str, Any]] = [
        ("original model", model_file, run.fit_model),
        ("surrogate", "surrogate.pt", run.fit_surrogate),
    ]
    for name in EXPLAINERS:
        stages.append((name, f"{name}.pt", lambda n=name: run.fit_explainer(n)))
    return stages


def _cmd_run(args: argparse.Namespace) -> int:
    run = _run_for(args, new=True)
    for label, output, fit in _stages(run):
        if run.done(output):
            print(f"[simshap] {label}: {run.path(output)} exists, kept", flush=True)
        else:
            print(f"[simshap] {label}: {fit()}", flush=True)
    if not is_rank_zero():
        return 0
    if run.done("results.json"):  # a finished run: show its results again
        results = json.loads(run.path("results.json").read_text())
    else:
        results = run.evaluate()
    print(run.table(results))
    print(f"[simshap] results in {run.out}/results.json")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    run = _run_for(args, new=False)
    if args.command == "fit-model":
        print(run.fit_model(overwrite=args.overwrite))
    elif args.command == "fit-surrogate":
        print(run.fit_surrogate(overwrite=args.overwrite))
    elif args.command == "fit-explainer":
        for name in args.explainer:
            print(name, run.fit_explainer(name, overwrite=args.overwrite))
    else:
        print(run.table(run.evaluate(overwrite=args.overwrite)))
    return 0


def register(subparsers: Any) -> None:
    """Add ``run``, ``fit-model``, ``fit-surrogate``, ``fit-explainer``, ``evaluate``."""
    p = subparsers.add_parser(
        "run", help="train model, surrogate, SimSHAP and FastSHAP, then evaluate"
    )
    p.add_argument("config", help="YAML config, e.g. configs/breast_cancer.yaml")
    p.add_argument("--out", required=True, help="run folder (must not exist, or --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.set_defaults(func=_cmd_run)
    helps = {
        "fit-model": "train the original model (LightGBM, or ResNet-18 for images)",
        "fit-surrogate": "train the surrogate s(x, m) on the stored model",
        "fit-explainer": "train SimSHAP and/or FastSHAP on the stored surrogate",
        "evaluate": "ground truth, errors at matched budgets, timings, table and plots",
    }
    for name, text in helps.items():
        sp = subparsers.add_parser(name, help=text)
        sp.add_argument("config", nargs="?", help="YAML config (only to start a new run)")
        sp.add_argument("--out", required=True, help="run folder")
        sp.add_argument("--overwrite", action="store_true", help="recompute this stage")
        if name == "fit-explainer":
            sp.add_argument("--explainer", nargs="+", default=list(EXPLAINERS),
                            choices=list(EXPLAINERS))
        sp.set_defaults(func=_cmd_stage)

