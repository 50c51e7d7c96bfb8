"""Explanations E_h(x) of the zoo's models on fixed images, preprocessed as in the paper.

Saliency maps (captum): Gradient, SmoothGrad, Integrated Gradients and Grad-CAM. Shapley values
over a 4x4 grid of image patches, from simshap's game layer: a :class:`~simshap.games.BaselineGame`
(absent patches are black, the images' background) with :meth:`~simshap.players.Players.superpixels`
players, estimated by :func:`~simshap.games.kernel_shap` at a stated coalition budget. Identity
(E := the softmax output) is the reference.

Preprocessing (Karimi et al., App. A.3): values above the 99th percentile are clipped, then maps
are normalized to [0, 1]; signed maps are first normalized to [-1, 1] (by the 99th percentile of
their absolute values) and negative values are zeroed.

Every method is computed twice: for the model's own predicted class (the *total* effect of H on
E, including the path H -> Y -> E) and for a *severed* target, the predicted class of another
model of the same chunk drawn by a seeded random derangement (the *direct* effect: the target no
longer depends on the model's hyperparameters).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from simshap.estimators import kernel_shap
from simshap.games import BaselineGame
from simshap.players import Players

__all__ = [
    "METHODS",
    "SALIENCY_METHODS",
    "clip_and_normalize",
    "explain_chunk",
    "saliency",
    "severed_sources",
    "shapley_patches",
]

SALIENCY_METHODS: tuple[str, ...] = ("gradient", "smoothgrad", "integrated_gradients", "gradcam")
METHODS: tuple[str, ...] = ("identity", *SALIENCY_METHODS, "shapley")


def clip_and_normalize(maps: torch.Tensor, signed: bool, q: float = 0.99) -> torch.Tensor:
    """The paper's preprocessing of explanation maps ``(B, ...)``, one map per row.

    Signed maps: p = q-quantile of |a|; a <- clamp(a, -p, p) / p in [-1, 1]; negatives -> 0.
    Unsigned maps (Grad-CAM): a <- min(a, q-quantile of a) / max, in [0, 1].
    A map that is zero everywhere stays zero.

    Args:
        maps: attributions, first dimension indexes maps.
        signed: whether the method gives signed attributions.
        q: clipping quantile.

    Returns:
        Maps of the same shape in [0, 1].
    """
    flat = maps.reshape(len(maps), -1).to(torch.float32)
    if signed:
        p = torch.quantile(flat.abs(), q, dim=1, keepdim=True)
        safe = torch.where(p > 0, p, torch.ones_like(p))
        out = (torch.minimum(torch.maximum(flat, -p), p) / safe).clamp_min(0.0)
    else:
        flat = flat.clamp_min(0.0)
        p = torch.quantile(flat, q, dim=1, keepdim=True)
        clipped = torch.minimum(flat, p)
        top = clipped.amax(dim=1, keepdim=True)
        out = clipped / torch.where(top > 0, top, torch.ones_like(top))
    return out.reshape(maps.shape)


def saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str,
    cfg: Mapping[str, Any],
    seed: int = 0,
) -> torch.Tensor:
    """Raw captum attribution maps ``(B, H, W)`` for class ``target`` (B,) of images ``x``.

    Args:
        model: CNN with a ``conv3`` layer (used by Grad-CAM).
        x: images ``(B, 1, H, W)``.
        target: explained class per image.
        method: one of :data:`SALIENCY_METHODS`.
        cfg: ``smoothgrad_samples``, ``smoothgrad_noise`` (std as a fraction of the input range)
            and ``ig_steps``.
        seed: seed of SmoothGrad's noise.
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
        torch.manual_seed(seed)  # captum draws the noise from the global generator
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


def shapley_patches(
    model: nn.Module,
    x: torch.Tensor,
    grid: int,
    n_samples: int,
    seed: int = 0,
) -> tuple[torch.Tensor, int]:
    """Shapley values of a ``grid`` x ``grid`` patch game for every class.

    The game is v_x(S) = softmax(f(x_S, 0_{N∖S})): patches outside S are set to 0 (black).

    Args:
        model: classifier returning logits.
        x: images ``(B, 1, H, W)``; H and W divisible by ``grid``.
        grid: patches per side (4 -> 16 players).
        n_samples: KernelSHAP coalition budget besides ∅ and N (``2**(grid*grid) - 2`` is exact).
        seed: sampling seed.

    Returns:
        (values ``(B, grid*grid, C)``, game evaluations per instance incl. ∅ and N).
    """
    size = x.shape[-1] // grid

    def probs(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(model(z), dim=-1)

    game = BaselineGame(
        probs,
        x,
        torch.zeros_like(x[0]),
        Players.superpixels(tuple(x.shape[-2:]), size),
        batch_size=8192,
    )
    est = kernel_shap(game, budget=n_samples + 2, generator=torch.Generator().manual_seed(seed))
    return est.values, int(est.n_evals)


def severed_sources(n_models: int, n_images: int, seed: int) -> torch.Tensor:
    """Source models that sever H -> Y -> E: ``(n_models, n_images)`` indices pi_b(m) != m.

    For each image b a seeded random cyclic derangement pi_b of the chunk's models assigns model
    m the prediction (the explained target, and for the identity the softmax vector) of model
    pi_b(m). Hyperparameters are drawn independently per model, so that target is independent of
    model m's hyperparameters while its distribution matches the zoo's predictions.

    Raises:
        ValueError: fewer than two models.
    """
    if n_models < 2:
        raise ValueError("severing the prediction needs at least two models per chunk")
    gen = torch.Generator().manual_seed(seed)
    order = torch.argsort(torch.rand(n_models, n_images, generator=gen), dim=0)
    source = torch.empty_like(order)
    source.scatter_(0, order, order.roll(-1, dims=0))  # order[j] takes order[j+1]'s output
    return source


def explain_chunk(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    methods: Sequence[str],
    cfg: Mapping[str, Any],
    seed: int,
) -> dict[str, Any]:
    """Predictions and preprocessed explanations (total and direct) of a chunk of models.

    Args:
        models: the chunk's models (eval mode).
        x: the fixed images ``(B, 1, H, W)``.
        methods: subset of :data:`METHODS`.
        cfg: explanation settings (see :func:`saliency`; ``shapley_grid``, ``shapley_samples``).
        seed: seed of the severed targets and of the stochastic methods.

    Returns:
        ``{"probs": (n, B, C), "targets": (n, B), "severed": (n, B), "source": (n, B),
        "n_evals": int,
        "total": {method: (n, B, ...)}, "direct": {method: (n, B, ...)}}``; explanation maps are
        float16 (the identity's are the float32 softmax vectors).
    """
    with torch.no_grad():
        probs = torch.stack([torch.softmax(m(x), dim=-1) for m in models])
    probs = torch.nan_to_num(probs, nan=1.0 / probs.shape[-1])
    preds = probs.argmax(-1)
    source = severed_sources(len(models), len(x), seed)
    severed = torch.gather(preds, 0, source)
    out: dict[str, Any] = {
        "probs": probs,
        "targets": preds,
        "severed": severed,
        "source": source,
        "n_evals": 0,
        "total": {},
        "direct": {},
    }
    rows = torch.arange(len(x))
    for name in methods:
        if name == "identity":
            out["total"][name] = probs
            out["direct"][name] = torch.gather(probs, 0, source[..., None].expand_as(probs))
            continue
        tot, dire = [], []
        for i, m in enumerate(models):
            if name == "shapley":
                vals, n_evals = shapley_patches(
                    m, x, int(cfg["shapley_grid"]), int(cfg["shapley_samples"]), seed + i
                )
                out["n_evals"] = n_evals
                vals = torch.nan_to_num(vals.float())
                pair = (vals[rows, :, preds[i]], vals[rows, :, severed[i]])
                signed = True
            else:
                pair = tuple(
                    torch.nan_to_num(saliency(m, x, t, name, cfg, seed + i))
                    for t in (preds[i], severed[i])
                )
                signed = name != "gradcam"
            tot.append(clip_and_normalize(pair[0], signed).half())
            dire.append(clip_and_normalize(pair[1], signed).half())
        out["total"][name] = torch.stack(tot)
        out["direct"][name] = torch.stack(dire)
    return out
