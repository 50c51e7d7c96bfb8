"""End-to-end HyperSHAP study: LightGBM hyperparameter importance on real data.

For every data set: evaluate random LightGBM configurations for real (validation score), fit a
performance surrogate, explain the ablation (defaults -> best found) and tunability games with
exact FSII of several orders, SV and the R²(k) curve; across data sets, the aggregated
tunability; the two deficient optimizers' bias; and the downstream check -- random search on
all hyperparameters against random search on the top-k by main effect (anytime best score).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simshap.interactions.exact import ExactInteractionComputer, InteractionValues
from simshap.runs.config_files import merge_config
from simshap.studies.hpo.games import (
    AblationGame,
    HPIGame,
    MultiDataTunabilityGame,
    OneAtATimeSearch,
    OptimizerBiasGame,
    SubsetSearch,
    TunabilityGame,
)
from simshap.studies.hpo.objectives import LightGBMObjective, SurrogateObjective
from simshap.studies.hpo.space import ConfigSpace

__all__ = [
    "DEFAULT_CONFIG",
    "LIGHTGBM_SPACE",
    "validate_config",
    "load_study_data",
    "explain_game",
    "downstream_random_search",
    "run_study",
]

LIGHTGBM_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 0.005, "high": 0.3, "log": True, "default": 0.1},
    "num_leaves": {"type": "int", "low": 4, "high": 128, "log": True, "default": 31},
    "min_child_samples": {"type": "int", "low": 2, "high": 100, "log": True, "default": 20},
    "subsample": {"type": "float", "low": 0.4, "high": 1.0, "default": 1.0},
    "colsample_bytree": {"type": "float", "low": 0.3, "high": 1.0, "default": 1.0},
    "reg_lambda": {"type": "float", "low": 0.001, "high": 10.0, "log": True, "default": 0.001},
    "n_estimators": {"type": "int", "low": 20, "high": 300, "log": True, "default": 100},
}

DEFAULT_CONFIG: dict[str, Any] = {
    "seed": 0,
    "data_dir": None,
    "datasets": ["breast_cancer", "wine", "census"],
    "max_train_rows": 4000,
    "metric": "roc_auc",
    "cv": None,
    "n_configs": 40,
    "surrogate": "random_forest",
    "n_candidates": 10000,
    "orders": [1, 2, 3],
    "aggregate": "mean",
    "optimizer_bias": {"subset": ["learning_rate", "n_estimators"]},
    "downstream": {"n_trials": 100, "seeds": 5, "top_k": 2, "evaluator": "surrogate"},
    "n_jobs": 1,
    "space": LIGHTGBM_SPACE,
}

_EMBEDDED = ("breast_cancer", "wine", "iris", "digits")


def validate_config(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``raw`` into :data:`DEFAULT_CONFIG`, rejecting unknown keys with a clear error.

    Raises:
        ValueError: an unknown key (the message lists the allowed ones) or a bad value.
    """
    cfg = merge_config(DEFAULT_CONFIG, dict(raw or {}), replace=("space",))
    ConfigSpace.from_dict(cfg["space"])  # validates the space
    if not cfg["datasets"]:
        raise ValueError("'datasets' must name at least one data set")
    orders = [int(k) for k in cfg["orders"]]
    if not orders or min(orders) < 1 or max(orders) > len(cfg["space"]):
        raise ValueError(f"'orders' must lie in 1..{len(cfg['space'])}, got {cfg['orders']}")
    cfg["orders"] = orders
    if cfg["downstream"]["evaluator"] not in ("surrogate", "true"):
        raise ValueError("downstream.evaluator must be 'surrogate' or 'true'")
    for key in ("n_configs", "n_candidates", "max_train_rows"):
        if int(cfg[key]) < 5:
            raise ValueError(f"'{key}' must be >= 5, got {cfg[key]}")
    return cfg


def load_study_data(
    name: str, data_dir: str | None, seed: int, max_train_rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation split (75/25, stratified, seeded) of a classification data set.

    ``breast_cancer``, ``wine``, ``iris`` and ``digits`` are scikit-learn's embedded sets; any
    other name goes through :func:`simshap.data.tabular.load_raw` (e.g. ``census`` from
    ``adult.data`` in ``data_dir`` / ``$SIMSHAP_DATA``). The training part is subsampled to
    ``max_train_rows``.
    """
    from sklearn.model_selection import train_test_split

    if name in _EMBEDDED:
        import sklearn.datasets as skd

        x, y = getattr(skd, f"load_{name}")(return_X_y=True)
    else:
        from simshap.data.tabular import load_raw

        frame, y = load_raw(name, data_dir=data_dir, download=False)
        x = frame.to_numpy(dtype=np.float64)
    y = np.unique(np.asarray(y), return_inverse=True)[1]
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    if len(yt) > max_train_rows:
        xt, _, yt, _ = train_test_split(
            xt, yt, train_size=max_train_rows, random_state=seed, stratify=yt
        )
    return xt, yt, xv, yv


def _named(iv: InteractionValues, names: list[str]) -> dict[str, float]:
    return {" x ".join(names[p] for p in t): float(v) for t, v in iv.to_dict().items() if t}


def explain_game(
    game: HPIGame, orders: list[int]
) -> tuple[dict[str, Any], ExactInteractionComputer]:
    """Exact SV, FSII of each order and the R²(k) curve of an HPI game (one evaluation pass)."""
    names = game.player_names
    start = time.perf_counter()
    comp = ExactInteractionComputer(game)
    result: dict[str, Any] = {
        "v_empty": float(comp.table[0, 0, 0]),
        "v_full": float(comp.table[0, -1, 0]),
        "sv": _named(comp("SV"), names),
        "fsii": {str(k): _named(comp.fsii(k), names) for k in orders},
        "r2": [float(r) for r in comp.r2_curve()[:, 0, 0]],
    }
    result["seconds"] = time.perf_counter() - start
    return result, comp


def downstream_random_search(
    space: ConfigSpace,
    evaluate: Any,
    tuned: list[int],
    n_trials: int,
    seeds: int,
) -> np.ndarray:
    """Anytime best score ``(seeds, n_trials)`` of random search tuning only ``tuned``.

    Hyperparameters not in ``tuned`` stay at the space's defaults; seed s draws with
    ``numpy.random.default_rng(s)``.
    """
    mask = np.zeros(len(space), dtype=bool)
    mask[tuned] = True
    curves = []
    for s in range(seeds):
        configs = space.sample(n_trials, np.random.default_rng(s))
        configs = np.where(mask[None], configs, space.default()[None])
        curves.append(np.maximum.accumulate(np.asarray(evaluate(configs), dtype=np.float64)))
    return np.stack(curves)


def run_study(cfg: Mapping[str, Any], out: Path, log: Any = print) -> dict[str, Any]:
    """Run the study described by ``cfg`` (see :data:`DEFAULT_CONFIG`) and write into ``out``.

    Writes ``results.json`` and the plots (``interactions_<data>.png``, ``r2_curves.png``,
    ``anytime.png``). Returns the results dictionary.
    """
    from simshap.studies.hpo import plots

    cfg = validate_config(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    space = ConfigSpace.from_dict(cfg["space"])
    names = space.names
    seed, orders = int(cfg["seed"]), cfg["orders"]
    ds_cfg = cfg["downstream"]
    results: dict[str, Any] = {"config": cfg, "hyperparameters": names, "datasets": {}}
    surrogates, r2_curves, anytime, graphs = [], {}, {}, {}
    t0 = time.perf_counter()
    for name in cfg["datasets"]:
        log(f"[hpi] {name}: loading and evaluating {cfg['n_configs']} configurations")
        xt, yt, xv, yv = load_study_data(name, cfg["data_dir"], seed, int(cfg["max_train_rows"]))
        true = LightGBMObjective(
            space,
            xt,
            yt,
            xv,
            yv,
            metric=cfg["metric"],
            cv=cfg["cv"],
            seed=seed,
            n_jobs=int(cfg["n_jobs"]),
        )
        rng = np.random.default_rng(seed)
        configs = np.concatenate([space.default()[None], space.sample(int(cfg["n_configs"]), rng)])
        start = time.perf_counter()
        scores = true(configs)
        eval_s = time.perf_counter() - start
        surrogate = SurrogateObjective(
            space, configs, scores, model=cfg["surrogate"], seed=seed, n_jobs=int(cfg["n_jobs"])
        )
        surrogates.append(surrogate)
        best = configs[int(np.argmax(scores))]
        entry: dict[str, Any] = {
            "n_train": int(len(yt)),
            "n_val": int(len(yv)),
            "n_true_evaluations": int(true.n_fits),
            "true_evaluation_seconds": eval_s,
            "surrogate_cv_r2": surrogate.cv_r2(seed=seed),
            "default_score": float(scores[0]),
            "best_score": float(scores.max()),
            "best_config": space.decode(best),
        }
        log(f"[hpi] {name}: default {scores[0]:.4f}, best {scores.max():.4f}; explaining")
        ablation = AblationGame(space, surrogate, space.default(), best)
        entry["ablation"], _ = explain_game(ablation, orders)
        tun = TunabilityGame(space, surrogate, space.default(), int(cfg["n_candidates"]), seed)
        entry["tunability"], comp = explain_game(tun, orders)
        graphs[name] = comp.fsii(min(2, len(space)))
        r2_curves[f"{name} ablation"] = entry["ablation"]["r2"]
        r2_curves[f"{name} tunability"] = entry["tunability"]["r2"]
        # optimizer bias of the two deficient optimizers against the virtual best
        bias = {}
        for label, opt in (
            ("one_at_a_time", OneAtATimeSearch(tun.search)),
            ("subset", SubsetSearch(tun.search, cfg["optimizer_bias"]["subset"])),
        ):
            game = OptimizerBiasGame(space, opt, [tun.search])
            bias[label], _ = explain_game(game, [k for k in orders if k <= 2])
        entry["optimizer_bias"] = bias
        # downstream: all hyperparameters vs the top-k by main effect (tunability SV)
        sv = comp("SV").values[0, 1:, 0].numpy()
        top = [int(i) for i in np.argsort(-sv)[: int(ds_cfg["top_k"])]]
        evaluate = surrogate if ds_cfg["evaluator"] == "surrogate" else true
        n_trials, n_seeds = int(ds_cfg["n_trials"]), int(ds_cfg["seeds"])
        all_curve = downstream_random_search(
            space, evaluate, list(range(len(space))), n_trials, n_seeds
        )
        top_curve = downstream_random_search(space, evaluate, top, n_trials, n_seeds)
        entry["downstream"] = {
            "top_hyperparameters": [names[i] for i in top],
            "all_mean": all_curve.mean(0).tolist(),
            "all_std": all_curve.std(0).tolist(),
            "top_mean": top_curve.mean(0).tolist(),
            "top_std": top_curve.std(0).tolist(),
            "final_all": float(all_curve[:, -1].mean()),
            "final_top": float(top_curve[:, -1].mean()),
        }
        anytime[name] = (all_curve, top_curve, [names[i] for i in top])
        results["datasets"][name] = entry
    if len(surrogates) > 1:
        log(f"[hpi] tunability over {len(surrogates)} data sets ({cfg['aggregate']})")
        multi = MultiDataTunabilityGame(
            space, surrogates, space.default(), cfg["aggregate"], int(cfg["n_candidates"]), seed
        )
        results["multi_data_tunability"], comp = explain_game(multi, orders)
        graphs["all data sets"] = comp.fsii(min(2, len(space)))
        r2_curves["multi-data tunability"] = results["multi_data_tunability"]["r2"]
    for label, iv in graphs.items():
        fname = "interactions_" + label.replace(" ", "_") + ".png"
        plots.interaction_graph(iv, names, out / fname, title=f"Tunability FSII-2: {label}")
    plots.r2_curves(r2_curves, out / "r2_curves.png")
    plots.anytime_curves(anytime, out / "anytime.png")
    results["seconds"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
    log(f"[hpi] wrote {out / 'results.json'} ({results['seconds']:.1f} s)")
    return results


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
