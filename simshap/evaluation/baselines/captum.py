"""Gradient baselines from captum (Integrated Gradients, SmoothGrad, Grad-CAM) on superpixels.

Each returns :class:`~simshap.ShapleyValues` with values ``(N, d, 1)`` for the explained class
(``.target``) on the superpixel grid (``.as_image()[:, 0]`` is the ``(N, h, w)`` map). For these
methods ``budget`` is the number of model passes per image (IG's steps, SmoothGrad's noisy
copies) and ``n_evals`` reports it; ``method`` names the implementation.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
from torch import nn
from torch.nn import functional as F

from simshap.errors import UserError
from simshap.evaluation.baselines.common import (
    baseline_result,
    check_images,
    eval_mode,
    resolve_target,
    sample_count,
    seeded,
    to_superpixels,
)
from simshap.results import ShapleyValues

__all__ = ["integrated_gradients", "smoothgrad", "gradcam"]


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    budget: int | None = None,
    baseline: float | torch.Tensor = 0.0,
    internal_batch_size: int | None = 256,
    superpixel_size: int = 2,
) -> ShapleyValues:
    """Integrated Gradients (captum) from ``baseline`` (default 0, the normalized mean).

    Pixel attributions sum to about ``f(x) - f(baseline)`` (completeness); the per-image error
    of the Gauss-Legendre path integral is in ``extras["delta"]``, the pixel attributions' sum
    in ``extras["pixel_sum"]``.

    Args:
        model: ``model(x) -> (N, C)`` logits (differentiable).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        budget: integration steps (model passes per image; default 64).
        baseline: scalar or tensor broadcastable to ``images``.
        internal_batch_size: rows per forward/backward pass.
        superpixel_size: side of a superpixel.
    """
    check_images(images, superpixel_size)
    steps = sample_count("integrated_gradients", budget, 64)
    with eval_mode(model):
        tgt = resolve_target(model, images, target)
        ig = IntegratedGradients(model)
        attr, delta = ig.attribute(
            images,
            baselines=baseline,
            target=tgt,
            n_steps=steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    attr = attr.detach()
    return baseline_result(
        to_superpixels(attr, superpixel_size),
        tgt,
        "captum.attr.IntegratedGradients",
        n_evals=steps,
        delta=delta.detach(),
        pixel_sum=attr.flatten(1).sum(1),
        name="ig",
    )


def smoothgrad(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    budget: int | None = None,
    stdev: float = 0.15,
    absolute: bool = True,
    samples_batch_size: int | None = 8,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> ShapleyValues:
    """SmoothGrad: gradients averaged over Gaussian-noised copies (captum NoiseTunnel + Saliency).

    Args:
        model: ``model(x) -> (N, C)`` logits (differentiable).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        budget: noisy copies per image (model passes; default 32).
        stdev: noise standard deviation (in normalized input units).
        absolute: average absolute gradients (the usual SmoothGrad map) instead of signed ones.
        samples_batch_size: noisy copies per pass.
        seed: seeds the noise (the global RNG state is left untouched); ``None``: unseeded.
        superpixel_size: side of a superpixel.
    """
    check_images(images, superpixel_size)
    copies = sample_count("smoothgrad", budget, 32)
    with eval_mode(model), seeded(seed, images.device):
        tgt = resolve_target(model, images, target)
        nt = NoiseTunnel(Saliency(model))
        attr = nt.attribute(
            images,
            nt_type="smoothgrad",
            nt_samples=copies,
            nt_samples_batch_size=samples_batch_size,
            stdevs=stdev,
            target=tgt,
            abs=absolute,
        )
    return baseline_result(
        to_superpixels(attr.detach(), superpixel_size),
        tgt,
        "captum.attr.NoiseTunnel(Saliency)",
        n_evals=copies,
        name="smoothgrad",
    )


def gradcam(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    budget: int | None = None,
    layer: nn.Module | None = None,
    relu_attributions: bool = False,
    superpixel_size: int = 2,
) -> ShapleyValues:
    """Grad-CAM (captum LayerGradCam) on the last convolutional block, upsampled to the grid.

    The layer map (4x4 on a CIFAR ResNet's ``layer4``) is upsampled bilinearly to the image size
    and reduced like every other method. ``relu_attributions=False`` (default) keeps negative
    evidence, which still ranks superpixels; ``True`` gives the classic Grad-CAM heat map.

    Args:
        model: the classifier.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        budget: accepted for a uniform signature; Grad-CAM always takes one pass (``n_evals=1``).
        layer: the module to attribute (default: ``model.layer4``, torchvision ResNets).
        relu_attributions: apply ReLU to the map.
        superpixel_size: side of a superpixel.
    """
    check_images(images, superpixel_size)
    if budget is not None:
        sample_count("gradcam", budget, 1)
    if layer is None:
        layer = getattr(model, "layer4", None)
        if not isinstance(layer, nn.Module):
            raise UserError(
                "gradcam needs the last convolutional block: pass layer=... (found no "
                f"model.layer4 on {type(model).__name__})"
            )
    with eval_mode(model):
        tgt = resolve_target(model, images, target)
        cam = LayerGradCam(model, layer).attribute(
            images, target=tgt, relu_attributions=relu_attributions
        )
    cam = F.interpolate(cam.detach(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    return baseline_result(
        to_superpixels(cam, superpixel_size),
        tgt,
        "captum.attr.LayerGradCam",
        n_evals=1,
        name="gradcam",
    )
