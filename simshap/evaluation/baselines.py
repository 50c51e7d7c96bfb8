"""Image attribution baselines (captum, shap and our KernelSHAP), reduced to the superpixel grid.

Every method has the same signature, ``method(model, images, target=None, **options)``, and
returns an :class:`Attribution` whose ``values`` are ``(N, H / k, W / k)`` for superpixels of side
``k`` (``(N, 16, 16)`` for CIFAR): pixel attributions are averaged over channels and then over
each ``k x k`` superpixel. :func:`attribute` dispatches by name.

``images`` are model inputs (already normalized, so 0 is the data mean); ``target`` is ``None``
(the model's predicted class), an int, or an ``(N,)`` integer tensor. Models in training mode
are switched to eval mode for the call (and back), so BatchNorm uses its running statistics.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
from torch import nn
from torch.nn import functional as F

from simshap.games.estimators import kernel_shap
from simshap.games.values import MaskedModelGame, SuperpixelGrouping

__all__ = [
    "Attribution",
    "BASELINES",
    "attribute",
    "integrated_gradients",
    "smoothgrad",
    "gradcam",
    "kernelshap",
    "kernelshap_surrogate",
    "deepshap",
    "to_superpixels",
]

Model = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Attribution:
    """Superpixel attributions of one baseline method.

    Attributes:
        values: ``(N, h, w)`` attributions on the superpixel grid (on the images' device).
        method: the method asked for (a key of :data:`BASELINES`).
        used: the implementation that produced them (e.g. ``"shap.GradientExplainer"``).
        fallback_reason: why ``used`` differs from the first choice (``None`` if it does not).
        extras: method-specific diagnostics (e.g. IG's convergence delta).

    """

    values: torch.Tensor
    method: str
    used: str
    fallback_reason: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


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
        raise ValueError(f"pixel attributions must be (N, C, H, W), got {tuple(pixel_attr.shape)}")
    k = superpixel_size
    if pixel_attr.shape[-1] % k or pixel_attr.shape[-2] % k:
        raise ValueError(
            f"image size {tuple(pixel_attr.shape[-2:])} is not divisible by superpixel_size={k}"
        )
    return F.avg_pool2d(pixel_attr.mean(dim=1, keepdim=True), k).squeeze(1)


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    restore = isinstance(model, nn.Module) and model.training
    if restore:
        model.eval()
    try:
        yield
    finally:
        if restore:
            model.train()


def _check_images(images: torch.Tensor, superpixel_size: int) -> SuperpixelGrouping:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"images must be a float (N, C, H, W) tensor of model inputs, got {got}; "
            "use x[None] for a single image"
        )
    if images.shape[0] == 0:
        raise ValueError("images is empty")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    return SuperpixelGrouping(tuple(images.shape[-2:]), superpixel_size)


def _resolve_target(
    model: Model, images: torch.Tensor, target: int | torch.Tensor | None, **call: Any
) -> torch.Tensor:
    """``(N,)`` long tensor of classes: given, broadcast, or the model's predictions."""
    n = images.shape[0]
    if target is None:
        with torch.no_grad():
            out = model(images, **call)
        if out.ndim != 2 or out.shape[0] != n:
            raise ValueError(f"model must return (N, C) logits, got shape {tuple(out.shape)}")
        return out.argmax(dim=1)
    tgt = torch.as_tensor(target, device=images.device)
    if tgt.dtype.is_floating_point or tgt.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {tgt.dtype}")
    if tgt.ndim == 0:
        tgt = tgt.expand(n)
    if tgt.shape != (n,) or bool((tgt < 0).any()):
        raise ValueError(
            f"target must be a non-negative int or an (N,) = ({n},) tensor of classes, got "
            f"{tuple(tgt.shape)}"
        )
    return tgt.long()


def _seeded(seed: int | None, device: torch.device) -> contextlib.AbstractContextManager[Any]:
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


# --------------------------------------------------------------------------- captum


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    baseline: float | torch.Tensor = 0.0,
    n_steps: int = 64,
    internal_batch_size: int | None = 256,
    superpixel_size: int = 2,
) -> Attribution:
    """Integrated Gradients (captum) from ``baseline`` (default 0, the normalized mean).

    Pixel attributions sum to about ``f(x) - f(baseline)`` (completeness); the per-image error
    of the Gauss-Legendre path integral is in ``extras["delta"]``, the pixel attributions'
    sum in ``extras["pixel_sum"]``.

    Args:
        model: ``model(x) -> (N, C)`` logits (differentiable).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        baseline: scalar or tensor broadcastable to ``images``.
        n_steps: integration steps.
        internal_batch_size: rows per forward/backward pass.
        superpixel_size: side of a superpixel.

    Returns:
        Attribution ``(N, h, w)``.

    """
    _check_images(images, superpixel_size)
    with _eval_mode(model):
        tgt = _resolve_target(model, images, target)
        ig = IntegratedGradients(model)
        attr, delta = ig.attribute(
            images,
            baselines=baseline,
            target=tgt,
            n_steps=n_steps,
            internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    attr = attr.detach()
    return Attribution(
        to_superpixels(attr, superpixel_size),
        "ig",
        "captum.attr.IntegratedGradients",
        extras={"delta": delta.detach(), "pixel_sum": attr.flatten(1).sum(1)},
    )


def smoothgrad(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    n_samples: int = 32,
    stdev: float = 0.15,
    absolute: bool = True,
    samples_batch_size: int | None = 8,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> Attribution:
    """SmoothGrad: gradients averaged over Gaussian-noised copies (captum NoiseTunnel + Saliency).

    Args:
        model: ``model(x) -> (N, C)`` logits (differentiable).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        n_samples: noisy copies per image.
        stdev: noise standard deviation (in normalized input units).
        absolute: average absolute gradients (the usual SmoothGrad map) instead of signed ones.
        samples_batch_size: noisy copies per pass.
        seed: seeds the noise (the global RNG state is left untouched); ``None``: unseeded.
        superpixel_size: side of a superpixel.

    Returns:
        Attribution ``(N, h, w)``.

    """
    _check_images(images, superpixel_size)
    with _eval_mode(model), _seeded(seed, images.device):
        tgt = _resolve_target(model, images, target)
        nt = NoiseTunnel(Saliency(model))
        attr = nt.attribute(
            images,
            nt_type="smoothgrad",
            nt_samples=n_samples,
            nt_samples_batch_size=samples_batch_size,
            stdevs=stdev,
            target=tgt,
            abs=absolute,
        )
    return Attribution(
        to_superpixels(attr.detach(), superpixel_size),
        "smoothgrad",
        "captum.attr.NoiseTunnel(Saliency)",
    )


def gradcam(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    layer: nn.Module | None = None,
    relu_attributions: bool = False,
    superpixel_size: int = 2,
) -> Attribution:
    """Grad-CAM (captum LayerGradCam) on the last convolutional block, upsampled to the grid.

    The layer map (4x4 on a CIFAR ResNet's ``layer4``) is upsampled bilinearly to the image size
    and reduced like every other method. ``relu_attributions=False`` (default) keeps negative
    evidence, which still ranks superpixels; ``True`` gives the classic Grad-CAM heat map (whose
    zero regions tie and are then ranked by index).

    Args:
        model: the classifier.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        layer: the module to attribute (default: ``model.layer4``, torchvision ResNets).
        relu_attributions: apply ReLU to the map.
        superpixel_size: side of a superpixel.

    Returns:
        Attribution ``(N, h, w)``.

    """
    _check_images(images, superpixel_size)
    if layer is None:
        layer = getattr(model, "layer4", None)
        if not isinstance(layer, nn.Module):
            raise ValueError(
                "gradcam needs the last convolutional block: pass layer=... (found no "
                f"model.layer4 on {type(model).__name__})"
            )
    with _eval_mode(model):
        tgt = _resolve_target(model, images, target)
        cam = LayerGradCam(model, layer).attribute(
            images, target=tgt, relu_attributions=relu_attributions
        )
    cam = F.interpolate(cam.detach(), size=images.shape[-2:], mode="bilinear", align_corners=False)
    return Attribution(to_superpixels(cam, superpixel_size), "gradcam", "captum.attr.LayerGradCam")


# --------------------------------------------------------------------------- KernelSHAP


def kernelshap(
    model: Model,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    n_samples: int | str = "auto",
    baseline: float = 0.0,
    l1_reg: Any = False,
    batch_size: int = 1024,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> Attribution:
    """KernelSHAP over the superpixels of the original model (``shap.KernelExplainer``).

    Each image is its own explanation problem: players are the ``d`` superpixels, a coalition
    keeps its superpixels and sets the others to ``baseline`` (0 = the normalized data mean),
    and the value is the target logit. ``shap.KernelExplainer`` runs on the ``(n, d)`` binary
    coalition matrices; the model is called on the masked images in chunks of ``batch_size``.

    Args:
        model: ``model(x) -> (N, C)`` logits.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        n_samples: coalitions per image (shap's ``nsamples``; ``"auto"`` = 2d + 2048).
        baseline: value of removed superpixels.
        l1_reg: shap's ``l1_reg`` (default ``False``: plain KernelSHAP on all players).
        batch_size: rows per model call.
        seed: seeds numpy's RNG for shap's sampling (the global state is restored).
        superpixel_size: side of a superpixel.

    Returns:
        Attribution ``(N, h, w)``; ``extras["expected_value"]`` holds each image's v(∅).

    """
    import shap

    groups = _check_images(images, superpixel_size)
    d = groups.num_players
    out, base_values = [], []
    np_state = np.random.get_state()
    if seed is not None:
        np.random.seed(seed)
    try:
        with _eval_mode(model):
            tgt = _resolve_target(model, images, target)
            for i in range(images.shape[0]):
                value = _superpixel_value_fn(
                    model, images[i], int(tgt[i]), groups, baseline, batch_size
                )
                explainer = shap.KernelExplainer(value, np.zeros((1, d)))
                sv = explainer.shap_values(
                    np.ones((1, d)), nsamples=n_samples, l1_reg=l1_reg, silent=True
                )
                out.append(np.asarray(sv, dtype=np.float64).reshape(d))
                base_values.append(float(np.asarray(explainer.expected_value).reshape(-1)[0]))
    finally:
        np.random.set_state(np_state)
    values = torch.as_tensor(np.stack(out), dtype=images.dtype, device=images.device)
    return Attribution(
        values.view(-1, *groups.grid),
        "kernelshap",
        "shap.KernelExplainer",
        extras={"expected_value": torch.tensor(base_values)},
    )


def _superpixel_value_fn(
    model: Model,
    image: torch.Tensor,
    target: int,
    groups: SuperpixelGrouping,
    baseline: float,
    batch_size: int,
) -> Callable[[np.ndarray], np.ndarray]:
    """v(z) for shap: binary coalitions ``(n, d)`` -> target logits ``(n,)`` of masked images."""

    def value(z: np.ndarray) -> np.ndarray:
        masks = torch.as_tensor(np.asarray(z) > 0.5, device=image.device)
        parts = []
        with torch.no_grad():
            for j in range(0, masks.shape[0], batch_size):
                fmask = groups.feature_mask(masks[j : j + batch_size])
                x = torch.where(fmask, image.unsqueeze(0), baseline)
                parts.append(model(x)[:, target].double().cpu())
        return torch.cat(parts).numpy()

    return value


def kernelshap_surrogate(
    surrogate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    n_samples: int | None = None,
    threshold: float | None = None,
    paired: bool = True,
    output_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 4096,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> Attribution:
    """KernelSHAP-S: our batched ``kernel_shap`` on the surrogate's superpixel game.

    The game is ``MaskedModelGame(surrogate, images, SuperpixelGrouping(...))``: a coalition is
    evaluated as ``surrogate(x, m)`` with ``m`` the bool ``(N, 1, H, W)`` pixel mask. All images
    are estimated together. The values are efficient: they sum to v(N) - v(∅).

    Args:
        surrogate: any callable ``surrogate(x, mask) -> (N, C)``.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain; pass the original model's predicted classes (default: the
            surrogate's prediction on the full image).
        n_samples: coalition budget (``kernel_shap``'s default: 2d + 2048).
        threshold: convergence mode instead of a budget (e.g. 0.01, the ground-truth setting).
        paired: paired sampling.
        output_transform: map on the surrogate's output, e.g. ``lambda z: z.softmax(-1)``.
        batch_size: rows per surrogate call.
        seed: seeds the coalition sampler (``None``: unseeded).
        superpixel_size: side of a superpixel.

    Returns:
        Attribution ``(N, h, w)``; ``extras`` holds ``n_evals`` and, in convergence mode, the
        per-superpixel ``std``.

    """
    groups = _check_images(images, superpixel_size)
    game = MaskedModelGame(
        surrogate, images, groups=groups, batch_size=batch_size, output_transform=output_transform
    )
    with _eval_mode(surrogate), torch.no_grad():
        if target is None:
            _, full = game.empty_and_full()
            tgt = full.argmax(dim=1)
        else:
            tgt = _resolve_target(surrogate, images, target)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=images.device).manual_seed(seed)
        est = kernel_shap(
            game, n_samples=n_samples, paired=paired, threshold=threshold, generator=generator
        )
    rows = torch.arange(images.shape[0], device=images.device)
    values = est.values[rows, :, tgt]
    extras: dict[str, Any] = {"n_evals": est.n_evals}
    if est.std is not None:
        extras["std"] = est.std[rows, :, tgt].view(-1, *groups.grid)
    return Attribution(
        values.view(-1, *groups.grid), "kernelshap_s", "simshap.games.kernel_shap", extras=extras
    )


# --------------------------------------------------------------------------- DeepSHAP


class _SelectOutput(nn.Module):
    """One output column of a model, as a module (shap explains every output it sees)."""

    def __init__(self, model: nn.Module, column: int) -> None:
        super().__init__()
        self.model = model
        self.column = column

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.column : self.column + 1]


def deepshap(
    model: nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    background: torch.Tensor | None = None,
    explainer: str = "auto",
    n_samples: int = 200,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> Attribution:
    """DeepSHAP with ``shap.DeepExplainer``, or ``shap.GradientExplainer`` where it fails.

    shap's PyTorch DeepExplainer hooks every module; torchvision's ResNet modifies hooked outputs
    in place (``out += identity`` and in-place ReLU), which DeepExplainer cannot differentiate,
    so with ``explainer="auto"`` the failure is caught and shap's GradientExplainer (expected
    gradients, a DeepSHAP-style approximation over the same background) is used instead;
    ``Attribution.used`` and ``fallback_reason`` record it.

    Args:
        model: the classifier (an ``nn.Module``).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        background: ``(K, C, H, W)`` reference images (default: one all-zero image, the
            normalized mean); a few dozen training images give smoother maps.
        explainer: ``"auto"`` (Deep, else Gradient), ``"deep"`` or ``"gradient"``.
        n_samples: GradientExplainer's samples per image.
        seed: seeds GradientExplainer's sampling.
        superpixel_size: side of a superpixel.

    Returns:
        Attribution ``(N, h, w)``.

    """
    import shap

    if explainer not in ("auto", "deep", "gradient"):
        raise ValueError(f"explainer must be 'auto', 'deep' or 'gradient', got {explainer!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"deepshap needs a torch nn.Module, got {type(model).__name__}")
    _check_images(images, superpixel_size)
    if background is None:
        background = torch.zeros_like(images[:1])
    if background.ndim != 4 or background.shape[1:] != images.shape[1:]:
        raise ValueError(
            f"background must be (K, {', '.join(map(str, images.shape[1:]))}), got "
            f"{tuple(background.shape)}"
        )
    background = background.to(device=images.device, dtype=images.dtype)
    reason = None
    with _eval_mode(model):
        tgt = _resolve_target(model, images, target)
        attr = None
        if explainer in ("auto", "deep"):
            try:
                # on a copy: DeepExplainer leaves its hooks on the modules when it fails
                attr = _shap_per_class(
                    lambda m: shap.DeepExplainer(m, background),
                    lambda e, x: e.shap_values(x, check_additivity=True),
                    copy.deepcopy(model),
                    images,
                    tgt,
                )
                used = "shap.DeepExplainer"
            except Exception as err:  # noqa: BLE001 - shap raises many types; we report it
                if explainer == "deep":
                    raise RuntimeError(
                        f"shap.DeepExplainer cannot explain {type(model).__name__}: {err}; use "
                        "explainer='gradient' (or 'auto')"
                    ) from err
                reason = f"shap.DeepExplainer failed: {type(err).__name__}: {str(err)[:160]}"
        if attr is None:
            attr = _shap_per_class(
                lambda m: shap.GradientExplainer(m, background),
                lambda e, x: e.shap_values(x, nsamples=n_samples, rseed=seed),
                model,
                images,
                tgt,
            )
            used = "shap.GradientExplainer"
    return Attribution(to_superpixels(attr, superpixel_size), "deepshap", used, reason)


def _shap_per_class(
    make: Callable[[nn.Module], Any],
    explain: Callable[[Any, torch.Tensor], Any],
    model: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """Run a shap deep-learning explainer once per target class, on that class's images only."""
    attr = torch.empty_like(images)
    for c in target.unique().tolist():
        idx = (target == c).nonzero().squeeze(1)
        e = make(_SelectOutput(model, int(c)))
        sv = np.asarray(explain(e, images[idx].clone()))
        sv = sv.reshape(len(idx), *images.shape[1:])  # drop the single output axis
        attr[idx] = torch.as_tensor(sv, dtype=images.dtype, device=images.device)
    return attr


# --------------------------------------------------------------------------- dispatch

BASELINES: dict[str, Callable[..., Attribution]] = {
    "ig": integrated_gradients,
    "smoothgrad": smoothgrad,
    "gradcam": gradcam,
    "kernelshap": kernelshap,
    "kernelshap_s": kernelshap_surrogate,
    "deepshap": deepshap,
}


def attribute(
    method: str,
    model: Any,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    **options: Any,
) -> Attribution:
    """Run a baseline by name: ``attribute("ig", model, images, target, n_steps=32)``.

    Args:
        method: one of ``ig``, ``smoothgrad``, ``gradcam``, ``kernelshap``, ``kernelshap_s``
            (``model`` is then the surrogate ``s(x, mask)``), ``deepshap``.
        model: the model to explain.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        **options: the method's keyword options.

    Returns:
        Attribution with ``(N, h, w)`` values.

    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {sorted(BASELINES)}")
    return BASELINES[method](model, images, target, **options)
