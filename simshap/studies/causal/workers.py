"""Chunk jobs in worker processes (one thread each by default), or inline for one worker.

Every worker loads the study's data once (the same seeded splits as the main process) and runs
chunk jobs; each job writes its own output atomically and returns a small summary. New jobs stop
being started once the time budget is spent, so a rerun resumes with the missing chunks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

import torch

from simshap.studies.causal.data import StudyData, load_study_data

__all__ = ["load_config_data", "run_jobs"]

Job = Callable[..., dict[str, Any]]
_WORKER: dict[str, Any] = {}


def load_config_data(cfg: Mapping[str, Any]) -> StudyData:
    """The study's data set with the config's splits."""
    return load_study_data(
        cfg["dataset"],
        cfg["n_train"],
        cfg["n_test"],
        cfg["n_explain"],
        cfg["seed"],
        cfg["data_dir"],
        cfg["n_val"],
    )


def _init(cfg: Mapping[str, Any], threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["cfg"], _WORKER["data"] = cfg, load_config_data(cfg)


def _call(job: Job, args: tuple[Any, ...]) -> dict[str, Any]:
    return job(_WORKER["cfg"], _WORKER["data"], *args)


def run_jobs(
    job: Job,
    jobs: Sequence[tuple[Any, ...]],
    cfg: Mapping[str, Any],
    data: StudyData | None,
    on_done: Callable[[dict[str, Any]], None],
    max_seconds: float | None = None,
) -> int:
    """Run ``job(cfg, data, *args)`` for every ``args`` in ``jobs``; returns how many ran.

    Args:
        job: a module-level function (workers import it by name).
        jobs: argument tuples, in order.
        cfg: the study config (``workers``, ``threads``).
        data: the data set for inline runs (loaded when None).
        on_done: called with each job's summary as it finishes.
        max_seconds: start no new job after this many seconds.
    """
    start = time.perf_counter()

    def budget_left() -> bool:
        return max_seconds is None or time.perf_counter() - start < max_seconds

    workers, done_count = int(cfg["workers"]), 0
    if workers == 1 or len(jobs) <= 1:
        for args in jobs:
            if not budget_left():
                break
            if data is None:
                data = load_config_data(cfg)
            on_done(job(cfg, data, *args))
            done_count += 1
        return done_count
    queue = list(jobs)
    running: set[Future] = set()
    with ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_init,
        initargs=(dict(cfg), int(cfg["threads"])),
    ) as pool:
        while queue or running:
            while queue and len(running) < workers and budget_left():
                running.add(pool.submit(_call, job, queue.pop(0)))
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                on_done(fut.result())
                done_count += 1
    return done_count
