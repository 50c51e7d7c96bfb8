"""The zoo on disk: chunks of models trained in batches, resumable, loaded without pickles.

The zoo is stored in chunks (``chunk_0000.pt``, ...) of ``chunk_size`` consecutive models, each
written atomically (temp file + rename) once complete. :func:`train_zoo` trains only the chunks
that are missing, in ``workers`` processes of one thread each, so an interrupted run resumes
where it stopped and a finished one trains nothing. A chunk holds tensors, lists and numbers only
and is read with ``torch.load(..., weights_only=True)``.

Model k's hyperparameters come from :func:`~simshap.studies.causal.zoo.sample_hyperparameters` and
its seed from :func:`model_seed`: with ``model_seeds: shared`` (the paper's setting: "the random
seed ... is fixed throughout") every model has the zoo's seed, so a model is a deterministic
function of its hyperparameters; with ``per_model`` each index has its own seed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from simshap.errors import UserError
from simshap.studies.causal.data import StudyData
from simshap.studies.causal.grouped import unstack_state_dict
from simshap.studies.causal.trainer import TrainSettings, grouped_accuracy, train_models
from simshap.studies.causal.workers import run_jobs
from simshap.studies.causal.zoo import SmallCNN, sample_hyperparameters

__all__ = [
    "MODEL_SEEDS",
    "Zoo",
    "load_zoo",
    "model_seed",
    "train_chunk",
    "train_zoo",
    "zoo_hparams",
]

MODEL_SEEDS: tuple[str, ...] = ("shared", "per_model")
_FORMAT = 2
_MANIFEST_KEYS = (
    "dataset",
    "n_train",
    "n_val",
    "n_test",
    "epochs",
    "batch_size",
    "seed",
    "model_seeds",
    "stride",
    "grid",
    "val_curve",
)


def model_seed(cfg: Mapping[str, Any], index: int) -> int:
    """Training seed of model ``index`` (``cfg["model_seeds"]``: shared or per model)."""
    if cfg["model_seeds"] == "shared":
        return int(cfg["seed"])
    return int(cfg["seed"]) * 1_000_003 + int(index) + 1


def zoo_hparams(
    cfg: Mapping[str, Any], indices: Sequence[int]
) -> tuple[list[list[int]], list[dict[str, Any]]]:
    """Grid positions and hyperparameter values of the given models."""
    codes, hps = [], []
    for k in indices:
        pos = sample_hyperparameters(cfg["grid"], k, int(cfg["seed"]))
        codes.append(list(pos.values()))
        hps.append({name: cfg["grid"][name][i] for name, i in pos.items()})
    return codes, hps


def _settings(cfg: Mapping[str, Any]) -> TrainSettings:
    return TrainSettings(int(cfg["epochs"]), int(cfg["batch_size"]), int(cfg["stride"]))


def train_chunk(cfg: Mapping[str, Any], data: StudyData, indices: Sequence[int]) -> dict[str, Any]:
    """Train models ``indices`` in groups and score them; the chunk's stored payload."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    codes, hps = zoo_hparams(cfg, indices)
    seeds = [model_seed(cfg, k) for k in indices]
    val = (data.x_val, data.y_val) if cfg["val_curve"] and len(data.x_val) else None
    res = train_models(
        hps, seeds, data.x_train, data.y_train, _settings(cfg), int(cfg["group_size"]), val
    )
    acts = [hp["activation"] for hp in hps]
    acc = grouped_accuracy(res.params, acts, int(cfg["stride"]), data.x_test, data.y_test)
    val_acc = (
        grouped_accuracy(res.params, acts, int(cfg["stride"]), data.x_val, data.y_val)
        if len(data.x_val)
        else torch.full((len(indices),), float("nan"), dtype=torch.float64)
    )
    return {
        "format": _FORMAT,
        "index": list(indices),
        "seeds": seeds,
        "codes": torch.tensor(codes, dtype=torch.long),
        "accuracy": acc,
        "val_accuracy": val_acc,
        "val_curve": res.val_curve,
        "train_seconds": res.seconds,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
        "params": res.params,
    }


def _save(payload: Mapping[str, Any], target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    torch.save(dict(payload), tmp)
    tmp.replace(target)


def _load_chunk(path: Path) -> dict[str, Any]:
    part = torch.load(path, weights_only=True)
    if not isinstance(part, dict) or part.get("format") != _FORMAT:
        raise UserError(
            f"{path} is not a zoo chunk of this version; train the zoo afresh "
            "(another --out, or --overwrite)"
        )
    return part


def _train_job(
    cfg: Mapping[str, Any], data: StudyData, indices: list[int], target: str
) -> dict[str, Any]:
    """One chunk: train, write atomically, return a summary."""
    part = train_chunk(cfg, data, indices)
    _save(part, Path(target))
    return {"index": indices, "accuracy": part["accuracy"], "seconds": part["seconds"]}


def _check_manifest(cfg: Mapping[str, Any], zoo_dir: Path) -> None:
    manifest = json.loads(json.dumps({k: cfg[k] for k in _MANIFEST_KEYS} | {"format": _FORMAT}))
    path = zoo_dir / "zoo.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != manifest:
            raise UserError(
                f"{zoo_dir} holds a zoo trained with another config ({old}); use the same config "
                "to resume, or another --out (or --overwrite) to start afresh"
            )
    else:
        tmp = path.with_name("zoo.json.tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(path)


def train_zoo(
    cfg: Mapping[str, Any],
    data: StudyData | None,
    zoo_dir: Path,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Train the missing chunks of a zoo of ``cfg["n_models"]`` models into ``zoo_dir``.

    Args:
        cfg: validated study config (``workers`` > 1 trains chunks in that many processes of
            ``threads`` threads each; every worker loads the data itself).
        data: the data set for ``workers: 1`` (None: loaded from the config when needed).
        zoo_dir: folder of the chunks; its ``zoo.json`` must match ``cfg`` when it exists.
        max_seconds: start no new chunk once this much time has passed (0: train nothing).
        log: progress printer.

    Returns:
        Number of models trained by this call.

    Raises:
        UserError: ``zoo_dir`` holds a zoo trained with a different config.
    """
    zoo_dir.mkdir(parents=True, exist_ok=True)
    _check_manifest(cfg, zoo_dir)
    n_models, size = int(cfg["n_models"]), int(cfg["chunk_size"])
    todo = []
    for c in range(math.ceil(n_models / size)):
        indices = list(range(c * size, min((c + 1) * size, n_models)))
        target = zoo_dir / f"chunk_{c:04d}.pt"
        if target.is_file() and _load_chunk(target)["index"] == indices:
            continue
        todo.append((indices, target))
    start, trained = time.perf_counter(), 0

    def report(summary: Mapping[str, Any]) -> None:
        nonlocal trained
        idx = summary["index"]
        trained += len(idx)
        log(
            f"zoo chunk {idx[0] // size}: models {idx[0]}-{idx[-1]}, mean acc "
            f"{float(summary['accuracy'].mean()):.3f}, {summary['seconds'] / len(idx):.2f} s/model "
            f"({time.perf_counter() - start:.0f} s elapsed)"
        )

    run_jobs(_train_job, [(i, str(t)) for i, t in todo], cfg, data, report, max_seconds)
    if trained < sum(len(i) for i, _ in todo):
        log(f"time budget reached after {trained} new models; rerun to resume")
    return trained


class Zoo:
    """A loaded zoo (the complete chunks, in model order).

    Attributes:
        grid: the hyperparameter grid.
        codes: ``(n_models, n_hparams)`` grid positions (columns in ``grid`` order).
        accuracy: ``(n_models,)`` test accuracies.
        val_accuracy: ``(n_models,)`` validation accuracies (NaN without a validation split).
        val_curve: ``(epochs, n_models)`` validation accuracy after each epoch, or None.
        params: stacked parameters ``{key: (n_models, ...)}``.
        seconds: wall seconds each chunk took (training and scoring), in chunk order.
        cpu_seconds: CPU seconds of the process that trained each chunk (the cost on a core of
            its own, whatever else ran on the machine).
        stride: convolution stride.
    """

    def __init__(
        self, grid: dict[str, list[Any]], parts: Sequence[Mapping[str, Any]], stride: int
    ) -> None:
        self.grid, self.stride = grid, stride
        self.codes = torch.cat([p["codes"] for p in parts])
        self.accuracy = torch.cat([p["accuracy"] for p in parts])
        self.val_accuracy = torch.cat([p["val_accuracy"] for p in parts])
        curves = [p["val_curve"] for p in parts]
        self.val_curve = None if any(c is None for c in curves) else torch.cat(curves, dim=1)
        self.params = {k: torch.cat([p["params"][k] for p in parts]) for k in parts[0]["params"]}
        self.seconds = [float(p["seconds"]) for p in parts]
        self.cpu_seconds = [float(p["cpu_seconds"]) for p in parts]

    def __len__(self) -> int:
        return len(self.codes)

    def hparams(self, k: int) -> dict[str, Any]:
        """Hyperparameter values of model ``k``."""
        pairs = zip(self.grid, self.codes[k], strict=True)
        return {name: self.grid[name][int(c)] for name, c in pairs}

    def activations(self, ids: Sequence[int]) -> list[str]:
        """Activation name of each model in ``ids``."""
        return [self.hparams(k)["activation"] for k in ids]

    def group(self, ids: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stacked parameters of the models ``ids``."""
        sel = torch.as_tensor(list(ids), dtype=torch.long)
        return {k: v[sel] for k, v in self.params.items()}

    def model(self, k: int) -> SmallCNN:
        """Model ``k`` as a ``SmallCNN`` in eval mode."""
        hp = self.hparams(k)
        net = SmallCNN(hp["activation"], float(hp["dropout"]), self.stride)
        net.load_state_dict(unstack_state_dict(self.params, k))
        return net.eval()


def load_zoo(
    zoo_dir: Path, grid: dict[str, list[Any]], stride: int, n_models: int | None = None
) -> Zoo:
    """Load the complete chunks of a zoo, in model order (at most ``n_models`` models).

    Raises:
        UserError: the folder holds no trained models, or its chunks leave a gap.
    """
    parts = [_load_chunk(p) for p in sorted(zoo_dir.glob("chunk_*.pt"))]
    if not parts:
        raise UserError(f"{zoo_dir} holds no trained models; train the zoo first")
    index = [k for p in parts for k in p["index"]]
    keep = len(index) if n_models is None else min(n_models, len(index))
    if index[:keep] != list(range(keep)):
        raise UserError(f"{zoo_dir}: chunks are not contiguous; rerun the study to fill the gaps")
    zoo = Zoo(grid, parts, stride)
    if keep < len(zoo):
        zoo.codes, zoo.accuracy = zoo.codes[:keep], zoo.accuracy[:keep]
        zoo.val_accuracy = zoo.val_accuracy[:keep]
        zoo.val_curve = None if zoo.val_curve is None else zoo.val_curve[:, :keep]
        zoo.params = {k: v[:keep] for k, v in zoo.params.items()}
    return zoo
