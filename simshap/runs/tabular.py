"""The tabular end-to-end job: original model, surrogate, explainers, evaluation.

Every stage reads its inputs from and writes its outputs to one run folder, so stages can be run
separately (``simshap fit-model`` ... ``simshap evaluate``) and resume where the last stopped.

Run folder::

    config.yaml          the merged configuration
    manifest.json        each finished stage's files, sizes and hashes; the inputs' hashes
    model.txt            the LightGBM original model (or a note naming the user's model file)
    surrogate.pt         the surrogate (weights-only file; only for game: surrogate)
    simshap.pt ...       the explainers
    ground_truth.pt      cached ground truth (exact for d <= 16, else converged KernelSHAP)
    timings.json         training seconds per stage
    results.json, results.md, error_vs_budget.png, <first explainer>_bar.png and _beeswarm.png
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.sources import RowsSource
from simshap.amortized.surrogate import Surrogate, dummy_columns, players_spec, surrogate_spec
from simshap.amortized.training import EpochSampler
from simshap.data.tabular import TabularData, load_tabular
from simshap.data.tabular_sources import data_file
from simshap.data.user_table import baseline_row
from simshap.errors import UserError
from simshap.files import sha256_file
from simshap.fingerprint import fingerprint
from simshap.games.rows import RowsGame
from simshap.models.adapter import ModelAdapter
from simshap.models.explainer_nets import cut_points
from simshap.models.original import (
    fit_original_model,
    load_original_model,
    load_user_model,
    save_original_model,
)
from simshap.runs.profiles import resolve_profile
from simshap.runs.run import EXPLAINERS, Run
from simshap.runs.tabular_evaluation import TabularEvaluation

__all__ = ["EXPLAINERS", "TabularRun"]


class TabularRun(TabularEvaluation, Run):
    """One run folder of the tabular job.

    Args:
        out: the run folder.
        config: the merged configuration (``None``: read ``out/config.yaml``).
    """

    def __init__(
        self,
        out: str | Path,
        config: dict[str, Any] | None = None,
        data: TabularData | None = None,
        adapter: ModelAdapter | None = None,
    ) -> None:
        super().__init__(out, config, example_config="breast_cancer")
        # rows and a model given in memory (simshap.fit) instead of files
        self._data, self._adapter, self._given = data, adapter, data is not None
        self._moments: tuple[list[float], list[float]] | None = None
        self._cuts: list[list[float]] | None = None
        # sizes left at None come from the profile of the table's size
        self.config = resolve_profile(self.config_file, len(self.data.raw_train))

    # ------------------------------------------------------------------ data and model
    @property
    def data(self) -> TabularData:
        """The split data set, with its fitted preprocessing."""
        if self._data is None:
            c = self.config
            self._data = load_tabular(
                c["dataset"],
                data_dir=c["data_dir"],
                seed=self.seed,
                task=c["task"],
                allow_missing=c["data"]["allow_missing"],
                unseen_categories=c["data"]["unseen_categories"],
            )
        return self._data

    @property
    def device(self) -> torch.device:
        """Tabular evaluation runs on the CPU (small networks; training may use a GPU)."""
        return torch.device("cpu")

    def input_hashes(self) -> dict[str, Any]:
        """Content hashes of the data file (or the embedded table) and the user's model file."""
        c = self.config
        dataset = c["dataset"]
        path = (
            Path(dataset["path"])
            if isinstance(dataset, dict)
            else None
            if self._given
            else data_file(dataset, c["data_dir"])
        )
        if path is not None and path.is_file():
            data = {"path": str(path.resolve()), "sha256": sha256_file(path)}
        else:  # an embedded table: its content
            frame = self.data
            data = {
                "path": str(dataset),
                "sha256": fingerprint(
                    frame.raw_train.to_numpy(dtype=str),
                    frame.raw_val.to_numpy(dtype=str),
                    frame.raw_test.to_numpy(dtype=str),
                    frame.y_train,
                    frame.y_val,
                    frame.y_test,
                ),
            }
        out = {"data": data}
        if self._given:  # a model in memory: its outputs on the training rows are its identity
            rows = self.data.raw_train[:256]
            out["model"] = {
                "path": type(self.adapter().model).__name__,
                "sha256": fingerprint(self.adapter()(rows)),
            }
            return out
        model = c["model"]["path"]
        if model is not None:
            p = Path(model)
            out["model"] = {
                "path": str(p.resolve()),
                "sha256": sha256_file(p) if p.is_file() else None,
            }
        return out

    def original_model(self) -> Any:
        """The original model of raw rows: the user's (``model.path``) or the stored LightGBM."""
        path = self.config["model"]["path"]
        if path is not None:
            return load_user_model(path)
        return load_original_model(
            self._require("model.txt", "model", "fit-model"), self.data.preprocessor
        )

    def adapter(self) -> ModelAdapter:
        """The original model as the model contract: what is explained, on raw rows."""
        if self._adapter is None:
            data, m = self.data, self.config["model"]
            model = self.original_model()
            ours = m["path"] is None
            self._adapter = ModelAdapter(
                model,
                data.raw_train[:256],
                task=data.task,
                output=m["output"],
                link=m["link"],
                y=data.y_train,
                class_names=data.class_names
                if ours or getattr(model, "classes_", None) is None
                else None,
            )
        return self._adapter

    def targets(self, split: str, n: int | None = None) -> np.ndarray:
        """The explained quantity ``(n, C)`` of the original model on a split's raw rows."""
        return self.adapter()(getattr(self.data, f"raw_{split}")[:n])

    def explained_classes(self, split: str, n: int | None = None) -> torch.Tensor:
        """The output explained per row: the model's predicted class (0 for a regression)."""
        t = self.targets(split, n)
        return torch.as_tensor(
            t.argmax(1) if self.data.task == "classification" else np.zeros(len(t), dtype=np.int64)
        )

    # ------------------------------------------------------------------ stages
    def fit_model(self, overwrite: bool = False) -> dict[str, float]:
        """Train and store the LightGBM original model (or check the user's); test score."""
        self.begin("model", overwrite)
        m, data = self.config["model"], self.data
        if self._given:
            self.write("model.txt", f"model given in memory: {type(self.adapter().model)}\n")
            self.commit("model", ["model.txt"])
            return {"train_s": 0.0}
        if m["path"] is not None:  # the user's own model: nothing to train
            self.write("model.txt", f"user model: {Path(m['path']).resolve()}\n")
            score = self._test_score()
            self.commit("model", ["model.txt"])
            return {**score, "train_s": 0.0}
        from simshap.evaluation.timing import timed

        model, seconds = timed(
            lambda: fit_original_model(
                data,
                seed=self.seed,
                max_rounds=m["max_rounds"],
                early_stopping_rounds=m["early_stopping_rounds"],
            )
        )
        save_original_model(model, self.path("model.txt"))
        self._record_time("model_train_s", seconds)
        self.commit("model", ["model.txt"])
        self._adapter, self._moments = None, None
        return {**self._test_score(), "train_s": seconds}

    def _test_score(self) -> dict[str, float]:
        """The original model's test accuracy (classification) or R² (regression)."""
        adapter, data = self.adapter(), self.data
        if adapter.task != data.task:
            raise UserError(
                f"the model is a {adapter.task} model but the target reads as a "
                f"{data.task} target; set task: {adapter.task} in the config"
            )
        t = self.targets("test")
        if data.task == "regression":
            y = data.y_test
            return {"test_r2": float(1 - ((t[:, 0] - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())}
        return {"test_accuracy": float((t.argmax(1) == data.y_test).mean())}

    def build_surrogate(self, untrained: bool = False) -> Surrogate:
        """A fresh MLP surrogate on ``[x * m, m]``, with the fitted preprocessing.

        ``untrained=True`` builds one of the same size without asking the model anything (to
        time the game before the model exists).
        """
        s, data = self.config["surrogate"], self.data
        prep = data.preprocessor
        scaling: dict[str, Any] = {}
        if data.task == "regression" and not untrained:
            mean, std = self._target_moments()
            scaling = {"target_mean": mean, "target_std": std}
        outputs = self.adapter().num_outputs if not untrained else max(1, data.n_classes)
        return Surrogate(
            surrogate_spec(prep, outputs, s["hidden"], s["layers"]),
            players_spec(prep),
            lr=s["lr"],
            weight_decay=s["weight_decay"],
            masks_per_row=s["masks_per_row"],
            max_epochs_hint=s["max_epochs"] if s["cosine"] else 0,
            seed=self.seed,
            preprocessor=prep.to_dict(),
            task=data.task,
            link=self.config["model"]["link"],
            always_present=dummy_columns(prep),
            **scaling,
        )

    def _surrogate_targets(self, split: str) -> torch.Tensor:
        """What the surrogate learns: a classifier's probabilities, a regressor's prediction."""
        adapter = self.adapter()
        link, adapter.link = adapter.link, "identity"
        try:
            return torch.as_tensor(self.targets(split), dtype=torch.float32)
        finally:
            adapter.link = link

    def surrogate_loaders(self) -> tuple[DataLoader, DataLoader]:
        """``(x, t, y)`` batches: the original model's outputs t, precomputed."""
        s, data = self.config["surrogate"], self.data

        def loader(split: str, shuffle: bool) -> DataLoader:
            x = torch.as_tensor(getattr(data, f"x_{split}"))
            y = getattr(data, f"y_{split}")
            y = torch.as_tensor(y if data.task == "classification" else np.zeros(len(y), int))
            ds = TensorDataset(x, self._surrogate_targets(split), y)
            sampler = EpochSampler(len(ds), self.seed) if shuffle else None
            return DataLoader(ds, batch_size=s["batch_size"], sampler=sampler)

        return loader("train", True), loader("val", False)

    def surrogate_report(self, surrogate: Surrogate) -> dict[str, Any]:
        """Fidelity to the original model on the validation rows, and test accuracies."""
        from simshap.amortized.fidelity import fidelity, warn_fidelity

        data = self.data
        fid = fidelity(surrogate, data.x_val, self.targets("val"), data.task)
        warn_fidelity(fid)
        surrogate.hparams.fidelity = fid
        out: dict[str, Any] = {"fidelity": fid}
        if data.task == "classification" and len(data.raw_test):
            x = torch.as_tensor(data.x_test).to(surrogate.device)
            full = torch.ones(len(x), surrogate.num_players, dtype=torch.bool, device=x.device)
            pred = surrogate.value(x, surrogate.groups.feature_mask(full)).argmax(-1).cpu()
            out["surrogate_full_mask_accuracy"] = float((pred.numpy() == data.y_test).mean())
            out["original_accuracy"] = float((self.targets("test").argmax(1) == data.y_test).mean())
        return out

    def explainer_net_spec(self) -> dict[str, Any]:
        """An MLP from the network inputs (and their cut points) to ``(d, C)`` attributions."""
        e, data = self.config["explainer"], self.data
        spec = {
            "kind": "mlp",
            "in_features": data.preprocessor.num_inputs,
            "num_players": data.n_features,
            "num_classes": self.adapter().num_outputs,
            "hidden": e["hidden"],
            "layers": e["layers"],
        }
        if e["input_bins"]:
            if self._cuts is None:  # once per run: every method's spec asks for them twice
                self._cuts = cut_points(data.x_train[:, : data.n_features], e["input_bins"])
            spec["cuts"] = self._cuts
        if data.task == "regression":  # outputs in units of the predictions' standard deviation
            spec["output_scale"] = self._target_moments()[1]
        return spec

    def _target_moments(self) -> tuple[list[float], list[float]]:
        """Mean and std of the model's training predictions per output (once per model)."""
        if self._moments is None:
            t = torch.as_tensor(self.targets("train"), dtype=torch.float64)
            self._moments = (t.mean(0).tolist(), t.std(0).clamp_min(1e-12).tolist())
        return self._moments

    def background(self) -> np.ndarray:
        """The background rows of the game (raw): K training rows, or the baseline row."""
        data, prep = self.data, self.data.preprocessor
        raw = prep.raw_array(data.raw_train)
        if self.game_name == "baseline":
            return baseline_row(data.raw_train, prep.feature_names)
        k = min(self.config["background_size"], len(raw))
        pick = np.random.default_rng(self.seed).choice(len(raw), size=k, replace=False)
        return raw[np.sort(pick)]

    def model_info(self) -> dict[str, Any]:
        """What is explained (the model contract) and, for the surrogate game, its fidelity."""
        info = self.adapter().describe()
        info["game"] = self.game_name
        if self._given:
            info["model"] = type(self.adapter().model).__name__
        elif self.config["model"]["path"] is None:
            info["model"] = "LightGBM trained by simshap (model.txt)"
        else:
            info["model"] = str(Path(self.config["model"]["path"]).name)
        frame = self.data.raw_train
        info["frame_dtypes"] = {str(c): str(t) for c, t in frame.dtypes.items()}
        if self.game_name == "surrogate" and self.done("surrogate"):
            info["fidelity"] = self.surrogate().hparams.get("fidelity")
        return info

    def explainer_extras(self) -> dict[str, Any]:
        """Names, preprocessing, game, model contract and background rows (kept in the file)."""
        return {
            "feature_names": self.data.feature_names,
            "class_names": self.adapter().class_names,
            "preprocessor": self.data.preprocessor.to_dict(),
            "game": self.game_name,
            "model_info": self.model_info(),
            "background": self.background().tolist(),
        }

    def explainer_game(self, module: AmortizedExplainer) -> None:
        """Attach the model and the raw row tables a model's game reads (or the model alone)."""
        module.attach_model(self.adapter())
        if isinstance(module.source, RowsSource):
            prep, e = self.data.preprocessor, self.config["explainer"]
            module.source.tables = {
                "train": prep.raw_array(self.data.raw_train),
                "val": prep.raw_array(self.data.raw_val[: e["val_instances"]]),
            }
            self._say_model_cost(module.source)

    def _say_model_cost(self, source: RowsSource) -> None:
        """Print how many rows training on the model's game feeds the model, and how long.

        A training coalition costs one model row, a validation target ``val_budget`` coalitions
        on every background row; timed on 2,048 coalitions (early stopping may end sooner).
        """
        e, train = self.config["explainer"], source.tables["train"]
        rows, k = len(train) * e["n_masks"] * e["max_epochs"], len(source.background)
        val = min(len(source.tables["val"]), e["val_instances"]) * e["val_budget"] * k
        n = min(len(train), 2048)
        masks = torch.rand(n, 1, train.shape[1], generator=torch.Generator().manual_seed(0)) < 0.5
        start = time.perf_counter()
        RowsGame(source.model.on_array, train[:n], source.background).draw(masks)
        rate = n / max(time.perf_counter() - start, 1e-9)
        print(
            f"[simshap] the {source.name} game: training feeds the model at most {rows + val:,.0f} "
            f"rows ({rows:,.0f} for {e['max_epochs']} epochs x {e['n_masks']} coalitions per row, "
            f"{val:,.0f} for validation), at most {(rows + val) / rate / 60:.1f} min at the "
            f"{rate:,.0f} rows/s measured here (early stopping often ends sooner); "
            f"explainer.max_epochs, explainer.n_masks, background_size or fewer rows bring it down",
            flush=True,
        )

    def explainer_loaders(self) -> tuple[DataLoader, DataLoader]:
        """Training rows (epoch-seeded order) and the first validation rows, with row indices."""
        e, data = self.config["explainer"], self.data
        x = torch.as_tensor(data.x_train)
        train = DataLoader(
            TensorDataset(x, torch.arange(len(x))),
            batch_size=e["batch_size"],
            sampler=EpochSampler(len(x), self.seed),
        )
        xv = torch.as_tensor(data.x_val[: e["val_instances"]])
        val = DataLoader(TensorDataset(xv, torch.arange(len(xv))), batch_size=256)
        return train, val
