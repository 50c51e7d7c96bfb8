"""Wall-clock timing that waits for the GPU (seconds per instance)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["timed", "seconds_per_instance"]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``fn`` once; returns (its result, seconds), synchronising CUDA on both ends."""
    _sync()
    start = time.perf_counter()
    out = fn()
    _sync()
    return out, time.perf_counter() - start


def seconds_per_instance(
    fn: Callable[[], Any], n_instances: int, repeats: int = 3, warmup: int = 1
) -> float:
    """Best-of-``repeats`` wall time of ``fn`` (which explains ``n_instances``) per instance."""
    for _ in range(warmup):
        fn()
    best = min(timed(fn)[1] for _ in range(max(1, repeats)))
    return best / max(1, n_instances)
