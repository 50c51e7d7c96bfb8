"""Image attribution baselines (captum, shap and our KernelSHAP), reduced to the superpixel grid.

Every method has the same signature, ``method(model, images, target=None, *, budget=None,
**options)``, and returns a :class:`~simshap.ShapleyValues` with values ``(N, d, 1)``: each
image's explained class (``.target``) on the ``d = (H / k) (W / k)`` superpixels of side ``k``
(``.grid``; ``.as_image()[:, 0]`` is the ``(N, h, w)`` map, ``(N, 16, 16)`` for CIFAR). Pixel
attributions are averaged over channels and then over each ``k x k`` superpixel.
:func:`explain_baseline` dispatches by name.

``images`` are model inputs (already normalized, so 0 is the data mean); ``target`` is ``None``
(the model's predicted class), an int, or an ``(N,)`` integer tensor. Models in training mode
are switched to eval mode for the call (and back), so BatchNorm uses its running statistics.

The implementations live in :mod:`simshap.evaluation.baselines.captum` and
:mod:`simshap.evaluation.baselines.shap`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from simshap.errors import UserError
from simshap.evaluation.baselines.captum import gradcam, integrated_gradients, smoothgrad
from simshap.evaluation.baselines.common import (
    baseline_result,
    check_images,
    resolve_target,
    to_superpixels,
)
from simshap.evaluation.baselines.shap import deepshap, kernelshap, kernelshap_surrogate
from simshap.results import ShapleyValues

__all__ = [
    "BASELINES",
    "random_attribution",
    "explain_baseline",
    "integrated_gradients",
    "smoothgrad",
    "gradcam",
    "kernelshap",
    "kernelshap_surrogate",
    "deepshap",
    "to_superpixels",
]


def random_attribution(
    model: Any,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    budget: int | None = None,
    superpixel_size: int = 2,
    generator: torch.Generator | None = None,
) -> ShapleyValues:
    """Standard-normal attributions on the superpixel grid: the floor every method must beat.

    Args:
        model: the classifier (called only when ``target`` is ``None``, for its prediction).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        budget: must be ``None`` or 0: random attributions evaluate nothing.
        superpixel_size: side of a superpixel.
        generator: optional ``torch.Generator`` (CPU) for the draw.
    """
    check_images(images, superpixel_size)
    if budget not in (None, 0):
        raise UserError(f"random attributions take no budget (0 evaluations), got {budget!r}")
    tgt = resolve_target(model, images, target)
    h, w = images.shape[-2] // superpixel_size, images.shape[-1] // superpixel_size
    values = torch.randn(images.shape[0], h, w, generator=generator)
    return baseline_result(values.to(images.device), tgt, "random", n_evals=0, name="random")


BASELINES: dict[str, Callable[..., ShapleyValues]] = {
    "random": random_attribution,
    "ig": integrated_gradients,
    "smoothgrad": smoothgrad,
    "gradcam": gradcam,
    "kernelshap": kernelshap,
    "kernelshap_s": kernelshap_surrogate,
    "deepshap": deepshap,
}


def explain_baseline(
    method: str,
    model: Any,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    **options: Any,
) -> ShapleyValues:
    """Run a baseline by name: ``explain_baseline("ig", model, images, target, budget=32)``.

    Args:
        method: one of ``random``, ``ig``, ``smoothgrad``, ``gradcam``, ``kernelshap``,
            ``kernelshap_s`` (``model`` is then the surrogate ``s(x, mask)``), ``deepshap``.
        model: the model to explain.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        **options: the method's keyword options (``budget=`` for all of them).
    """
    if method not in BASELINES:
        raise UserError(f"unknown baseline {method!r}; choose one of {sorted(BASELINES)}")
    return BASELINES[method](model, images, target, **options)
