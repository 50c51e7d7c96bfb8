"""Shared helpers of the image baselines: input checks, targets, seeding, the superpixel reduction.

Every baseline returns a :class:`~simshap.ShapleyValues` with values ``(N, d, 1)``: the
attribution of each image's explained class (``.target``) on the ``d = h * w`` superpixels
(``.grid = (h, w)``, row-major; ``.as_image()[:, 0]`` gives the ``(N, h, w)`` map).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from simshap.errors import UserError
from simshap.players import Players
from simshap.results import ShapleyValues

__all__ = ["to_superpixels", "baseline_result"]

Model = Callable[[torch.Tensor], torch.Tensor]


def to_superpixels(pixel_attr: torch.Tensor, superpixel_size: int = 2) -> torch.Tensor:
    """Reduce pixel attributions ``(N, C, H, W)`` to ``(N, H / k, W / k)``.

    The channel mean, then the mean over each ``k x k`` superpixel (average pooling).

    Args:
        pixel_attr: ``(N, C, H, W)`` attributions per input pixel and channel.
        superpixel_size: side ``k`` of a superpixel.

    Returns:
        ``(N, H / k, W / k)`` superpixel attributions.
    """
    if pixel_attr.ndim != 4:
        raise UserError(f"pixel attributions must be (N, C, H, W), got {tuple(pixel_attr.shape)}")
    k = superpixel_size
    if pixel_attr.shape[-1] % k or pixel_attr.shape[-2] % k:
        raise UserError(
            f"image size {tuple(pixel_attr.shape[-2:])} is not divisible by superpixel_size={k}"
        )
    return F.avg_pool2d(pixel_attr.mean(dim=1, keepdim=True), k).squeeze(1)


def baseline_result(
    grid_values: torch.Tensor,
    target: torch.Tensor,
    method: str,
    n_evals: int = 0,
    base_values: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    **extras: Any,
) -> ShapleyValues:
    """Package ``(N, h, w)`` superpixel attributions of the target class as ShapleyValues."""
    n, h, w = grid_values.shape
    values = grid_values.reshape(n, h * w, 1)
    if base_values is not None:
        base_values = torch.as_tensor(base_values, dtype=values.dtype).reshape(n, 1)
        base_values = base_values.to(values.device)
    return ShapleyValues(
        values=values,
        base_values=base_values,
        std=None if std is None else std.reshape(n, h * w, 1),
        n_evals=int(n_evals),
        method=method,
        grid=(h, w),
        target=target.detach().cpu().long(),
        extras=dict(extras),
    )


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Switch an ``nn.Module`` to eval mode for the call (and back)."""
    restore = isinstance(model, nn.Module) and model.training
    if restore:
        model.eval()
    try:
        yield
    finally:
        if restore:
            model.train()


def check_images(images: torch.Tensor, superpixel_size: int) -> Players:
    """Validate a float ``(N, C, H, W)`` batch; returns its superpixel players."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(
            f"images must be a float (N, C, H, W) tensor of model inputs, got {got}; "
            "use x[None] for a single image"
        )
    if images.shape[0] == 0:
        raise UserError("images is empty")
    if not torch.isfinite(images).all():
        raise UserError("images contain NaN or infinite values")
    return Players.superpixels(tuple(images.shape[-2:]), superpixel_size)


def resolve_target(
    model: Model, images: torch.Tensor, target: int | torch.Tensor | None, **call: Any
) -> torch.Tensor:
    """``(N,)`` long tensor of classes: given, broadcast, or the model's predictions."""
    n = images.shape[0]
    if target is None:
        with torch.no_grad():
            out = model(images, **call)
        if out.ndim != 2 or out.shape[0] != n:
            raise UserError(f"model must return (N, C) logits, got shape {tuple(out.shape)}")
        return out.argmax(dim=1)
    tgt = torch.as_tensor(target, device=images.device)
    if tgt.dtype.is_floating_point or tgt.dtype == torch.bool:
        raise UserError(f"target must hold integer class indices, got dtype {tgt.dtype}")
    if tgt.ndim == 0:
        tgt = tgt.expand(n)
    if tgt.shape != (n,) or bool((tgt < 0).any()):
        raise UserError(
            f"target must be a non-negative int or an (N,) = ({n},) tensor of classes, got "
            f"{tuple(tgt.shape)}"
        )
    return tgt.long()


def seeded(seed: int | None, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Fork torch's RNG (CPU and the images' CUDA device) and seed it, if a seed is given."""
    if seed is None:
        return contextlib.nullcontext()
    devices = [device] if device.type == "cuda" else []

    @contextlib.contextmanager
    def fork() -> Iterator[None]:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    return fork()


def sample_count(fn: str, budget: int | None, default: int) -> int:
    """A gradient method's passes per image from ``budget=`` (checked), else ``default``."""
    value = budget if budget is not None else default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{fn}: budget must be a positive integer, got {value!r}")
    return value
