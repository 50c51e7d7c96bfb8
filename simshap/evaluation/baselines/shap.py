"""Shapley baselines on superpixels: shap's KernelExplainer, our batched KernelSHAP, DeepSHAP.

Each returns :class:`~simshap.ShapleyValues` with values ``(N, d, 1)`` for the explained class
(``.target``) on the superpixel grid. ``budget=`` counts game evaluations per image, v(∅) and
v(N) included, as in every estimator. ``method`` names the implementation; DeepSHAP's fallback
reason is in ``extras["fallback_reason"]``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from simshap.errors import UserError
from simshap.estimators.kernel import kernel_shap
from simshap.evaluation.baselines.common import (
    baseline_result,
    check_images,
    eval_mode,
    resolve_target,
    sample_count,
    to_superpixels,
)
from simshap.games.values import MaskedModelGame
from simshap.players import Players
from simshap.results import ShapleyValues

__all__ = ["kernelshap", "kernelshap_surrogate", "deepshap"]

Model = Callable[[torch.Tensor], torch.Tensor]


def _budget(fn: str, budget: int | None, d: int) -> int:
    """Evaluations per image (default: shap's 2d + 2048, plus v(∅) and v(N))."""
    budget = 2 * d + 2048 + 2 if budget is None else budget
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 3:
        raise UserError(f"{fn}: budget must be an integer >= 3 evaluations, got {budget!r}")
    return budget


def kernelshap(
    model: Model,
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    budget: int | None = None,
    baseline: float = 0.0,
    l1_reg: Any = False,
    batch_size: int = 1024,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> ShapleyValues:
    """KernelSHAP over the superpixels of the original model (``shap.KernelExplainer``).

    Each image is its own explanation problem: players are the ``d`` superpixels, a coalition
    keeps its superpixels and sets the others to ``baseline`` (0 = the normalized data mean),
    and the value is the target logit. shap gets ``nsamples = budget - 2``.

    Args:
        model: ``model(x) -> (N, C)`` logits.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        budget: evaluations per image, v(∅) and v(N) included (default: shap's 2d + 2048 + 2).
        baseline: value of removed superpixels.
        l1_reg: shap's ``l1_reg`` (default ``False``: plain KernelSHAP on all players).
        batch_size: rows per model call.
        seed: seeds numpy's RNG for shap's sampling (the global state is restored).
        superpixel_size: side of a superpixel.
    """
    import shap

    players = check_images(images, superpixel_size)
    d = players.num_players
    budget = _budget("kernelshap", budget, d)
    out, base_values = [], []
    np_state = np.random.get_state()
    if seed is not None:
        np.random.seed(seed)
    try:
        with eval_mode(model):
            tgt = resolve_target(model, images, target)
            for i in range(images.shape[0]):
                value = _superpixel_value_fn(
                    model, images[i], int(tgt[i]), players, baseline, batch_size
                )
                explainer = shap.KernelExplainer(value, np.zeros((1, d)))
                sv = explainer.shap_values(
                    np.ones((1, d)), nsamples=budget - 2, l1_reg=l1_reg, silent=True
                )
                out.append(np.asarray(sv, dtype=np.float64).reshape(d))
                base_values.append(float(np.asarray(explainer.expected_value).reshape(-1)[0]))
    finally:
        np.random.set_state(np_state)
    values = torch.as_tensor(np.stack(out), dtype=images.dtype, device=images.device)
    return baseline_result(
        values.view(-1, *players.grid),
        tgt,
        "shap.KernelExplainer",
        n_evals=min(budget, 2**d) if d < 63 else budget,
        base_values=torch.tensor(base_values),
        name="kernelshap",
    )


def _superpixel_value_fn(
    model: Model,
    image: torch.Tensor,
    target: int,
    players: Players,
    baseline: float,
    batch_size: int,
) -> Callable[[np.ndarray], np.ndarray]:
    """v(z) for shap: binary coalitions ``(n, d)`` -> target logits ``(n,)`` of masked images."""

    def value(z: np.ndarray) -> np.ndarray:
        masks = torch.as_tensor(np.asarray(z) > 0.5, device=image.device)
        parts = []
        with torch.no_grad():
            for j in range(0, masks.shape[0], batch_size):
                fmask = players.feature_mask(masks[j : j + batch_size])
                x = torch.where(fmask, image.unsqueeze(0), baseline)
                parts.append(model(x)[:, target].double().cpu())
        return torch.cat(parts).numpy()

    return value


def kernelshap_surrogate(
    surrogate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    target: int | torch.Tensor | None = None,
    *,
    budget: int | None = None,
    threshold: float | None = None,
    paired: bool = True,
    sampling: str = "kernel",
    output_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 4096,
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> ShapleyValues:
    """KernelSHAP-S: our batched ``kernel_shap`` on the surrogate's superpixel game.

    The game is ``MaskedModelGame(surrogate, images, Players.superpixels(...))``: a coalition is
    evaluated as ``surrogate(x, m)`` with ``m`` the bool ``(N, 1, H, W)`` pixel mask. All images
    are estimated together; the values are efficient (they sum to v(N) - v(∅)).

    Args:
        surrogate: any callable ``surrogate(x, mask) -> (N, C)``.
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain; pass the original model's predicted classes (default: the
            surrogate's prediction on the full image).
        budget: evaluations per image, v(∅) and v(N) included (default 2d + 2048 + 2).
        threshold: convergence mode instead of a budget (e.g. 0.01, the ground-truth setting).
        paired: paired sampling.
        sampling: ``"kernel"`` or ``"leverage"`` (see :func:`simshap.games.kernel_shap`).
        output_transform: map on the surrogate's output, e.g. ``lambda z: z.softmax(-1)``.
        batch_size: rows per surrogate call.
        seed: seeds the coalition sampler (``None``: unseeded).
        superpixel_size: side of a superpixel.
    """
    players = check_images(images, superpixel_size)
    budget = _budget("kernelshap_surrogate", budget, players.num_players)
    game = MaskedModelGame(
        surrogate, images, groups=players, batch_size=batch_size, output_transform=output_transform
    )
    with eval_mode(surrogate), torch.no_grad():
        if target is None:
            _, full = game.empty_and_full()
            tgt = full.argmax(dim=1)
        else:
            tgt = resolve_target(surrogate, images, target)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=images.device).manual_seed(seed)
        est = kernel_shap(
            game,
            budget=budget,
            paired=paired,
            threshold=threshold,
            sampling=sampling,
            generator=generator,
        )
    rows = torch.arange(images.shape[0], device=images.device)
    grid = players.grid
    std = None if est.std is None else est.std[rows, :, tgt].view(-1, *grid)
    return baseline_result(
        est.values[rows, :, tgt].view(-1, *grid),
        tgt,
        "simshap.games.kernel_shap",
        n_evals=est.n_evals,
        base_values=est.base_values[rows, tgt],
        std=std,
        name="kernelshap_s",
    )


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
    budget: int | None = None,
    background: torch.Tensor | None = None,
    explainer: str = "auto",
    seed: int | None = 0,
    superpixel_size: int = 2,
) -> ShapleyValues:
    """DeepSHAP with ``shap.DeepExplainer``, or ``shap.GradientExplainer`` where it fails.

    simshap's ResNet-18 uses :class:`~simshap.models.resnet.DeepLiftBasicBlock` (no in-place
    operations), so shap's DeepExplainer runs on it. On a model where it fails (torchvision's
    own ResNet: in-place ``out += identity`` and a reused ReLU), ``explainer="auto"`` falls back
    to shap's GradientExplainer (expected gradients over the same background) and says so:
    ``method`` names the implementation used and ``extras["fallback_reason"]`` the failure, and
    the results table labels the row a fallback.

    Args:
        model: the classifier (an ``nn.Module``).
        images: ``(N, C, H, W)`` model inputs.
        target: classes to explain (default: predicted).
        budget: GradientExplainer's samples per image (model passes; default 200).
        background: ``(K, C, H, W)`` reference images (default: one all-zero image).
        explainer: ``"auto"`` (Deep, else Gradient), ``"deep"`` or ``"gradient"``.
        seed: seeds GradientExplainer's sampling.
        superpixel_size: side of a superpixel.
    """
    import shap

    if explainer not in ("auto", "deep", "gradient"):
        raise UserError(f"explainer must be 'auto', 'deep' or 'gradient', got {explainer!r}")
    if not isinstance(model, nn.Module):
        raise UserError(f"deepshap needs a torch nn.Module, got {type(model).__name__}")
    check_images(images, superpixel_size)
    samples = sample_count("deepshap", budget, 200)
    if background is None:
        background = torch.zeros_like(images[:1])
    if background.ndim != 4 or background.shape[1:] != images.shape[1:]:
        raise UserError(
            f"background must be (K, {', '.join(map(str, images.shape[1:]))}), got "
            f"{tuple(background.shape)}"
        )
    background = background.to(device=images.device, dtype=images.dtype)
    reason = None
    with eval_mode(model):
        tgt = resolve_target(model, images, target)
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
                used, n_evals = "shap.DeepExplainer", background.shape[0]
            except Exception as err:  # shap raises many types; the fallback reports it
                if explainer == "deep":
                    raise RuntimeError(
                        f"shap.DeepExplainer cannot explain {type(model).__name__}: {err}; use "
                        "explainer='gradient' (or 'auto')"
                    ) from err
                reason = f"shap.DeepExplainer failed: {type(err).__name__}: {str(err)[:160]}"
        if attr is None:
            attr = _shap_per_class(
                lambda m: shap.GradientExplainer(m, background),
                lambda e, x: e.shap_values(x, nsamples=samples, rseed=seed),
                model,
                images,
                tgt,
            )
            used, n_evals = "shap.GradientExplainer", samples
    return baseline_result(
        to_superpixels(attr, superpixel_size),
        tgt,
        used,
        n_evals=n_evals,
        fallback_reason=reason,
        name="deepshap",
    )


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
