"""The causal study end to end: config, zoo, explanations per chunk, estimands, outputs.

Everything expensive is stored per chunk under the output folder (``zoo/``, ``explanations/``),
each chunk written atomically, so a rerun with the same config resumes: it trains and explains
only what is missing (in ``workers`` processes), then recomputes the estimands, ``results.json``
and the figures. Stored chunks are read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from simshap.errors import UserError
from simshap.runs.config_files import merge_config
from simshap.studies.causal.chunks import MODEL_SEEDS, load_zoo, train_zoo
from simshap.studies.causal.data import STUDY_DATASETS, StudyData
from simshap.studies.causal.effects import DEFAULT_BUCKETS, analyze
from simshap.studies.causal.explanations import METHODS, explain_chunk
from simshap.studies.causal.subset import stratified_subset, subset_members
from simshap.studies.causal.workers import load_config_data, run_jobs
from simshap.studies.causal.zoo import check_grid

__all__ = ["DEFAULTS", "run_study", "validate_config"]

DEFAULTS: dict[str, Any] = {
    "dataset": "fashion_mnist",
    "data_dir": None,
    "n_train": None,
    "n_val": 0,
    "n_test": None,
    "n_explain": 100,
    "n_models": 300,
    "chunk_size": 25,
    "epochs": 3,
    "batch_size": 32,
    "seed": 0,
    "model_seeds": "shared",
    "stride": 2,
    "grid": {},
    "group_size": 8,
    "workers": 1,
    "threads": 1,
    "val_curve": False,
    "explanations": {
        "methods": list(METHODS),
        "smoothgrad_samples": 16,
        "smoothgrad_noise": 0.15,
        "ig_steps": 16,
        "shapley_grid": 4,
        "shapley_samples": 510,
        "group_size": 10,
    },
    "explain_subset": {"per_bucket": None, "seed": 0},  # None: explain every trained model
    "analysis": {
        "buckets": [list(b) for b in DEFAULT_BUCKETS],
        "n_bootstrap": 200,
        "ci": 0.95,
    },
}
_INTS = (
    "n_explain",
    "n_models",
    "chunk_size",
    "epochs",
    "batch_size",
    "stride",
    "group_size",
    "workers",
    "threads",
)


def validate_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a user config over :data:`DEFAULTS` and check every value.

    Raises:
        UserError: unknown keys, an empty or invalid grid, bad sizes, unknown methods, buckets.
    """
    if not isinstance(raw, Mapping):
        raise UserError("the config must be a YAML mapping of keys to values")
    cfg = merge_config(DEFAULTS, dict(raw), replace=("grid",))
    if cfg["dataset"] not in STUDY_DATASETS:
        raise UserError(
            f"dataset {cfg['dataset']!r} is not supported; choose one of "
            f"{', '.join(STUDY_DATASETS)}"
        )
    for key in _INTS:
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise UserError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if not isinstance(cfg["n_val"], int) or cfg["n_val"] < 0:
        raise UserError(f"n_val must be a non-negative integer, got {cfg['n_val']!r}")
    if cfg["model_seeds"] not in MODEL_SEEDS:
        raise UserError(
            f"model_seeds must be one of {', '.join(MODEL_SEEDS)}, got {cfg['model_seeds']!r}"
        )
    if not isinstance(cfg["val_curve"], bool):
        raise UserError(f"val_curve must be true or false, got {cfg['val_curve']!r}")
    if cfg["val_curve"] and cfg["n_val"] < 1:
        raise UserError("val_curve needs a validation split: set n_val (e.g. 10000)")
    if cfg["chunk_size"] < 2:
        raise UserError("chunk_size must be at least 2 (the direct effect permutes within chunks)")
    if cfg["n_models"] % cfg["chunk_size"] == 1:
        raise UserError(
            f"n_models={cfg['n_models']} leaves a last chunk of one model; the direct effect "
            "permutes predictions within a chunk, so change n_models or chunk_size"
        )
    if not isinstance(cfg["grid"], Mapping):
        raise UserError("grid must be a mapping of hyperparameter -> list of values")
    cfg["grid"] = check_grid(cfg["grid"])
    ex = cfg["explanations"]
    bad = [m for m in ex["methods"] if m not in METHODS]
    if bad or not ex["methods"]:
        raise UserError(f"explanations.methods {bad or '[]'} invalid; choose from {list(METHODS)}")
    if "identity" not in ex["methods"]:
        ex["methods"] = ["identity", *ex["methods"]]  # the reference is always computed
    for key in ("smoothgrad_samples", "ig_steps", "shapley_grid", "shapley_samples", "group_size"):
        if not isinstance(ex[key], int) or ex[key] < 1:
            raise UserError(f"explanations.{key} must be a positive integer, got {ex[key]!r}")
    sub = cfg["explain_subset"]
    if sub["per_bucket"] is not None and (
        not isinstance(sub["per_bucket"], int) or sub["per_bucket"] < 2
    ):
        raise UserError(
            f"explain_subset.per_bucket must be null or an integer >= 2, got {sub['per_bucket']!r}"
        )
    if not isinstance(sub["seed"], int):
        raise UserError(f"explain_subset.seed must be an integer, got {sub['seed']!r}")
    an = cfg["analysis"]
    if not an["buckets"]:
        raise UserError("analysis.buckets is empty; give [lo, hi] percentile pairs, e.g. [[0, 20]]")
    if not 0 < float(an["ci"]) < 1:
        raise UserError(f"analysis.ci must lie in (0, 1), got {an['ci']!r}")
    return cfg


def _explain_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"explanations": cfg["explanations"], "n_explain": cfg["n_explain"], "seed": cfg["seed"]}


def _explain_job(
    cfg: Mapping[str, Any], data: StudyData, c: int, out: str, ids: list[int] | None = None
) -> dict[str, Any]:
    """Explain zoo chunk ``c`` (or the models ``ids`` of subset chunk ``c``); write atomically."""
    root = Path(out)
    if ids is None:
        zoo_part = torch.load(root / "zoo" / f"chunk_{c:04d}.pt", weights_only=True)
        params, codes = zoo_part["params"], zoo_part["codes"]
        path = root / "explanations" / f"chunk_{c:04d}.pt"
    else:
        zoo = load_zoo(root / "zoo", cfg["grid"], cfg["stride"])
        params, codes = zoo.group(ids), zoo.codes[ids]
        path = root / "explanations_subset" / f"chunk_{c:04d}.pt"
    grid = cfg["grid"]
    acts = [grid["activation"][int(code[list(grid).index("activation")])] for code in codes]
    t0 = time.perf_counter()
    part = explain_chunk(
        params,
        acts,
        int(cfg["stride"]),
        data.x_explain,
        cfg["explanations"]["methods"],
        cfg["explanations"],
        int(cfg["seed"]),
        int(cfg["seed"]) + 7919 * c,
        int(cfg["explanations"]["group_size"]),
    )
    part["seconds_per_model"] = (time.perf_counter() - t0) / len(acts)
    part["settings"] = json.loads(json.dumps(_explain_settings(cfg)))
    part["ids"] = ids
    tmp = path.with_name(path.name + ".tmp")
    torch.save(part, tmp)
    tmp.replace(path)
    return {"chunk": c, "seconds_per_model": part["seconds_per_model"]}


def explain_zoo(
    cfg: Mapping[str, Any],
    data: StudyData | None,
    out: Path,
    n_models: int,
    log: Callable[[str], None] = print,
    ids: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Explain the missing chunks of the first ``n_models`` models (or of the models ``ids``).

    Subset chunks hold ``chunk_size`` consecutive ids each and live in ``explanations_subset/``;
    every chunk is loaded and returned.

    Raises:
        UserError: a stored chunk was computed with other explanation settings.
    """
    ex_dir = out / ("explanations" if ids is None else "explanations_subset")
    ex_dir.mkdir(exist_ok=True)
    settings = json.loads(json.dumps(_explain_settings(cfg)))
    size = cfg["chunk_size"]
    if ids is None:
        n_chunks = math.ceil(n_models / size)
        groups: list[list[int] | None] = [None] * n_chunks
        counts = [min((c + 1) * size, n_models) - c * size for c in range(n_chunks)]
    else:
        groups = [ids[i : i + size] for i in range(0, len(ids), size)]
        if len(groups) > 1 and len(groups[-1]) < 2:  # the direct effect needs two per chunk
            groups[-2] = [*groups[-2], *groups.pop()]
        n_chunks, counts = len(groups), [len(g) for g in groups]
    todo = []
    for c in range(n_chunks):
        path = ex_dir / f"chunk_{c:04d}.pt"
        part = torch.load(path, weights_only=True) if path.is_file() else None
        if part is None or len(part["probs"]) != counts[c] or part.get("ids") != groups[c]:
            todo.append((c, str(out), groups[c]))  # missing, the zoo chunk grew, other ids
        elif part["settings"] != settings:
            raise UserError(
                f"{path} was computed with other explanation settings; use the same config "
                "to resume, or another --out (or --overwrite)"
            )

    def report(summary: Mapping[str, Any]) -> None:
        log(f"explained chunk {summary['chunk']}: {summary['seconds_per_model']:.2f} s/model")

    run_jobs(_explain_job, todo, cfg, data, report)
    return [torch.load(ex_dir / f"chunk_{c:04d}.pt", weights_only=True) for c in range(n_chunks)]


def run_study(
    cfg: Mapping[str, Any],
    out: Path,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) the zoo, explain, estimate, and write ``results.json`` and figures.

    Args:
        cfg: validated config.
        out: output folder (created; a previous run of the same config is resumed).
        max_seconds: training time budget of this call (the zoo resumes on the next call).
        log: progress printer.

    Returns:
        The results dictionary that was written to ``out/results.json``.
    """
    data = load_config_data(cfg) if int(cfg["workers"]) == 1 else None
    t0 = time.perf_counter()
    trained_now = train_zoo(cfg, data, out / "zoo", max_seconds, log)
    train_wall = time.perf_counter() - t0
    zoo = load_zoo(out / "zoo", cfg["grid"], cfg["stride"], cfg["n_models"])
    an, sub = cfg["analysis"], cfg["explain_subset"]
    ids = None
    if sub["per_bucket"] is not None:
        ids = stratified_subset(zoo.accuracy, an["buckets"], sub["per_bucket"], sub["seed"])
    t0 = time.perf_counter()
    parts = explain_zoo(cfg, data, out, len(zoo), log, ids)
    explain_wall = time.perf_counter() - t0
    probs = torch.cat([p["probs"] for p in parts])
    expl = {
        var: {m: torch.cat([p[var][m] for p in parts]) for m in parts[0][var]}
        for var in ("total", "direct")
    }
    sel = list(range(len(probs))) if ids is None else ids
    sizes = [len(v) for v in cfg["grid"].values()]
    res = analyze(
        probs,
        expl,
        zoo.codes[sel],
        sizes,
        zoo.accuracy[sel],
        an["buckets"],
        int(an["n_bootstrap"]),
        float(an["ci"]),
        cfg["seed"],
        None if ids is None else subset_members(zoo.accuracy, an["buckets"], ids),
    )
    for b in res["buckets"]:  # members as zoo model ids
        b["members"] = [sel[i] for i in b["members"]]
    results = {
        "config": json.loads(json.dumps(cfg)),
        "n_models_trained": len(zoo),
        "n_models_explained": len(sel),
        "explained_models": "all" if ids is None else ids,
        "n_models_requested": cfg["n_models"],
        "hyperparameters": list(cfg["grid"]),
        "train_chunk_seconds": zoo.seconds,
        "train_chunk_cpu_seconds": zoo.cpu_seconds,
        "train_wall_seconds_this_call": train_wall,
        "n_models_trained_this_call": trained_now,
        "explain_wall_seconds_this_call": explain_wall,
        "explain_seconds_per_model": sum(p["seconds_per_model"] for p in parts) / len(parts),
        "shapley_game_evaluations": max(int(p["n_evals"]) for p in parts),
        "accuracy": zoo.accuracy.tolist(),
        "val_accuracy": zoo.val_accuracy.tolist(),
        "codes": zoo.codes.tolist(),
        **{k: v for k, v in res.items() if k != "buckets"},
        "buckets": [
            {k: (_round(v) if k == "ite" else v) for k, v in b.items()} for b in res["buckets"]
        ],
    }
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1, allow_nan=True))
    tmp.replace(out / "results.json")
    from simshap.studies.causal.plots import write_figures

    write_figures(res, out, cfg["grid"])
    return results


def _round(ites: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {k: [[float(f"{x:.5g}") for x in row] for row in v.tolist()] for k, v in ites.items()}
