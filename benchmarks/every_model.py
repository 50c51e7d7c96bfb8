"""Every model and every task, values users can check: the measured goals, in one script.

Parts (``--parts`` picks some; each writes its entry of benchmarks/results/every_model.json and
the section "## Every model and task" of benchmarks/RESULTS.md):

* ``readme``: the README's one call on breast_cancer: wall seconds and relative l2 against the
  converged KernelSHAP values of its surrogate game (goal: <= 0.15 in <= 2 minutes on 2 cores).
* ``regression``: diabetes (d = 10, exact truth of the surrogate game on the test split) with
  LightGBM and with scikit-learn's GradientBoostingRegressor (goal: SimSHAP's relative l2
  <= 0.25 and <= FastSHAP's).
* ``regression_seeds``: the LightGBM row over 4 explainer seeds (is SimSHAP's gap noise?).
* ``missing``: UCI Adult with '?' read as missing, explained for a HistGradientBoosting
  pipeline that handles missing values itself (exact truth, d = 14).
* ``categories``: `simshap run` on 3,000-row samples of Adult (strings, rare categories),
  8 seeds (goal: 8 of 8 complete).
* ``small``: wine (178 rows, 3 classes, ~110 training rows): the default one call against paired
  KernelSHAP@512 on the same game (goal: within 2x, or a warning whose recommended budget is).
* ``marginal``: census, LightGBM, 100 background rows, the marginal game (no surrogate): the
  amortized explainer against paired KernelSHAP@512 (goal: l2 <= KernelSHAP@512's).
* ``marginal_exact``: the same game's exact truth against shap's ExactExplainer and its
  KernelExplainer with every coalition and ``l1_reg=False`` (goal: equal to 1e-6), and
  TreeExplainer's interventional values (raw and probability output).
* ``marginal_inputs``: the explainer's MLP regressed on the exact marginal values of the
  log-odds game (no game calls), with and without thermometer inputs, longer, wider and on half
  the rows: what the network can reach and what limits it.

    OMP_NUM_THREADS=2 python benchmarks/every_model.py --data-dir ../shared/data [--parts readme]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _adult import read_adult  # noqa: E402
from _report import machine, write_section  # noqa: E402

import simshap  # noqa: E402
from simshap.estimators import exact_shapley, kernel_shap  # noqa: E402
from simshap.evaluation.metrics import attribution_errors  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "every_model.json"


def _errors(values: torch.Tensor, truth: torch.Tensor, classes: torch.Tensor) -> dict[str, float]:
    return {k: round(v, 6) for k, v in attribution_errors(values, truth, classes).items()}


def _classes(explainer: Any, rows: Any) -> torch.Tensor:
    pred = explainer(rows).prediction
    return pred.argmax(1) if pred.shape[1] > 1 else torch.zeros(len(pred), dtype=torch.long)


def _truth(explainer: Any, rows: Any) -> Any:
    x, raw = explainer._inputs(rows)
    game = explainer.game(x, raw)
    if game.num_players <= 16:
        return game, exact_shapley(game)
    return game, kernel_shap(game, threshold=0.01, generator=torch.Generator().manual_seed(1))


def _kernel(game: Any, budget: int, seed: int = 0) -> torch.Tensor:
    return kernel_shap(
        game, budget=budget, paired=True, generator=torch.Generator().manual_seed(seed)
    ).values


def part_readme() -> dict[str, Any]:
    import lightgbm
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    start = time.perf_counter()
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0)
    model = lightgbm.LGBMClassifier(n_estimators=100, verbose=-1).fit(x_train, y_train)
    explainer = simshap.fit(model, x_train, y_train)
    sv = explainer(x_test)
    seconds = time.perf_counter() - start
    _, truth = _truth(explainer, x_test)
    return {
        "seconds": round(seconds, 1),
        **_errors(sv.values, truth.values, _classes(explainer, x_test)),
        "accuracy": explainer.hparams.model_info.get("accuracy"),
    }


def _regression_row(name: str, model: Any, data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in ("simshap", "fastshap"):
        start = time.perf_counter()
        explainer = simshap.fit(model, data.raw_train, method=method, seed=0)
        seconds = time.perf_counter() - start
        sv = explainer(data.raw_test)
        game, truth = _truth(explainer, data.raw_test)
        zero = torch.zeros(len(sv.values), dtype=torch.long)
        out[method] = {**_errors(sv.values, truth.values, zero), "train_s": round(seconds, 1)}
        out["kernelshap_paired@512"] = _errors(_kernel(game, 512), truth.values, zero)
        out["fidelity"] = explainer.hparams.model_info.get("fidelity")
    return {"model": name, **out}


def part_regression() -> dict[str, Any]:
    import lightgbm
    from sklearn.ensemble import GradientBoostingRegressor

    from simshap.data.tabular import load_tabular

    data = load_tabular("diabetes", seed=0)
    lgbm = lightgbm.LGBMRegressor(
        n_estimators=200, learning_rate=0.05, num_leaves=10, verbose=-1
    ).fit(data.raw_train, data.y_train)
    gbr = GradientBoostingRegressor(random_state=0).fit(data.raw_train, data.y_train)
    return {
        "rows": [
            _regression_row("LightGBM", lgbm, data),
            _regression_row("GradientBoostingRegressor", gbr, data),
        ]
    }


def part_regression_seeds(seeds: int = 4) -> dict[str, Any]:
    """SimSHAP against FastSHAP on diabetes (LightGBM) over explainer seeds: is a gap noise?"""
    import lightgbm

    from simshap.data.tabular import load_tabular

    data = load_tabular("diabetes", seed=0)
    model = lightgbm.LGBMRegressor(
        n_estimators=200, learning_rate=0.05, num_leaves=10, verbose=-1
    ).fit(data.raw_train, data.y_train)
    out: dict[str, Any] = {"seeds": seeds}
    for method in ("simshap", "fastshap"):
        errors = []
        for seed in range(seeds):
            explainer = simshap.fit(model, data.raw_train, method=method, seed=seed)
            sv = explainer(data.raw_test)
            _, truth = _truth(explainer, data.raw_test)
            zero = torch.zeros(len(sv.values), dtype=torch.long)
            errors.append(_errors(sv.values, truth.values, zero)["rel_l2"])
        out[method] = {"rel_l2": errors, "mean": float(np.mean(errors))}
    out["simshap_better_on"] = sum(
        a <= b for a, b in zip(out["simshap"]["rel_l2"], out["fastshap"]["rel_l2"], strict=True)
    )
    return out


def _adult(data_dir: Path, n: int | None = None, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    frame = read_adult(data_dir, n, seed)
    return frame.drop(columns="Income"), frame["Income"]


def part_missing(data_dir: Path) -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    x, y = _adult(data_dir)
    strings = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    model = make_pipeline(
        ColumnTransformer(
            [
                (
                    "s",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=-1,
                        encoded_missing_value=np.nan,
                    ),
                    strings,
                )
            ],
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(random_state=0),
    ).fit(x, y)
    train, test = x.iloc[:8000], x.iloc[-200:]
    start = time.perf_counter()
    explainer = simshap.fit(model, train, y.iloc[:8000])
    seconds = time.perf_counter() - start
    sv = explainer(test)
    _, truth = _truth(explainer, test)
    missing = test.isna().any(axis=1).to_numpy()
    cols = [i for i, c in enumerate(x.columns) if test[c].isna().any()]
    nan_attr = float(sv.values[missing][:, cols].abs().mean()) if missing.any() else 0.0
    return {
        "rows_with_missing": int(missing.sum()),
        "columns_with_missing": [x.columns[i] for i in cols],
        "train_s": round(seconds, 1),
        **_errors(sv.values, truth.values, _classes(explainer, test)),
        "mean_abs_attribution_of_missing_features": round(nan_attr, 4),
        "fidelity": explainer.hparams.model_info.get("fidelity"),
    }


def part_categories(data_dir: Path, folder: Path) -> dict[str, Any]:
    import yaml

    from simshap.cli import main

    done = []
    for seed in range(8):
        x, y = _adult(data_dir, 3000, seed)
        csv = folder / f"adult3000_{seed}.csv"
        x.assign(Income=y).to_csv(csv, index=False)
        cfg = {
            "dataset": {"path": str(csv), "target": "Income"},
            "seed": seed,
            "surrogate": {"hidden": 64, "layers": 3, "max_epochs": 10},
            "explainer": {
                "methods": ["simshap"],
                "hidden": 64,
                "max_epochs": 5,
                "val_instances": 32,
                "val_budget": 256,
            },
            "evaluation": {
                "n_instances": 10,
                "ground_truth": "kernel_shap",
                "threshold": 0.1,
                "budgets": [128],
            },
            "trainer": {"accelerator": "cpu", "progress_bar": False},
        }
        path = folder / f"adult3000_{seed}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        start = time.perf_counter()
        rc = main(["run", str(path), "--out", str(folder / f"run{seed}"), "--overwrite"])
        done.append({"seed": seed, "exit": rc, "seconds": round(time.perf_counter() - start, 1)})
    return {"runs": done, "completed": sum(r["exit"] == 0 for r in done)}


def part_small() -> dict[str, Any]:
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    x, y = load_wine(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(x, y, test_size=48, random_state=0, stratify=y)
    model = RandomForestClassifier(random_state=0).fit(x_train, y_train)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer = simshap.fit(model, x_train, y_train)
    report = explainer.hparams.model_info["accuracy"]
    sv = explainer(x_test)
    game, truth = _truth(explainer, x_test)
    classes = _classes(explainer, x_test)
    out = {
        "train_rows": int(round(len(x_train) * (1 - 0.25))),
        "one_call": _errors(sv.values, truth.values, classes),
        "kernelshap_paired@512": _errors(_kernel(game, 512), truth.values, classes),
        "warned": any("less accurate than KernelSHAP" in str(w.message) for w in caught),
        "recommended_budget": report.get("recommended_budget"),
    }
    k = report.get("recommended_budget")
    if k:
        refined = explainer(x_test, budget=k, generator=torch.Generator().manual_seed(0))
        out[f"one_call+budget@{k}"] = _errors(refined.values, truth.values, classes)
    return out


def part_marginal(data_dir: Path) -> dict[str, Any]:
    from simshap.data.tabular import load_tabular
    from simshap.models.original import EncodedLightGBM, fit_original_model

    data = load_tabular("census", data_dir=data_dir, seed=0)
    model = EncodedLightGBM(fit_original_model(data, seed=0).booster_, data.preprocessor)
    start = time.perf_counter()
    explainer = simshap.fit(model, data.raw_train, game="marginal", background_size=100)
    seconds = time.perf_counter() - start
    rows = data.raw_test.iloc[:50]
    sv = explainer(rows)
    game, truth = _truth(explainer, rows)
    classes = _classes(explainer, rows)
    out = {
        "train_s": round(seconds, 1),
        "simshap": _errors(sv.values, truth.values, classes),
        "kernelshap_paired@512": _errors(_kernel(game, 512), truth.values, classes),
    }
    return out


def part_marginal_exact(data_dir: Path) -> dict[str, Any]:
    """The marginal game's exact truth against shap's, on census (12 features, 4,096 coalitions).

    Both of shap's all-coalition explainers are compared: ``ExactExplainer`` with an
    ``Independent`` masker, and ``KernelExplainer`` with every coalition and ``l1_reg=False``
    (its default, ``"num_features(10)"``, keeps 10 of the 12 features: a different estimate).
    """
    import shap

    from simshap.data.tabular import load_tabular
    from simshap.estimators import exact_shapley
    from simshap.games.rows import RowsGame
    from simshap.models.adapter import ModelAdapter
    from simshap.models.original import EncodedLightGBM, fit_original_model

    data = load_tabular("census", data_dir=data_dir, seed=0)
    model = EncodedLightGBM(fit_original_model(data, seed=0).booster_, data.preprocessor)
    adapter = ModelAdapter(model, data.raw_train.iloc[:64])
    raw = data.preprocessor.raw_array(data.raw_train).astype(np.float64)
    background = raw[np.sort(np.random.default_rng(0).choice(len(raw), 100, replace=False))]
    rows = data.preprocessor.raw_array(data.raw_test.iloc[:10]).astype(np.float64)
    ours = exact_shapley(RowsGame(adapter.on_array, rows, background)).values.numpy()
    out: dict[str, Any] = {"rows": len(rows), "background_rows": len(background)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, l1_reg in (("l1_reg=False", False), ("default l1_reg", "num_features(10)")):
            kernel = shap.KernelExplainer(adapter.on_array, background)
            theirs = np.asarray(
                kernel.shap_values(rows, nsamples=2**12, silent=True, l1_reg=l1_reg)
            )
            if theirs.shape != ours.shape:
                theirs = np.transpose(theirs, (1, 2, 0))
            out[f"kernel_explainer {name}"] = float(np.abs(theirs - ours).max())
        masker = shap.maskers.Independent(background, max_samples=len(background))
        exact = shap.explainers.Exact(adapter.on_array, masker)(rows).values
    out["exact_explainer"] = float(np.abs(exact - ours).max())
    # TreeExplainer's interventional mode on the booster: the log-odds game's exact values, and
    # its probability output against the probability game's exact values
    booster, prep = model.booster_, data.preprocessor
    enc_rows, enc_bg = prep.encode(rows), prep.encode(background)
    for output, raw_score in (("raw", True), ("probability", False)):
        tree = shap.TreeExplainer(
            booster, enc_bg, feature_perturbation="interventional", model_output=output
        ).shap_values(enc_rows, check_additivity=False)
        if raw_score:
            margin = lambda a: booster.predict(prep.encode(a), raw_score=True)[:, None]  # noqa: E731
            want = exact_shapley(RowsGame(margin, rows, background)).values.numpy()[:, :, 0]
        else:
            want = ours[:, :, 1]
        dist = np.sqrt(((np.asarray(tree) - want) ** 2).sum(1))
        out[f"tree_explainer {output}"] = {
            "max_abs": float(np.abs(np.asarray(tree) - want).max()),
            "l2": float(dist.mean()),
            "truth_l2_norm": float(np.sqrt((want**2).sum(1)).mean()),
        }
    out["shap_version"] = shap.__version__
    return out


def _regress(net: Any, x: torch.Tensor, phi: torch.Tensor, epochs: int, scale: float) -> None:
    """Fit ``net`` to exact values: AdamW, one-cycle learning rate, mini-batches of 256."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    batches = len(x) // 256
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=epochs * batches)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(batches):
            idx = perm[i * 256 : (i + 1) * 256]
            loss = (net(x[idx])[:, :, 0] * scale - phi[idx]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()


# (name, thermometer inputs, hidden width, epochs, share of the training rows)
CAPACITY = (
    ("standardized", False, 512, 60, 1.0),
    ("cuts_128", True, 512, 60, 1.0),
    ("cuts_128 200 epochs", True, 512, 200, 1.0),
    ("cuts_128 200 epochs half rows", True, 512, 200, 0.5),
    ("cuts_128 width 1024", True, 1024, 60, 1.0),
)


def part_marginal_inputs(data_dir: Path) -> dict[str, Any]:
    """Can an MLP fit a tree model's marginal values, given them exactly? What limits it?

    The census LightGBM's log-odds game (100 background rows), whose exact values TreeExplainer
    computes (``marginal_exact`` checks it): :class:`MLPExplainerNet` (3 hidden layers) regressed
    on them, on the standardized network inputs alone and with thermometer inputs at
    ``cut_points(x, 128)``, for the schedules, widths and shares of the training rows of
    :data:`CAPACITY`; relative l2 on the training rows it saw and on the test split. No game
    calls: this bounds what the amortized explainer's network can reach, apart from its targets'
    noise. A training error far below the test error means more rows would help; close to it, a
    larger network or a longer schedule.
    """
    import shap

    from simshap.data.tabular import load_tabular
    from simshap.models.explainer_nets import MLPExplainerNet, cut_points
    from simshap.models.original import fit_original_model

    data = load_tabular("census", data_dir=data_dir, seed=0)
    booster, prep = fit_original_model(data, seed=0).booster_, data.preprocessor
    enc_train, enc_test = prep.encode(data.raw_train), prep.encode(data.raw_test)
    rng = np.random.default_rng(0)
    background = enc_train[np.sort(rng.choice(len(enc_train), 100, replace=False))]
    tree = shap.TreeExplainer(
        booster, background, feature_perturbation="interventional", model_output="raw"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phi = {
            k: torch.as_tensor(tree.shap_values(e, check_additivity=False), dtype=torch.float32)
            for k, e in (("train", enc_train), ("test", enc_test))
        }
    x = {"train": torch.as_tensor(data.x_train), "test": torch.as_tensor(data.x_test)}
    scale = float(phi["train"].std())
    d = len(prep.feature_names)
    cuts = cut_points(data.x_train[:, :d], 128)
    out: dict[str, Any] = {"train_rows": len(enc_train), "test_rows": len(enc_test)}

    def rel_l2(net: Any, xs: torch.Tensor, target: torch.Tensor) -> float:
        with torch.no_grad():
            err = (net(xs)[:, :, 0] * scale - target).norm(dim=1)
        return round(float((err / target.norm(dim=1)).mean()), 5)

    for name, thermometer, hidden, epochs, share in CAPACITY:
        start = time.perf_counter()
        rows = int(share * len(x["train"]))
        torch.manual_seed(0)
        net = MLPExplainerNet(
            x["train"].shape[1], d, 1, hidden=hidden, layers=3, cuts=cuts if thermometer else None
        )
        _regress(net, x["train"][:rows], phi["train"][:rows], epochs, scale)
        out[name] = {
            "rel_l2": rel_l2(net, x["test"], phi["test"]),
            "train_rel_l2": rel_l2(net, x["train"][:rows], phi["train"][:rows]),
            "epochs": epochs,
            "hidden": hidden,
            "train_rows": rows,
            "seconds": round(time.perf_counter() - start),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--parts",
        nargs="+",
        default=[
            "readme",
            "regression",
            "regression_seeds",
            "missing",
            "categories",
            "small",
            "marginal",
            "marginal_exact",
            "marginal_inputs",
        ],
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "runs" / "every_model")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report = json.loads(OUT.read_text()) if OUT.is_file() else {}
    report.update(
        {
            "date": datetime.date.today().isoformat(),
            "machine": machine(),
            "command": "python benchmarks/every_model.py " + " ".join(sys.argv[1:]),
        }
    )
    calls = {
        "readme": part_readme,
        "regression": part_regression,
        "regression_seeds": part_regression_seeds,
        "missing": lambda: part_missing(args.data_dir),
        "categories": lambda: part_categories(args.data_dir, args.work),
        "small": part_small,
        "marginal": lambda: part_marginal(args.data_dir),
        "marginal_exact": lambda: part_marginal_exact(args.data_dir),
        "marginal_inputs": lambda: part_marginal_inputs(args.data_dir),
    }
    for part in args.parts:
        print(f"[every_model] {part} ...", flush=True)
        report[part] = calls[part]()
        # parts may be measured in separate runs: each says when, on how many threads, how loaded
        report[part]["measured"] = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "cpu": report["machine"]["cpu"],
        }
        print(json.dumps(report[part], indent=1), flush=True)
        OUT.write_text(json.dumps(report, indent=2))
    write_section(ROOT / "benchmarks" / "RESULTS.md", "## Every model and task", _section(report))


def _section(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "## Every model and task",
        "",
        f"{m['cpu']} ({m['cpus']} cores); last command `{r['command']}`; raw figures in "
        "`benchmarks/results/every_model.json`. Each bullet says when it was measured, on which "
        "CPU (2 cores), on how many threads and at what load average (above 2 means shared).",
        "",
    ]
    if "readme" in r:
        x = r["readme"]
        lines.append(
            f"- README one call (breast_cancer): {x['seconds']} s, relative l2 "
            f"{x['rel_l2']:.3f} against converged KernelSHAP (goal: <= 0.15 in <= 120 s)."
        )
        lines[-1] += _measured(r["readme"])
    if "regression" in r:
        for row in r["regression"]["rows"]:
            lines.append(
                f"- diabetes, {row['model']}: relative l2 SimSHAP "
                f"{row['simshap']['rel_l2']:.3f}, FastSHAP {row['fastshap']['rel_l2']:.3f}, "
                f"paired KernelSHAP@512 {row['kernelshap_paired@512']['rel_l2']:.3f}; "
                f"surrogate R² {row['fidelity']['r2']:.3f} (goal: SimSHAP <= 0.25 and "
                "<= FastSHAP)."
            )
        lines[-1] += _measured(r["regression"])
    if "missing" in r:
        x = r["missing"]
        lines.append(
            f"- Adult with '?' as missing ({x['rows_with_missing']} of 200 explained rows "
            f"hold one), HistGradientBoosting pipeline: l2 {x['l2']:.4f}, relative "
            f"{x['rel_l2']:.3f}; the missing features' mean |attribution| "
            f"{x['mean_abs_attribution_of_missing_features']}; trained in "
            f"{x['train_s']} s."
        )
        lines[-1] += _measured(r["missing"])
    if "categories" in r:
        x = r["categories"]
        lines.append(
            f"- `simshap run` on 3,000-row samples of Adult: {x['completed']} of 8 seeds "
            "completed (goal: 8 of 8)."
        )
        lines[-1] += _measured(r["categories"])
    if "small" in r:
        x = r["small"]
        extra = "".join(f", {k} {v['l2']:.4f}" for k, v in x.items() if k.startswith("one_call+"))
        lines.append(
            f"- wine (~{x['train_rows']} training rows): one call l2 "
            f"{x['one_call']['l2']:.4f}, paired KernelSHAP@512 "
            f"{x['kernelshap_paired@512']['l2']:.4f} (ratio "
            f"{x['one_call']['l2'] / x['kernelshap_paired@512']['l2']:.2f}); warned: "
            f"{x['warned']}, recommended budget {x['recommended_budget']}{extra}."
        )
        lines[-1] += _measured(r["small"])
    if "regression_seeds" in r:
        x = r["regression_seeds"]
        lines.append(
            f"- diabetes, LightGBM, {x['seeds']} explainer seeds: mean relative l2 SimSHAP "
            f"{x['simshap']['mean']:.4f}, FastSHAP {x['fastshap']['mean']:.4f}; SimSHAP better "
            f"on {x['simshap_better_on']} of {x['seeds']}."
        )
        lines[-1] += _measured(r["regression_seeds"])
    if "marginal" in r:
        x = r["marginal"]
        lines.append(
            f"- census, marginal game (100 background rows, no surrogate): SimSHAP l2 "
            f"{x['simshap']['l2']:.4f} against paired KernelSHAP@512's "
            f"{x['kernelshap_paired@512']['l2']:.4f} (goal: <=); trained in {x['train_s']:.0f} s."
        )
        lines[-1] += _measured(r["marginal"])
    if "marginal_exact" in r:
        x = r["marginal_exact"]
        lines.append(
            f"- census, marginal game's exact truth ({x['rows']} rows, {x['background_rows']} "
            f"background rows) against shap {x['shap_version']}: ExactExplainer max |difference| "
            f"{x['exact_explainer']:.1e}, KernelExplainer with all coalitions and l1_reg=False "
            f"{x['kernel_explainer l1_reg=False']:.1e} (goal: 1e-6); KernelExplainer's default "
            f"l1_reg keeps 10 of 12 features: {x['kernel_explainer default l1_reg']:.1e}."
        )
        for output in ("raw", "probability"):
            t = x.get(f"tree_explainer {output}")
            if t:
                lines[-1] += (
                    f" TreeExplainer (interventional, {output} output) against the exact values "
                    f"of that output's game: max |difference| {t['max_abs']:.1e}, l2 {t['l2']:.2g} "
                    f"(the values' own l2 norm {t['truth_l2_norm']:.2g})."
                )
        lines[-1] += _measured(r["marginal_exact"])
    if "marginal_inputs" in r:
        x = r["marginal_inputs"]
        fits = "; ".join(
            f"{k} ({v['hidden']} wide, {v['epochs']} epochs, {v['train_rows']} rows) "
            f"{v['rel_l2']:.3f} (train {v['train_rel_l2']:.3f})"
            for k, v in x.items()
            if isinstance(v, dict) and "rel_l2" in v
        )
        lines.append(
            "- census, can the explainer's MLP fit the marginal values at all? Regressed on the "
            f"log-odds game's exact values (no game calls; `explainer.input_bins` gives the "
            f"thermometer inputs, cuts_128), test relative l2 (on its training rows): {fits}."
        )
        lines[-1] += _measured(r["marginal_inputs"])
    return "\n".join(lines) + "\n"


def _measured(x: dict[str, Any]) -> str:
    m = x.get("measured")
    if not m:
        return ""
    return (
        f" [measured {m['date']}"
        + (f" on {m['cpu']}" if "cpu" in m else "")
        + f", OMP_NUM_THREADS={m['OMP_NUM_THREADS']}, load {m['load_average_1min']}]"
    )


if __name__ == "__main__":
    main()
