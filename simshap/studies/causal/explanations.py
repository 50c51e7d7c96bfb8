"""Explanations E_h(x) of the zoo's models on fixed images, preprocessed as in the paper.

Saliency maps: Gradient, SmoothGrad, Integrated Gradients and Grad-CAM, batched over models
(:mod:`simshap.studies.causal.saliency`, checked against captum). Shapley values over a 4x4 grid of
image patches, from simshap's game layer: one :class:`~simshap.games.BaselineGame` for a group of
models (absent patches are black, the images' background) with superpixel players, estimated by
:func:`~simshap.games.kernel_shap` at a stated budget. Identity (E := the softmax output) is the
reference. All models share the random draws (SmoothGrad's noise, the coalitions), so a model's
explanations are the same in any chunk.

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

from simshap.estimators import kernel_shap
from simshap.games import BaselineGame
from simshap.players import Players
from simshap.studies.causal.grouped import grouped_forward
from simshap.studies.causal.saliency import SALIENCY_METHODS, batched_saliency, smoothgrad_noise

__all__ = [
    "METHODS",
    "SALIENCY_METHODS",
    "clip_and_normalize",
    "explain_chunk",
    "severed_sources",
    "shapley_patches",
]

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


def shapley_patches(
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    stride: int,
    x: torch.Tensor,
    grid: int,
    budget: int,
    seed: int = 0,
    max_rows: int = 8192,
) -> tuple[torch.Tensor, int]:
    """Shapley values of a ``grid`` x ``grid`` patch game for every class of M stacked models.

    The game is v_x(S) = softmax(f_m(x_S, 0_{N∖S})) for every model m at once: one
    :class:`~simshap.games.BaselineGame` whose output concatenates the models' class
    probabilities, so KernelSHAP draws one set of coalitions (seeded, the same for every model)
    and solves every model's values in one batched least-squares solve. A model's values are the
    ones it gets alone. Non-finite probabilities (a diverged model) count as uniform, so such a
    model gets zero values.

    Args:
        params: stacked parameters.
        activations: activation per model.
        stride: convolution stride.
        x: images ``(B, C, H, W)``; H and W divisible by ``grid``.
        grid: patches per side (4 -> 16 players).
        budget: KernelSHAP game evaluations per image, ∅ and N included (``2**(grid*grid)``
            is exact).
        seed: seed of the coalitions.
        max_rows: images times models per forward pass.

    Returns:
        (values ``(M, B, grid*grid, C)``, game evaluations per image incl. ∅ and N).
    """
    m = len(activations)
    size = x.shape[-1] // grid

    def probs(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            logits = grouped_forward(params, z.repeat(1, m, 1, 1), activations, stride).logits
            p = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=1.0 / logits.shape[-1])
        return p.transpose(0, 1).reshape(len(z), -1)  # (rows, M * C)

    game = BaselineGame(
        probs,
        x,
        torch.zeros_like(x[0]),
        Players.superpixels(tuple(x.shape[-2:]), size),
        batch_size=max(1, max_rows // m),
    )
    est = kernel_shap(game, budget=budget, generator=torch.Generator().manual_seed(seed))
    vals = est.values.reshape(len(x), grid * grid, m, -1).permute(2, 0, 1, 3)
    return vals, int(est.n_evals)


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
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    stride: int,
    x: torch.Tensor,
    methods: Sequence[str],
    cfg: Mapping[str, Any],
    seed: int,
    severed_seed: int,
    group_size: int = 10,
) -> dict[str, Any]:
    """Predictions and preprocessed explanations (total and direct) of a chunk of models.

    Args:
        params: the chunk's stacked parameters.
        activations: activation per model.
        stride: convolution stride.
        x: the fixed images ``(B, 1, H, W)``.
        methods: subset of :data:`METHODS`.
        cfg: explanation settings (``smoothgrad_samples``, ``smoothgrad_noise``, ``ig_steps``,
            ``shapley_grid``, ``shapley_samples``: KernelSHAP's budget besides ∅ and N).
        seed: seed of SmoothGrad's noise and of the Shapley coalitions (shared by every model).
        severed_seed: seed of the chunk's severed targets (:func:`severed_sources`).
        group_size: models per batched pass.

    Returns:
        ``{"probs": (n, B, C), "targets": (n, B), "severed": (n, B), "source": (n, B),
        "n_evals": int, "total": {method: (n, B, ...)}, "direct": {method: (n, B, ...)}}``;
        explanation maps are float16 (the identity's are the float32 softmax vectors).
    """
    n = len(activations)
    # groups of models sharing an activation where possible (one activation call per layer)
    order = sorted(range(n), key=lambda k: (activations[k], k))
    groups = [order[i : i + group_size] for i in range(0, n, group_size)]
    back = torch.empty(n, dtype=torch.long)
    back[torch.tensor([k for g in groups for k in g])] = torch.arange(n)

    def sub(ids: Sequence[int]) -> tuple[dict[str, torch.Tensor], list[str]]:
        sel = torch.tensor(list(ids))
        return {k: v[sel] for k, v in params.items()}, [activations[k] for k in ids]

    with torch.no_grad():
        logits = []
        for ids in groups:
            p, acts = sub(ids)
            logits.append(grouped_forward(p, x.repeat(1, len(ids), 1, 1), acts, stride).logits)
        probs = torch.softmax(torch.cat(logits)[back], dim=-1)
    probs = torch.nan_to_num(probs, nan=1.0 / probs.shape[-1])
    preds = probs.argmax(-1)
    source = severed_sources(n, len(x), severed_seed)
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
    noise = smoothgrad_noise(
        x,
        int(cfg["smoothgrad_samples"]),
        float(cfg["smoothgrad_noise"]),
        torch.Generator().manual_seed(seed),
    )
    for name in methods:
        if name == "identity":
            out["total"][name] = probs
            out["direct"][name] = torch.gather(probs, 0, source[..., None].expand_as(probs))
            continue
        tot, dire = [], []
        for ids in groups:
            p, acts = sub(ids)
            rows = torch.tensor(ids)
            if name == "shapley":
                vals, out["n_evals"] = shapley_patches(
                    p,
                    acts,
                    stride,
                    x,
                    int(cfg["shapley_grid"]),
                    int(cfg["shapley_samples"]) + 2,
                    seed,
                )
                vals = torch.nan_to_num(vals.float())
                pair = [
                    vals.gather(3, t[:, :, None, None].expand(*vals.shape[:3], 1))[..., 0]
                    for t in (preds[rows], severed[rows])
                ]
                signed = True
            else:
                pair = [
                    torch.nan_to_num(a)
                    for a in batched_saliency(
                        p, acts, stride, x, [preds[rows], severed[rows]], name, cfg, noise
                    )
                ]
                signed = name != "gradcam"
            tot.append(
                clip_and_normalize(pair[0].flatten(0, 1), signed).reshape(pair[0].shape).half()
            )
            dire.append(
                clip_and_normalize(pair[1].flatten(0, 1), signed).reshape(pair[1].shape).half()
            )
        out["total"][name] = torch.cat(tot)[back]
        out["direct"][name] = torch.cat(dire)[back]
    return out
