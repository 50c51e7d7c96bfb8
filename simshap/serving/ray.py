"""Explain a Ray Dataset: ``map_batches`` with an actor that loads the explainer once.

Each actor receives the explainer file's bytes (checked on the driver first), loads them
weights-only and keeps one :class:`~simshap.serving.batch.BatchExplainer`: ONNX Runtime on the
exported graph on CPUs, or the PyTorch module on a GPU when ``num_gpus > 0``. Rows are checked
by the explainer's own preprocessing, as the server checks them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from simshap.errors import UserError
from simshap.serving.batch import BatchExplainer, explainer_bytes

__all__ = ["ExplainActor", "explain_ray"]


class ExplainActor:
    """A Ray Data actor: one loaded explainer, called on pandas batches.

    Args:
        blob: the explainer file's bytes.
        model_blob: the user's model file's bytes and name, for a model's game (trusted).
        options: :class:`~simshap.serving.batch.BatchExplainer` options.
        device: ``"cpu"`` (ONNX Runtime) or ``"cuda"`` (the PyTorch module).
    """

    def __init__(
        self,
        blob: bytes,
        model_blob: tuple[bytes, str] | None,
        options: dict[str, Any],
        device: str = "cpu",
    ) -> None:
        model = None
        if model_blob is not None:
            import tempfile

            from simshap.models.original import load_user_model

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / model_blob[1]
                path.write_bytes(model_blob[0])
                model = load_user_model(path)
        runtime = "torch" if device != "cpu" else "onnx"
        self.explain = BatchExplainer.from_bytes(
            blob, model=model, runtime=runtime, device=device, **options
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:  # noqa: D102
        return self.explain(batch)


def explain_ray(
    dataset: Any,
    explainer_path: str | os.PathLike[str],
    *,
    num_gpus: float = 0,
    concurrency: int = 2,
    batch_size: int = 10_000,
    target: int | str | None = None,
    passthrough: list[str] | None = None,
    on_error: str = "raise",
    model_file: str | os.PathLike[str] | None = None,
) -> Any:
    """Explain every row of a ``ray.data.Dataset``; returns a Dataset of values.

    Args:
        dataset: rows with the explainer's feature columns and the ``passthrough`` columns.
        explainer_path: the explainer file.
        num_gpus: GPUs per actor; above 0 the actors run the PyTorch module on CUDA.
        concurrency: actors, at most (each loads the explainer once); at least one runs.
        batch_size: rows per call.
        target: keep one class (name or index).
        passthrough: columns copied to the output as they are.
        on_error: ``"raise"`` or ``"column"``.
        model_file: the user's model file, for the marginal and baseline games (trusted files
            only).

    Returns:
        A ``ray.data.Dataset`` with the columns of
        :attr:`~simshap.serving.batch.BatchExplainer.columns`.
    """
    for name, value in (("concurrency", concurrency), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    blob = explainer_bytes(explainer_path)
    model_blob = None
    if model_file is not None:
        model_blob = (Path(model_file).read_bytes(), Path(model_file).name)
    options = {"target": target, "passthrough": list(passthrough or []), "on_error": on_error}
    device = "cuda" if num_gpus > 0 else "cpu"
    from simshap.amortized.io import load_explainer
    from simshap.models.original import load_user_model

    model = load_user_model(model_file) if model_file is not None else None
    BatchExplainer(load_explainer(explainer_path, model=model), **options)  # checked once here
    import ray.data

    # at least one actor, up to `concurrency`: a pool that may shrink never waits forever for
    # CPUs a failed job's actors still hold while Ray releases them
    pool = ray.data.ActorPoolStrategy(min_size=1, max_size=concurrency, initial_size=concurrency)
    return dataset.map_batches(
        ExplainActor,
        fn_constructor_kwargs={
            "blob": blob,
            "model_blob": model_blob,
            "options": options,
            "device": device,
        },
        batch_format="pandas",
        batch_size=batch_size,
        compute=pool,
        num_cpus=1,
        num_gpus=num_gpus,
    )
