"""The ParaACE experiments: detection on F1–F10 and compression by cross-validation.

Both the ``simshap interactions`` commands and ``benchmarks/paraace.py`` run these functions;
their settings come from one validated config (:func:`validate_config`).
"""

from __future__ import annotations

import copy
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import KFold

from simshap.errors import UserError
from simshap.runs.config_files import merge_config
from simshap.studies.paraace.baselines import exact_interaction_scores, nid_scores
from simshap.studies.paraace.detect import all_pairs, detect_interactions, naive_interactions
from simshap.studies.paraace.higher_order import detect_higher_order
from simshap.studies.paraace.paraace import (
    ParaACE,
    count_parameters,
    teacher_mlp,
    teacher_num_parameters,
)
from simshap.studies.paraace.synthetic import FUNCTIONS, pair_roc_auc, synthetic_dataset
from simshap.studies.paraace.training import fit_regressor, nrmse

__all__ = [
    "ParaACEConfig",
    "load_dataset",
    "run_compression",
    "run_detection",
    "run_detections",
    "validate_config",
]


@dataclass
class ParaACEConfig:
    """Settings of a detection or compression run (keys of ``configs/paraace_*.yaml``)."""

    datasets: list[str] = field(default_factory=lambda: list(FUNCTIONS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    n_train: int = 10_000  # rows for the detection teacher (synthetic data)
    n_compress: int = 1_000  # rows of the compression experiment (synthetic data)
    folds: int = 5
    run_folds: int | None = None  # run only the first folds of the split (None: all)
    first_fold: int = 0  # skip the folds before this one (to add folds to an earlier run)
    teacher_hidden: list[int] = field(default_factory=lambda: [256, 128, 64, 32])
    teacher_epochs: int = 60
    teacher_lr_schedule: str = "constant"  # or "cosine" (to 0 over teacher_epochs)
    teacher_patience: int | None = None  # detection teacher's patience (None: patience)
    accelerator: str = "cpu"  # "gpu": train and query the detection teacher on CUDA
    compress_teacher_hidden: list[int] = field(default_factory=lambda: [2048, 820, 32])
    compress_teacher_epochs: int = 300
    paraace_epochs: int = 200  # epochs of paraace_passes data passes each
    paraace_passes: int = 5
    paraace_patience: int = 10
    patience: int = 30
    val_fraction: float = 0.2
    lr: float = 1e-3
    batch_size: int = 500
    k: int = 20
    h: float = 0.8
    m: int = 100
    n_init: int = 3
    sigma: str | float = "init_range"
    fixup: bool = True
    naive: bool = True
    exact_index: str = "STII"
    exact_rows: int = 100
    nid: bool = True
    triples: int = 5  # k(3) of Algorithm 2 (0: skip)
    # ablation: also run UCB with δ = 2/sqrt(n), i.e. width sqrt(σ² log(n) / ℓ), the width the
    # authors' released code uses instead of the paper's δ = 2/(n³m)
    code_width_ablation: bool = False
    # ablation: also run UCB with the single σ = max_r σ̂_r of the initial pulls (Eq. 2's σ)
    sigma_max_ablation: bool = False
    # ablation: also run UCB with σ_r re-estimated after every pull (half the running range)
    sigma_range_ablation: bool = False


def validate_config(raw: dict[str, Any]) -> ParaACEConfig:
    """A :class:`ParaACEConfig` from a YAML mapping; unknown keys and bad values raise."""
    if not isinstance(raw, dict):
        raise UserError("the config must be a YAML mapping of keys to values")
    merge_config({f.name: None for f in fields(ParaACEConfig)}, raw)  # the one strict key check
    cfg = ParaACEConfig(**raw)
    for name in cfg.datasets:
        if name not in FUNCTIONS and name != "diabetes":
            raise UserError(
                f"unknown dataset {name!r}; choose from {list(FUNCTIONS)} or 'diabetes'"
            )
    if not cfg.seeds:
        raise UserError("seeds must list at least one seed")
    if cfg.h <= 0:
        raise UserError(f"h must be positive (paper: 0.6-0.9), got {cfg.h}")
    if cfg.k < 1 or cfg.m < cfg.n_init or cfg.folds < 2:
        raise UserError("k >= 1, m >= n_init and folds >= 2 are required")
    if cfg.teacher_lr_schedule not in ("constant", "cosine"):
        raise UserError(
            f"teacher_lr_schedule must be 'constant' or 'cosine', got {cfg.teacher_lr_schedule!r}"
        )
    if cfg.accelerator not in ("cpu", "gpu"):
        raise UserError(f"accelerator must be 'cpu' or 'gpu', got {cfg.accelerator!r}")
    if cfg.exact_index not in ("STII", "FSII"):
        raise UserError(f"exact_index must be 'STII' or 'FSII', got {cfg.exact_index!r}")
    return cfg


def load_dataset(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a synthetic function (n rows) or scikit-learn's embedded diabetes."""
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        data = load_diabetes()
        return np.asarray(data.data, dtype=np.float64), np.asarray(data.target, np.float64)
    return synthetic_dataset(name, n, seed)


def _teacher(
    cfg: ParaACEConfig,
    X: np.ndarray,
    y: np.ndarray,
    hidden: list[int],
    epochs: int,
    seed: int,
    detection: bool = False,
):
    torch.manual_seed(seed)
    net = teacher_mlp(X.shape[1], hidden)
    if not detection:  # the compression teacher keeps its own settings
        return fit_regressor(
            net, X, y, cfg.val_fraction, epochs, cfg.patience, cfg.batch_size, cfg.lr, seed
        )
    patience = cfg.patience if cfg.teacher_patience is None else cfg.teacher_patience
    return fit_regressor(
        net,
        X,
        y,
        cfg.val_fraction,
        epochs,
        patience,
        cfg.batch_size,
        cfg.lr,
        seed,
        lr_schedule=cfg.teacher_lr_schedule,
        accelerator=cfg.accelerator,
    )


def run_detection(cfg: ParaACEConfig, name: str, seed: int) -> dict[str, Any]:
    """Teacher on ``n_train`` rows, then the UCB detector and the baselines on it.

    Returns:
        A JSON-ready record: AUCs (synthetic data only), pulls, times, scores, triples.
    """
    X, y = load_dataset(name, cfg.n_train, seed)
    fit = _teacher(cfg, X, y, cfg.teacher_hidden, cfg.teacher_epochs, seed, detection=True)
    model = fit.model
    pairs = all_pairs(X.shape[1])
    k = min(cfg.k, len(pairs))
    det = detect_interactions(model, X, k, cfg.h, cfg.m, seed, cfg.n_init, cfg.sigma)
    rec: dict[str, Any] = {
        "dataset": name,
        "seed": seed,
        "teacher_params": teacher_num_parameters(X.shape[1], cfg.teacher_hidden),
        "teacher_seconds": fit.seconds,
        "teacher_val_mse": fit.val_mse,
        "teacher_best_epoch": fit.best_epoch,
        "ucb": det.to_dict(),
    }
    scores = {"ucb": det.scores}
    if cfg.code_width_ablation:
        wide = detect_interactions(
            model, X, k, cfg.h, cfg.m, seed, cfg.n_init, cfg.sigma, delta=2.0 / np.sqrt(len(pairs))
        )
        rec["ucb_code_width"] = wide.to_dict()
        scores["ucb_code_width"] = wide.scores
    if cfg.sigma_max_ablation:
        single = detect_interactions(model, X, k, cfg.h, cfg.m, seed, cfg.n_init, "max")
        rec["ucb_sigma_max"] = single.to_dict()
        scores["ucb_sigma_max"] = single.scores
    if cfg.sigma_range_ablation:
        running = detect_interactions(model, X, k, cfg.h, cfg.m, seed, cfg.n_init, "range")
        rec["ucb_sigma_range"] = running.to_dict()
        scores["ucb_sigma_range"] = running.scores
    if cfg.naive:
        naive = naive_interactions(model, X, k, cfg.h, cfg.m, seed)
        rec["naive"] = naive.to_dict()
        scores["naive"] = naive.scores
    if cfg.exact_rows > 0:
        rows = X[np.random.default_rng(seed).choice(len(X), cfg.exact_rows, replace=False)]
        exact, secs = exact_interaction_scores(model, X, rows, cfg.exact_index)
        rec["exact"] = {
            "index": cfg.exact_index,
            "rows": cfg.exact_rows,
            "seconds": secs,
            "scores": exact.tolist(),
        }
        scores["exact"] = exact
    if cfg.nid:
        start = time.perf_counter()
        nid = nid_scores(_cpu_copy(model.net) if cfg.accelerator == "gpu" else model.net)
        rec["nid"] = {"seconds": time.perf_counter() - start, "scores": nid.tolist()}
        scores["nid"] = nid
    if cfg.triples > 0:
        higher = detect_higher_order(
            model, X, det.top_k, cfg.triples, 3, cfg.h, cfg.m, seed, cfg.n_init, cfg.sigma
        )
        rec["triples"] = [r.to_dict() for r in higher]
    if name in FUNCTIONS:
        rec["auc"] = {key: pair_roc_auc(name, pairs, s) for key, s in scores.items()}
    return rec


def _cpu_copy(net: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(net).cpu()


def _random_pairs(p: int, k: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    pairs = all_pairs(p)
    return [pairs[i] for i in rng.choice(len(pairs), size=k, replace=False)]


def run_compression(cfg: ParaACEConfig, name: str, seed: int) -> dict[str, Any]:
    """K-fold NRMSE of the teacher, ParaACE (detected pairs) and ParaACE (random pairs).

    In each fold the teacher and both students train on the training folds (model selection on
    a validation split of them) and are scored on the held-out fold.
    """
    X, y = load_dataset(name, cfg.n_compress, seed)
    p = X.shape[1]
    k = min(cfg.k, p * (p - 1) // 2)
    splits = list(KFold(cfg.folds, shuffle=True, random_state=seed).split(X))
    splits = splits[: cfg.run_folds] if cfg.run_folds else splits
    rng = np.random.default_rng(seed)
    for _ in range(cfg.first_fold):  # the skipped folds' random pairs, as a full run draws them
        _random_pairs(p, k, rng)
    folds = []
    for f, (train, test) in enumerate(splits[cfg.first_fold :], start=cfg.first_fold):
        teacher = _teacher(
            cfg,
            X[train],
            y[train],
            cfg.compress_teacher_hidden,
            cfg.compress_teacher_epochs,
            seed + f,
        )
        det = detect_interactions(
            teacher.model, X[train], k, cfg.h, cfg.m, seed + f, cfg.n_init, cfg.sigma
        )
        x_test = torch.as_tensor(X[test], dtype=torch.float32)

        def predict(model: torch.nn.Module, x_test: torch.Tensor = x_test) -> np.ndarray:
            with torch.no_grad():
                return model(x_test).squeeze(-1).numpy()

        rec: dict[str, Any] = {
            "fold": f,
            "teacher_nrmse": nrmse(y[test], predict(teacher.model)),
            "teacher_params": count_parameters(teacher.model),
            "teacher_seconds": teacher.seconds,
            "teacher_epochs": teacher.epochs,
            "detected_pairs": [list(pr) for pr in det.top_k],
            "pulls": det.pulls,
            "naive_pulls": det.naive_pulls,
        }
        for label, pairs in (("paraace", det.top_k), ("random", _random_pairs(p, k, rng))):
            torch.manual_seed(seed + f)
            student = ParaACE(p, pairs, fixup=cfg.fixup)
            fit = fit_regressor(
                student,
                X[train],
                y[train],
                cfg.val_fraction,
                cfg.paraace_epochs,
                cfg.paraace_patience,
                cfg.batch_size,
                cfg.lr,
                seed + f,
                cfg.paraace_passes,
            )
            rec[f"{label}_nrmse"] = nrmse(y[test], predict(fit.model))
            rec[f"{label}_params"] = count_parameters(student)
            rec[f"{label}_seconds"] = fit.seconds
            rec[f"{label}_epochs"] = fit.epochs
        rec["compression_ratio"] = rec["teacher_params"] / rec["paraace_params"]
        folds.append(rec)
    summary = {
        key: float(np.mean([r[key] for r in folds]))
        for key in ("teacher_nrmse", "paraace_nrmse", "random_nrmse", "compression_ratio")
    }
    return {
        "dataset": name,
        "seed": seed,
        "n": len(X),
        "folds": folds,
        **summary,
        "config": {k_: v for k_, v in asdict(cfg).items() if k_ != "datasets"},
    }


def _worker_init() -> None:
    torch.set_num_threads(1)


def run_detections(
    cfg: ParaACEConfig,
    names: list[str],
    jobs: int = 1,
    done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """:func:`run_detection` for every (data set, seed), in ``jobs`` spawned processes if > 1.

    Args:
        cfg: the settings (``cfg.seeds`` gives the seeds).
        names: data sets.
        jobs: parallel processes (spawned, so each may use CUDA).
        done: called with each record as it finishes (in finishing order).

    Returns:
        The records in (data set, seed) order.
    """
    tasks = [(name, seed) for name in names for seed in cfg.seeds]
    if jobs <= 1:
        out = []
        for name, seed in tasks:
            out.append(run_detection(cfg, name, seed))
            if done:
                done(out[-1])
        return out
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
        futures = [pool.submit(run_detection, cfg, name, seed) for name, seed in tasks]
        for fut in as_completed(futures):
            if done:
                done(fut.result())
    return [fut.result() for fut in futures]
