"""Training loaders of a run's explainers: rows with indices, rows with cached labels."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.data import DataLoader

from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.labels import LabelRegression
from simshap.amortized.training import is_rank_zero
from simshap.errors import UserError
from simshap.files import read_cache, torch_save_atomic

__all__ = ["labelled_loader", "module_loader"]


def module_loader(module: AmortizedExplainer, train: DataLoader) -> DataLoader:
    """The training loader rebuilt from ``module.training_dataset`` for a table of rows.

    SimSHAP adds row indices for its target means. Other loaders (augmented images) are
    kept as they are.
    """
    tensors = getattr(train.dataset, "tensors", None)
    if tensors is None or len(tensors) not in (1, 2):
        return train
    return DataLoader(
        module.training_dataset(tensors[0]), batch_size=train.batch_size, sampler=train.sampler
    )


def labelled_loader(
    self: Any, module: LabelRegression, train: DataLoader
) -> tuple[DataLoader, dict[str, Any]]:
    """Training rows of a run with their labels (computed once, cached in the run folder).

    Returns the loader and ``{"label_s", "label_evals_per_row", "label_rows"}``.
    """
    from torch.utils.data import TensorDataset

    from simshap.amortized.training import EpochSampler
    from simshap.fingerprint import fingerprint

    tensors = getattr(train.dataset, "tensors", None)
    if tensors is None or len(tensors) not in (1, 2) or self.modality != "tabular":
        raise UserError(
            "the 'labels' explainer needs a fixed table of training rows "
            "(tabular runs); image runs augment their inputs"
        )
    e = self.config["explainer"]
    x = tensors[0]
    rows = len(x) if e["label_rows"] is None else int(e["label_rows"])
    if rows < 1:
        raise UserError(f"explainer.label_rows must be >= 1 or null, got {e['label_rows']!r}")
    x = x[:rows]
    cache = self.path("label_cache.pt")
    what = module.surrogate.net if module.surrogate is not None else self.stage_digest("model")
    key = fingerprint(
        what,
        {
            "budget": e["label_budget"],
            "seed": self.seed,
            "game": self.game_name,
            "chunks": "v1",
        },
        x,
    )
    start = time.perf_counter()
    blob = read_cache(cache)
    if blob.get("key") == key:
        labels, evals = blob["labels"], int(blob["evals"])
        module.base_value.copy_(blob["base_value"])
        seconds = float(blob["seconds"])
    else:
        labels, evals = module.compute_labels(
            x,
            seed=self.seed,
            engine=e["label_engine"],
            cache_dir=self.path("label_chunks"),
            key=key,
        )
        seconds = time.perf_counter() - start
        if is_rank_zero():
            torch_save_atomic(
                {
                    "labels": labels,
                    "evals": evals,
                    "key": key,
                    "seconds": seconds,
                    "base_value": module.base_value.cpu(),
                },
                cache,
            )
    loader = DataLoader(
        TensorDataset(x, labels, torch.arange(rows)),
        batch_size=e["batch_size"],
        sampler=EpochSampler(rows, self.seed),
    )
    return loader, {"label_s": seconds, "label_evals_per_row": evals, "label_rows": rows}
