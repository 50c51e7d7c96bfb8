"""Evaluation of a tabular run: ground truth, errors at matched budgets, fidelity, table, plots.

The ``evaluate`` stage of :class:`simshap.runs.tabular.TabularRun`, kept in its own file. Every
method explains the same first ``evaluation.n_instances`` test rows on the run's game (the
surrogate's, or the model's marginal or baseline game), against a cached ground truth.
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from simshap.amortized.io import load_explainer
from simshap.errors import UserError
from simshap.evaluation.metrics import attribution_errors, truth_noise
from simshap.evaluation.preflight import check_ground_truth_cost
from simshap.evaluation.report import environment, results_table
from simshap.evaluation.tabular import amortized_at_budgets, estimators_at_budgets
from simshap.evaluation.timing import seconds_per_instance
from simshap.evaluation.truth import ground_truth
from simshap.files import torch_save_atomic
from simshap.fingerprint import fingerprint
from simshap.games.rows import RowsGame
from simshap.games.values import MaskedModelGame
from simshap.results import ShapleyValues

__all__ = ["PLOTS", "TabularEvaluation"]

PLOTS = ("error_vs_budget.png", "{first}_bar.png", "{first}_beeswarm.png")


class TabularEvaluation:
    """The ``evaluate`` stage of a tabular run (a mix-in of :class:`~simshap.runs.TabularRun`)."""

    table = staticmethod(results_table)

    def evaluation_game(self, n: int) -> Any:
        """The game of the first ``n`` test rows (surrogate, or the model's rows game)."""
        data = self.data
        if self.game_name == "surrogate":
            surrogate = self.surrogate()
            x = torch.as_tensor(data.x_test[:n])
            return MaskedModelGame(surrogate.value, x, groups=surrogate.groups)
        raw = data.preprocessor.raw_array(data.raw_test[:n])
        return RowsGame(self.adapter().on_array, raw, self.background())

    def preflight(self) -> dict[str, Any]:
        """Refuse, before any training, a ground truth that would take too long or too much memory.

        Times the game on one test row (the model, or an untrained surrogate of the configured
        size) and estimates the ground truth's cost (:mod:`simshap.evaluation.preflight`).
        """
        ev, data = self.config["evaluation"], self.data
        d, budget = data.n_features, self.config["explainer"]["val_budget"]
        if budget < d:
            raise UserError(
                f"explainer.val_budget={budget} is below the {d} players: the "
                "KernelSHAP validation targets would be undetermined; use at least "
                f"{d}"
            )
        n = min(ev["n_instances"], len(data.raw_test))
        if self.game_name == "surrogate":
            surrogate = self.build_surrogate(untrained=True).eval()
            x = torch.as_tensor(data.x_test[:1])
            game = MaskedModelGame(surrogate.value, x, groups=surrogate.groups)
        elif self.config["model"]["path"] is None:
            return {}  # the model is trained by the run: timed before the ground truth instead
        else:
            game = self.evaluation_game(1)
        return check_ground_truth_cost(
            game, n, ev["ground_truth"], ev["max_minutes"], classes=max(1, data.n_classes)
        )

    def explainers(self) -> dict[str, Any]:
        """The trained explainers of the run, with the model attached."""
        out = {}
        for name in self.explainer_names:
            path = self._require(f"{name}.pt", name, "fit-explainer")
            out[name] = load_explainer(path).attach_model(self.adapter())
        return out

    def evaluate(self, overwrite: bool = False) -> dict[str, Any]:
        """Ground truth, l1/l2 of every method at matched budgets, fidelity, table and plots."""
        explainers = self.explainers()
        self.begin("evaluate", overwrite)
        ev, data = self.config["evaluation"], self.data
        n = min(ev["n_instances"], len(data.raw_test))
        raw = data.raw_test[:n]  # what users pass: the explainers hold their preprocessing
        classes = self.explained_classes("test", n)
        game = self.evaluation_game(n)
        if not self._truth_cached(game, ev["ground_truth"], ev["threshold"]):
            check_ground_truth_cost(
                game.select(torch.arange(1)),
                n,
                ev["ground_truth"],
                ev["max_minutes"],
                classes=self.adapter().num_outputs,
                threshold=ev["threshold"],
            )
        truth, truth_s = self._ground_truth(game, ev["ground_truth"], ev["threshold"])
        methods: dict[str, dict[str, Any]] = {}
        timings = self._timings()
        for name, explainer in explainers.items():
            sv = explainer(raw)
            additivity = (sv.base_values + sv.values.sum(1) - sv.prediction).abs().max()
            methods[name] = {
                **attribution_errors(sv.values, truth.values, classes),
                "inference_s_per_instance": seconds_per_instance(lambda e=explainer: e(raw), n),
                "train_s": timings.get(f"{name}_train_s", float("nan")),
                "max_additivity_error": float(additivity),
            }
        methods.update(
            estimators_at_budgets(game, truth.values, classes, list(ev["budgets"]), self.seed)
        )
        for name in ("simshap", "labels"):  # amortized + budget: g(x) refined by k calls
            if name in explainers:
                methods.update(
                    amortized_at_budgets(
                        explainers[name],
                        raw,
                        truth.values,
                        classes,
                        list(ev["budgets"]),
                        self.seed,
                        name=name,
                    )
                )
        results = {
            "dataset": data.name,
            "task": data.task,
            "game": self.game_name,
            "profile": self.config["profile"],
            "explained": self.adapter().describe(),
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
            "model": self._test_score(),
            "training_s": timings,
            "environment": environment(),
        }
        if self.game_name == "surrogate":
            results["surrogate"] = self.surrogate_report(self.surrogate())
        self.write("results.json", json.dumps(results, indent=2))
        self.write("results.md", results_table(results))
        plots = self._plots(results, explainers, raw, classes)
        after = [*self.explainer_inputs(), *explainers]
        self.commit("evaluate", ["results.json", "results.md", *plots], after=after)
        return results

    def _truth_key(self, game: Any, method: str, threshold: float) -> str:
        if isinstance(game, RowsGame):
            what: Any = [self.stage_digest("model"), game.background.astype(str), self.game_name]
            inst: Any = game.x.astype(str)
        else:
            what, inst = self.surrogate().net, game.x
        return fingerprint(
            what,
            {
                "method": method,
                "paired": True,
                "threshold": threshold,
                "seed": self.seed,
                "chunks": "v1",
            },
            inst,
        )

    def _truth_cached(self, game: Any, method: str, threshold: float) -> bool:
        from simshap.files import read_cache

        return read_cache(self.path("ground_truth.pt")).get("key") == self._truth_key(
            game, method, threshold
        )

    def _ground_truth(
        self, game: Any, method: str, threshold: float
    ) -> tuple[ShapleyValues, float]:
        """Ground truth (exact when d <= 16 under ``auto``), cached under a key of its inputs.

        The key hashes what defines the game (the surrogate's weights, or the model stage and
        the background rows), the estimator settings and the explained instances: a new
        surrogate or model, another method or threshold or other instances never reuse a stale
        cache. A truncated or altered cache file is recomputed.
        """
        from simshap.files import read_cache

        cache = self.path("ground_truth.pt")
        key = self._truth_key(game, method, threshold)
        blob = read_cache(cache)
        if blob.get("key") == key:
            truth = ShapleyValues(
                values=blob["values"],
                base_values=blob["base_values"],
                std=blob["std"],
                n_evals=int(blob["n_evals"]),
                method=blob["method"],
            )
            return truth, float(blob["seconds_per_instance"])
        start = time.perf_counter()
        truth = ground_truth(
            game,
            method=method,
            threshold=threshold,
            seed=self.seed,
            engine=self.config["evaluation"]["engine"],
            cache_dir=self.path("ground_truth_chunks"),
            key=key,
        )
        seconds = (time.perf_counter() - start) / game.num_instances
        torch_save_atomic(
            {
                "values": truth.values,
                "base_values": truth.base_values,
                "std": truth.std,
                "n_evals": truth.n_evals,
                "method": truth.method,
                "key": key,
                "seconds_per_instance": seconds,
            },
            cache,
        )
        return truth, seconds

    def _plots(
        self, results: dict[str, Any], explainers: dict[str, Any], x: Any, classes: torch.Tensor
    ) -> list[str]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import shap

        from simshap.files import fault_point

        methods = results["methods"]
        fig, ax = plt.subplots(figsize=(6, 4))
        families = sorted({k.split("@")[0] for k in methods if "@" in k})
        for fam in families:
            pts = sorted(
                (int(k.split("@")[1]), v["l2"])
                for k, v in methods.items()
                if k.split("@")[0] == fam
            )
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
        for name, style in zip(explainers, ("-", "--", ":", "-."), strict=False):
            ax.axhline(methods[name]["l2"], linestyle=style, color="k", label=name)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="game evaluations per instance",
            ylabel="mean l2 to ground truth",
            title=results["dataset"],
        )
        ax.legend(fontsize=7)
        fig.tight_layout()
        written = [
            self.write("error_vs_budget.png", lambda p: fig.savefig(p, dpi=120, format="png"))
        ]
        plt.close(fig)
        fault_point("evaluate.plots")
        first = next(iter(explainers))  # the bar and beeswarm plots show one explainer
        cls = int(torch.mode(classes).values)
        exp = explainers[first](x).to_shap(target=cls)
        for kind, plot in (("bar", shap.plots.bar), ("beeswarm", shap.plots.beeswarm)):
            plot(exp, show=False)
            figure = plt.gcf()
            written.append(
                self.write(
                    f"{first}_{kind}.png",
                    lambda p, f=figure: f.savefig(p, dpi=120, bbox_inches="tight", format="png"),
                )
            )
            plt.close("all")
        return [p.name for p in written]
