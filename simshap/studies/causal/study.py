"""The causal study end to end: config, zoo, explanations per chunk, estimands, outputs.

Everything expensive is stored per chunk under the output folder (``zoo/``, ``explanations/``),
so a rerun with the same config resumes: it trains and explains only what is missing, then
recomputes the (cheap) estimands, ``results.json`` and the figures.
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
from simshap.studies.causal.data import STUDY_DATASETS, load_study_data
from simshap.studies.causal.effects import DEFAULT_BUCKETS, analyze
from simshap.studies.causal.explanations import METHODS, explain_chunk
from simshap.studies.causal.zoo import check_grid, load_zoo, train_zoo

__all__ = ["DEFAULTS", "run_study", "validate_config"]

DEFAULTS: dict[str, Any] = {
    "dataset": "fashion_mnist",
    "data_dir": None,
    "n_train": None,
    "n_test": None,
    "n_explain": 100,
    "n_models": 300,
    "chunk_size": 25,
    "epochs": 3,
    "batch_size": 64,
    "seed": 0,
    "stride": 2,
    "grid": {},
    "explanations": {
        "methods": list(METHODS),
        "smoothgrad_samples": 16,
        "smoothgrad_noise": 0.15,
        "ig_steps": 16,
        "shapley_grid": 4,
        "shapley_samples": 510,
    },
    "analysis": {
        "buckets": [list(b) for b in DEFAULT_BUCKETS],
        "n_bootstrap": 200,
        "ci": 0.95,
    },
}
_INTS = ("n_explain", "n_models", "chunk_size", "epochs", "batch_size", "stride")


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
    for key in ("smoothgrad_samples", "ig_steps", "shapley_grid", "shapley_samples"):
        if not isinstance(ex[key], int) or ex[key] < 1:
            raise UserError(f"explanations.{key} must be a positive integer, got {ex[key]!r}")
    an = cfg["analysis"]
    if not an["buckets"]:
        raise UserError("analysis.buckets is empty; give [lo, hi] percentile pairs, e.g. [[0, 20]]")
    if not 0 < float(an["ci"]) < 1:
        raise UserError(f"analysis.ci must lie in (0, 1), got {an['ci']!r}")
    return cfg


def _explain_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"explanations": cfg["explanations"], "n_explain": cfg["n_explain"], "seed": cfg["seed"]}


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
    data = load_study_data(
        cfg["dataset"],
        cfg["n_train"],
        cfg["n_test"],
        cfg["n_explain"],
        cfg["seed"],
        cfg["data_dir"],
    )
    train_zoo(cfg, data, out / "zoo", max_seconds, log)
    zoo = load_zoo(out / "zoo", cfg["grid"], cfg["stride"], cfg["n_models"])
    ex_dir = out / "explanations"
    ex_dir.mkdir(exist_ok=True)
    settings = json.loads(json.dumps(_explain_settings(cfg)))
    size = cfg["chunk_size"]
    parts = []
    for c in range(math.ceil(len(zoo) / size)):
        ids = list(range(c * size, min((c + 1) * size, len(zoo))))
        path = ex_dir / f"chunk_{c:04d}.pt"
        part = torch.load(path, weights_only=False) if path.is_file() else None
        if part is not None and len(part["probs"]) != len(ids):
            part = None  # the zoo chunk grew since (a larger n_models): explain it again
        if part is not None:
            if part["settings"] != settings:
                raise UserError(
                    f"{path} was computed with other explanation settings; use the same config "
                    "to resume, or another --out (or --overwrite)"
                )
        else:
            t0 = time.perf_counter()
            part = explain_chunk(
                [zoo.model(k) for k in ids],
                data.x_explain,
                cfg["explanations"]["methods"],
                cfg["explanations"],
                cfg["seed"] + 7919 * c,
            )
            part["seconds_per_model"] = (time.perf_counter() - t0) / len(ids)
            part["settings"] = settings
            torch.save(part, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
            log(f"explained chunk {c}: {part['seconds_per_model']:.2f} s/model")
        parts.append(part)
    probs = torch.cat([p["probs"] for p in parts])
    expl = {
        var: {m: torch.cat([p[var][m] for p in parts]) for m in parts[0][var]}
        for var in ("total", "direct")
    }
    sizes = [len(v) for v in cfg["grid"].values()]
    an = cfg["analysis"]
    res = analyze(
        probs,
        expl,
        zoo.codes,
        sizes,
        zoo.accuracy,
        an["buckets"],
        int(an["n_bootstrap"]),
        float(an["ci"]),
        cfg["seed"],
    )
    results = {
        "config": json.loads(json.dumps(cfg)),
        "n_models_trained": len(zoo),
        "n_models_requested": cfg["n_models"],
        "hyperparameters": list(cfg["grid"]),
        "train_seconds_per_model": float(zoo.seconds.mean()),
        "explain_seconds_per_model": sum(p["seconds_per_model"] for p in parts) / len(parts),
        "shapley_game_evaluations": max(int(p["n_evals"]) for p in parts),
        "accuracy": zoo.accuracy.tolist(),
        "codes": zoo.codes.tolist(),
        **{k: v for k, v in res.items() if k != "buckets"},
        "buckets": [
            {k: (_round(v) if k == "ite" else v) for k, v in b.items()} for b in res["buckets"]
        ],
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True))
    from simshap.studies.causal.plots import write_figures

    write_figures(res, out, cfg["grid"])
    return results


def _round(ites: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    return {k: [[float(f"{x:.5g}") for x in row] for row in v.tolist()] for k, v in ites.items()}
