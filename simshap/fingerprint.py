"""Content hashes for caches: a cache is reused only when what produced it is unchanged."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["fingerprint"]


def _update(h: Any, obj: Any) -> None:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"tensor{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"array{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    elif isinstance(obj, (bytes, bytearray)):
        h.update(b"bytes%d" % len(obj))
        h.update(obj)
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for key in sorted(obj, key=str):
            h.update(str(key).encode())
            _update(h, obj[key])
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for item in obj:
            _update(h, item)
        h.update(b"]")
    else:
        h.update(json.dumps(obj, sort_keys=True, default=repr).encode())


def fingerprint(*parts: Any) -> str:
    """SHA-256 hex digest of tensors, arrays, modules (their state dicts), mappings and scalars.

    Equal inputs give equal digests across processes; any changed weight, setting or instance
    changes the digest.

    Args:
        *parts: what produced a cached result (weights, estimator settings, inputs).

    Returns:
        64 hex characters.
    """
    h = hashlib.sha256()
    for part in parts:
        _update(h, part)
    return h.hexdigest()
