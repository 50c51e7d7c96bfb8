"""Shapley values of many rows, chunk by chunk: locally or as Ray tasks, resumable, bitwise equal.

What Shapley labels and a ground truth are computed with. The rows are cut into chunks of
``chunk_rows``; chunk ``i`` has its own seed (:func:`chunk_seed`: the seed and ``i``), runs on
one thread, and (with a ``cache_dir``) is saved as soon as it is done under a key of what
produced it. So a killed computation resumes at the first missing chunk, and the result does
not depend on where a chunk ran: ``engine="ray"`` (Ray tasks on a local Ray, or on the cluster
at ``$RAY_ADDRESS``) equals ``engine="local"`` bitwise.

The game travels to Ray's workers pickled (Ray's cloudpickle, once, through the object store),
as Ray ships any task's arguments: a surrogate's game carries the surrogate's weights, a
model's game the user's model and its rows.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from simshap.errors import UserError
from simshap.files import read_cache, torch_save_atomic
from simshap.results import ShapleyValues

__all__ = ["CHUNK_ROWS", "ENGINES", "chunk_seed", "chunked_shapley", "map_chunks"]

ENGINES = ("local", "ray")
#: rows per chunk unless told otherwise (a chunk is a Ray task and a resumable unit)
CHUNK_ROWS = 64
_STRIDE = 1_000_003


def chunk_seed(seed: int, index: int) -> int:
    """The seed of chunk ``index`` of a computation seeded with ``seed``."""
    return int(seed) + _STRIDE * (int(index) + 1)


def _shapley_chunk(
    index: int,
    game: Any,
    chunk_rows: int,
    method: str,
    budget: int | None,
    threshold: float | None,
    seed: int,
    batch_size: int,
    max_evals: int,
) -> dict[str, torch.Tensor]:
    """Shapley values of the rows of chunk ``index`` (CPU tensors; see the module docstring)."""
    from simshap.estimators.exact import exact_shapley
    from simshap.estimators.kernel import kernel_shap

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic wherever the chunk runs
    try:
        n = game.num_instances
        rows = torch.arange(index * chunk_rows, min(n, (index + 1) * chunk_rows))
        part = game.select(rows)
        if method == "exact":
            est = exact_shapley(part)
        else:
            gen = torch.Generator().manual_seed(chunk_seed(seed, index))
            est = kernel_shap(
                part,
                budget=budget,
                paired=True,
                threshold=threshold,
                batch_size=batch_size,
                generator=gen,
                max_evals=max_evals,
            )
    finally:
        torch.set_num_threads(threads)
    std = est.std if est.std is not None else torch.full_like(est.values, float("nan"))
    return {
        "values": est.values.cpu(),
        "base_values": est.base_values.cpu(),
        "std": std.cpu(),
        "n_evals": torch.tensor(int(est.n_evals)),
    }


def _call(task: Callable[[int], dict[str, Any]], index: int) -> dict[str, Any]:
    return task(index)


def map_chunks(
    task: Callable[[int], dict[str, Any]],
    n_chunks: int,
    engine: str = "local",
    cache_dir: str | Path | None = None,
    key: str | None = None,
    num_cpus: int | None = None,
) -> list[dict[str, Any]]:
    """``task(i)`` for every chunk ``i`` (those cached under ``key`` are read instead).

    Args:
        task: a picklable function of the chunk index returning a dict of tensors.
        n_chunks: the number of chunks.
        engine: ``"local"`` (in this process, in order) or ``"ray"`` (one Ray task per chunk,
            each saved as it arrives).
        cache_dir: where each chunk is saved (``chunk_00000.pt``...); ``None``: nowhere.
        key: what produced the chunks; a saved chunk with another key is recomputed.
        num_cpus: CPUs of the local Ray this starts when none is running and
            ``$RAY_ADDRESS`` is unset (``None``: all).
    """
    if engine not in ENGINES:
        raise UserError(f"engine must be one of {ENGINES}, got {engine!r}")
    folder = Path(cache_dir) if cache_dir is not None else None
    results: list[dict[str, Any] | None] = [None] * n_chunks
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_chunks):
            blob = read_cache(folder / f"chunk_{i:05d}.pt")
            if key is not None and blob.get("key") == key:
                results[i] = blob
    todo = [i for i in range(n_chunks) if results[i] is None]

    def done(i: int, out: dict[str, Any]) -> None:
        if folder is not None:
            torch_save_atomic({**out, "key": key}, folder / f"chunk_{i:05d}.pt")
        results[i] = out

    if engine == "local":
        for i in todo:
            done(i, task(i))
    elif todo:
        import ray

        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS")
            ray.init(
                address=address,
                num_cpus=None if address else num_cpus,
                include_dashboard=False,
                log_to_driver=False,
            )
        remote = ray.remote(num_cpus=1)(_call)
        shared = ray.put(task)  # the game crosses once, not once per chunk
        pending = {remote.remote(shared, i): i for i in todo}
        while pending:  # each chunk is saved as it arrives: a killed run resumes there
            ready, _ = ray.wait(list(pending), num_returns=1)
            done(pending.pop(ready[0]), ray.get(ready[0]))
    return results  # type: ignore[return-value]


def chunked_shapley(
    game: Any,
    method: str,
    *,
    budget: int | None = None,
    threshold: float | None = None,
    seed: int = 0,
    chunk_rows: int = CHUNK_ROWS,
    batch_size: int = 512,
    max_evals: int = 1_000_000,
    engine: str = "local",
    cache_dir: str | Path | None = None,
    key: str | None = None,
    num_cpus: int | None = None,
) -> ShapleyValues:
    """Shapley values of every row of a game, chunk by chunk (see the module docstring).

    Args:
        game: a game honouring the contract, with ``select`` (any built-in game).
        method: ``"exact"`` or ``"kernel_shap"`` (paired).
        budget: KernelSHAP's evaluations per row (∅ and N included), or ``None`` with a
            ``threshold``.
        threshold: KernelSHAP's convergence threshold (Covert & Lee), or ``None``.
        seed: the computation's seed (chunk ``i`` draws from :func:`chunk_seed`).
        chunk_rows: rows per chunk (part of what the result depends on).
        batch_size: coalitions per KernelSHAP round.
        max_evals: KernelSHAP's cap on evaluations per row.
        engine: ``"local"`` or ``"ray"``.
        cache_dir: where chunks are saved as they finish (resumable); ``None``: nowhere.
        key: what produced the chunks (required with ``cache_dir``).
        num_cpus: CPUs of a local Ray started here.

    Returns:
        ShapleyValues (``n_evals``: the most any chunk spent per row).
    """
    if method not in ("exact", "kernel_shap"):
        raise UserError(f"method must be 'exact' or 'kernel_shap', got {method!r}")
    if cache_dir is not None and key is None:
        raise UserError("chunked_shapley: a cache_dir needs the key of what produced it")
    if not callable(getattr(game, "select", None)):
        raise UserError(f"{type(game).__name__} has no select(): it cannot be cut into chunks")
    if int(chunk_rows) < 1:
        raise UserError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    n = game.num_instances
    n_chunks = -(-n // int(chunk_rows))
    task = functools.partial(
        _shapley_chunk,
        game=game,
        chunk_rows=int(chunk_rows),
        method=method,
        budget=budget,
        threshold=threshold,
        seed=seed,
        batch_size=batch_size,
        max_evals=max_evals,
    )
    parts = map_chunks(task, n_chunks, engine, cache_dir, key, num_cpus)
    std = torch.cat([p["std"] for p in parts])
    return ShapleyValues(
        values=torch.cat([p["values"] for p in parts]),
        base_values=torch.cat([p["base_values"] for p in parts]),
        std=None if method == "exact" else std,
        n_evals=max(int(p["n_evals"]) for p in parts),
        method=method,
    )
