"""Saliency maps of many zoo models at once, and captum's maps of one model (the reference).

Batched Gradient, SmoothGrad, Integrated Gradients and Grad-CAM run on the grouped network of
:mod:`simshap.studies.causal.grouped`: the explained images are repeated once per model, one forward
pass serves every model, and one backward pass per explained target gives every model's map (a
model's logits depend only on its own channel block, so the gradient of the summed selected
logits is each model's own gradient). They compute what captum computes (``Saliency``,
``NoiseTunnel(Saliency)`` with ``nt_type="smoothgrad"``, ``IntegratedGradients`` with
Gauss-Legendre steps, ``LayerGradCam`` on ``conv3`` with bilinear upsampling);
:func:`captum_saliency` is captum itself, for the checks.

SmoothGrad's noise and every other random draw are shared by all models (common random numbers,
seeded), so a model's explanation does not depend on the models it is batched with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from simshap.studies.causal.grouped import grouped_forward

__all__ = [
    "SALIENCY_METHODS",
    "batched_saliency",
    "captum_saliency",
    "ig_steps",
    "smoothgrad_noise",
]

SALIENCY_METHODS: tuple[str, ...] = ("gradient", "smoothgrad", "integrated_gradients", "gradcam")


def ig_steps(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum's Gauss-Legendre (step sizes, alphas) for ``n`` Integrated Gradients steps."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    sizes_fn, alphas_fn = approximation_parameters("gausslegendre")
    return (
        torch.tensor(sizes_fn(n), dtype=torch.float64),
        torch.tensor(alphas_fn(n), dtype=torch.float64),
    )


def smoothgrad_noise(
    x: torch.Tensor, n_samples: int, noise: float, generator: torch.Generator
) -> torch.Tensor:
    """Gaussian noise ``(N * n_samples, C, H, W)`` in captum's row order (image-major).

    Its std is ``noise`` times the value range of ``x`` (the whole batch's max minus min).
    """
    span = float(x.amax() - x.amin())
    shape = (len(x) * n_samples, *x.shape[1:])
    return torch.randn(shape, generator=generator, dtype=x.dtype) * (noise * span)


def _grads(
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    stride: int,
    x: torch.Tensor,
    targets: Sequence[torch.Tensor],
    wrt_conv3: bool = False,
) -> list[torch.Tensor]:
    """Gradients of each target set's logits, ``(M, N, C, H, W)`` per set.

    Args:
        params: stacked parameters.
        activations: activation per model.
        stride: convolution stride.
        x: shared inputs ``(N, C, H, W)``.
        targets: sets of explained classes ``(M, N)``.
        wrt_conv3: differentiate with respect to conv3's output instead, and return
            (gradient, activation) pairs stacked as ``(2, M, N, 16, h, w)``.
    """
    m = len(activations)
    xr = x.repeat(1, m, 1, 1).requires_grad_(True)
    with torch.enable_grad():
        out = grouped_forward(params, xr, activations, stride, keep_conv3=wrt_conv3)
        wrt = out.conv3 if wrt_conv3 else xr
        res = []
        for t, target in enumerate(targets):
            sel = out.logits.gather(2, target[..., None].to(torch.long)).sum()
            g = torch.autograd.grad(sel, wrt, retain_graph=t < len(targets) - 1)[0]
            n, mc, hh, ww = g.shape
            g = g.reshape(n, m, mc // m, hh, ww).transpose(0, 1)
            if wrt_conv3:
                a = wrt.detach().reshape(n, m, mc // m, hh, ww).transpose(0, 1)
                g = torch.stack([g, a])
            res.append(g)
    return res


def batched_saliency(
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    stride: int,
    x: torch.Tensor,
    targets: Sequence[torch.Tensor],
    method: str,
    cfg: Mapping[str, Any],
    noise: torch.Tensor | None = None,
    max_rows: int = 4096,
) -> list[torch.Tensor]:
    """Raw saliency maps ``(M, N, H, W)`` of M stacked models, one per target set.

    Args:
        params: stacked parameters.
        activations: activation per model.
        stride: convolution stride.
        x: explained images ``(N, C, H, W)``.
        targets: sets of explained classes ``(M, N)`` (e.g. the predicted and a severed one).
        method: one of :data:`SALIENCY_METHODS`.
        cfg: ``smoothgrad_samples`` and ``ig_steps``.
        noise: SmoothGrad's noise ``(N * smoothgrad_samples, C, H, W)`` (see
            :func:`smoothgrad_noise`).
        max_rows: images times models per forward pass (bounds memory).

    Raises:
        ValueError: unknown method, or SmoothGrad without noise.
    """
    m = len(activations)
    n = len(x)
    per_call = max(1, max_rows // m)
    if method == "gradient":
        return _rowwise(params, activations, stride, x, targets, per_call)
    if method == "smoothgrad":
        s = int(cfg["smoothgrad_samples"])
        if noise is None or noise.shape != (n * s, *x.shape[1:]):
            raise ValueError(f"smoothgrad needs noise of shape {(n * s, *x.shape[1:])}")
        xs = x.repeat_interleave(s, 0) + noise
        ts = [t.repeat_interleave(s, 1) for t in targets]
        maps = _rowwise(params, activations, stride, xs, ts, per_call)
        return [a.reshape(m, n, s, *a.shape[2:]).mean(2) for a in maps]
    if method == "integrated_gradients":
        sizes, alphas = ig_steps(int(cfg["ig_steps"]))
        k = len(alphas)
        xs = torch.cat([float(a) * x for a in alphas])  # baseline 0: 0 + alpha (x - 0)
        ts = [t.repeat(1, k) for t in targets]
        maps = _rowwise(params, activations, stride, xs, ts, per_call, summed=False)
        w = sizes.to(x.dtype).reshape(1, k, 1, 1, 1, 1)
        return [(a.reshape(m, k, n, *a.shape[2:]) * w).sum(1).mul(x[None]).sum(2) for a in maps]
    if method == "gradcam":
        out: list[list[torch.Tensor]] = [[] for _ in targets]
        for i in range(0, n, per_call):
            pairs = _grads(
                params,
                activations,
                stride,
                x[i : i + per_call],
                [t[:, i : i + per_call] for t in targets],
                wrt_conv3=True,
            )
            for j, ga in enumerate(pairs):
                alpha = ga[0].mean(dim=(3, 4), keepdim=True)
                cam = torch.relu((alpha * ga[1]).sum(2))  # (M, n, h, w)
                up = F.interpolate(cam, tuple(x.shape[-2:]), mode="bilinear")
                out[j].append(up)
        return [torch.cat(o, 1) for o in out]
    raise ValueError(f"unknown saliency method {method!r}; choose from {SALIENCY_METHODS}")


def _rowwise(
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    stride: int,
    x: torch.Tensor,
    targets: Sequence[torch.Tensor],
    per_call: int,
    summed: bool = True,
) -> list[torch.Tensor]:
    """Input gradients in row blocks; channel-summed ``(M, N, H, W)`` (else ``(M, N, C, H, W)``)."""
    out: list[list[torch.Tensor]] = [[] for _ in targets]
    for i in range(0, len(x), per_call):
        gs = _grads(
            params,
            activations,
            stride,
            x[i : i + per_call],
            [t[:, i : i + per_call] for t in targets],
        )
        for j, g in enumerate(gs):
            out[j].append(g.sum(2) if summed else g)
    return [torch.cat(o, 1) for o in out]


def captum_saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str,
    cfg: Mapping[str, Any],
    seed: int = 0,
) -> torch.Tensor:
    """Captum's raw attribution maps ``(N, H, W)`` of one model (the batched maps' reference).

    SmoothGrad draws its noise from the global generator seeded with ``seed``, as captum does;
    the same noise is ``torch.manual_seed(seed); torch.normal(0, std, (N * samples, ...))``.
    """
    from captum.attr import (
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Saliency,
    )

    x = x.clone().requires_grad_(True)
    tgt = target.tolist()
    if method == "gradient":
        a = Saliency(model).attribute(x, target=tgt, abs=False)
    elif method == "smoothgrad":
        torch.manual_seed(seed)
        span = float(x.detach().amax() - x.detach().amin())
        a = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=int(cfg["smoothgrad_samples"]),
            nt_samples_batch_size=int(cfg["smoothgrad_samples"]),
            stdevs=float(cfg["smoothgrad_noise"]) * span,
            target=tgt,
            abs=False,
        )
    elif method == "integrated_gradients":
        a = IntegratedGradients(model).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=tgt,
            n_steps=int(cfg["ig_steps"]),
            internal_batch_size=len(x) * int(cfg["ig_steps"]),
        )
    elif method == "gradcam":
        cam = LayerGradCam(model, model.conv3).attribute(x, target=tgt, relu_attributions=True)
        a = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    else:
        raise ValueError(f"unknown saliency method {method!r}; choose from {SALIENCY_METHODS}")
    return a.detach().sum(dim=1)
