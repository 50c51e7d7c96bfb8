"""Insertion and deletion curves and AUCs over superpixels (Petsiuk et al., 2018).

Superpixels are ranked by attribution (highest first, ties by index). Step ``k`` (0..d) has the
first ``k`` of them "moved": deletion sets them to 0 (the mean after input normalization),
insertion pastes them from the original image into a Gaussian-blurred copy. The curves are the
model's score for the target class at every step; the AUC is the trapezoid rule over ``k / d``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from simshap.players import Players

__all__ = [
    "InsertionDeletionResult",
    "insertion_deletion",
    "insertion_deletion_all",
    "stable_mask",
    "superpixel_order",
]

#: paper-normalization denominators below this (in logits) are reported as unstable
DENOMINATOR_EPS = 0.5

_NORMALIZATIONS = ("paper", "prob")


@dataclass
class InsertionDeletionResult:
    """Per-image insertion / deletion results (all tensors on the images' device).

    Attributes:
        insertion_auc: ``(N,)`` area under the insertion curve (higher is better).
        deletion_auc: ``(N,)`` area under the deletion curve (lower is better).
        insertion_curve: ``(N, d + 1)`` score after inserting the first k superpixels.
        deletion_curve: ``(N, d + 1)`` score after deleting the first k superpixels.
        target: ``(N,)`` class whose score was tracked.
        normalize: the normalization used (``"paper"`` or ``"prob"``).
        denominator: ``(N,)`` the paper normalization's smaller denominator per image,
            ``min(f_x - f_blur, f_x - f_0)`` in logits (``None`` for ``"prob"``). Where it is
            small or negative, the normalized AUCs explode or flip sign: see :func:`stable_mask`.

    """

    insertion_auc: torch.Tensor
    deletion_auc: torch.Tensor
    insertion_curve: torch.Tensor
    deletion_curve: torch.Tensor
    target: torch.Tensor
    normalize: str
    denominator: torch.Tensor | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return asdict(self)


def superpixel_order(attributions: torch.Tensor) -> torch.Tensor:
    """Rank superpixels by attribution: highest first, ties broken by the lower index.

    Args:
        attributions: ``(N, h, w)`` or ``(N, d)`` attributions.

    Returns:
        ``(N, d)`` long tensor: the superpixel indices (row-major on the grid) in removal order.

    """
    flat = attributions.reshape(attributions.shape[0], -1)
    return torch.argsort(flat, dim=1, descending=True, stable=True)


def insertion_deletion(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    attributions: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
    superpixel_size: int = 2,
    normalize: str = "paper",
    batch_size: int = 1024,
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
) -> InsertionDeletionResult:
    """Compute insertion and deletion curves and AUCs of superpixel attributions.

    All ``d + 1`` steps of both curves for all images are evaluated in forward passes of at most
    ``batch_size`` rows; the perturbed images are built on the fly on the images' device, so
    memory stays bounded by ``batch_size``. An ``nn.Module`` in training mode is switched to eval
    mode for the evaluation (and back afterwards) so that BatchNorm does not mix the rows.

    Scores: with ``normalize="paper"`` the target logit ``f`` is rescaled per image as
    ``ins_k = (f_k - f_blur) / (f_x - f_blur)`` and ``del_k = (f_k - f_zero) / (f_x - f_zero)``
    (``f_x``: full image, ``f_blur``: blurred image, ``f_zero``: all-zero image, taken from the
    curves' end points), so both curves run between 0 and 1 at their ends. Images whose
    denominator is 0 get NaN curves and AUCs (with a warning). With ``normalize="prob"`` the
    score is the unnormalized softmax probability of the target.

    Args:
        model: ``model(x) -> (N, C)`` logits, on the images' device.
        images: ``(N, C, H, W)`` model inputs (already normalized).
        attributions: ``(N, H / superpixel_size, W / superpixel_size)`` superpixel attributions.
        target: class to track: ``None`` (the model's prediction on the full image), an int for
            every image, or an ``(N,)`` integer tensor.
        superpixel_size: side of a superpixel in pixels.
        normalize: ``"paper"`` (normalized logits) or ``"prob"`` (softmax probability).
        batch_size: most rows per forward pass.
        blur_kernel_size: kernel size of the insertion start's Gaussian blur.
        blur_sigma: sigma of the insertion start's Gaussian blur.

    Returns:
        InsertionDeletionResult with ``(N,)`` AUCs and ``(N, d + 1)`` curves.

    Raises:
        ValueError: on mismatched shapes, non-finite inputs, an unknown normalization or a
            target out of range.

    """
    return insertion_deletion_all(
        model,
        images,
        attributions,
        target=target,
        superpixel_size=superpixel_size,
        normalize=(normalize,),
        batch_size=batch_size,
        blur_kernel_size=blur_kernel_size,
        blur_sigma=blur_sigma,
    )[normalize]


def insertion_deletion_all(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    attributions: torch.Tensor,
    *,
    target: int | torch.Tensor | None = None,
    superpixel_size: int = 2,
    normalize: tuple[str, ...] = ("paper", "prob"),
    batch_size: int = 1024,
    blur_kernel_size: int = 11,
    blur_sigma: float = 5.0,
) -> dict[str, InsertionDeletionResult]:
    """:func:`insertion_deletion` in several normalizations from one set of forward passes.

    Every curve step is evaluated once; the target logit and its softmax probability are both
    read from the same outputs. Arguments as in :func:`insertion_deletion`, except
    ``normalize``: the normalizations wanted.

    Returns:
        ``{normalization: InsertionDeletionResult}``.
    """
    groups, target_given = None, None
    for norm in normalize:
        groups, target_given = _check_inputs(
            images, attributions, target, superpixel_size, norm, batch_size
        )
    if groups is None:
        raise ValueError("normalize must name at least one normalization ('paper', 'prob')")
    n, d = images.shape[0], groups.num_players
    device = images.device
    attributions = attributions.to(device)
    restore = isinstance(model, nn.Module) and model.training
    if restore:
        model.eval()
    try:
        with torch.no_grad():
            blurred = gaussian_blur(images, kernel_size=blur_kernel_size, sigma=blur_sigma)
            if target_given is None:
                tgt = _forward(model, images, batch_size, n).argmax(dim=1)
            else:
                tgt = target_given.to(device)
            order = superpixel_order(attributions)
            # rank[i, j]: position of superpixel j in image i's order; step k moves rank < k
            rank = torch.empty_like(order)
            rank.scatter_(1, order, torch.arange(d, device=device).expand(n, d))
            raw = _curves(model, images, blurred, rank, tgt, groups, batch_size)
    finally:
        if restore:
            model.train()
    out = {}
    dx = 1.0 / d
    for norm in normalize:
        ins, dele = raw["prob" if norm == "prob" else "logit"]
        denominator = None
        if norm == "paper":
            # f_x - f_blur and f_x - f_0 (signed: a negative one flips the AUC's sign)
            denominator = torch.minimum(ins[:, -1] - ins[:, 0], dele[:, 0] - dele[:, -1])
            ins, dele = _paper_normalize(ins, dele)
        out[norm] = InsertionDeletionResult(
            insertion_auc=torch.trapezoid(ins, dx=dx, dim=1),
            deletion_auc=torch.trapezoid(dele, dx=dx, dim=1),
            insertion_curve=ins,
            deletion_curve=dele,
            target=tgt,
            normalize=norm,
            denominator=denominator,
        )
    return out


def stable_mask(result: InsertionDeletionResult, eps: float = DENOMINATOR_EPS) -> torch.Tensor:
    """``(N,)`` bool: images whose paper-normalization denominators are both at least ``eps``.

    With ``f_x - f_blur`` or ``f_x - f_0`` near zero or negative, the normalized curves are
    divided by almost nothing and the AUCs explode or flip sign; report means with and without
    those images, and the probability AUCs as the primary figure.
    """
    if result.denominator is None:
        return torch.ones_like(result.insertion_auc, dtype=torch.bool)
    finite = torch.isfinite(result.insertion_auc) & torch.isfinite(result.deletion_auc)
    return finite & (result.denominator >= eps)


def _curves(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    blurred: torch.Tensor,
    rank: torch.Tensor,
    target: torch.Tensor,
    groups: Players,
    batch_size: int,
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Raw insertion and deletion scores ``(N, d + 1)``: ``{"logit": ..., "prob": ...}``."""
    n, d = rank.shape
    steps = d + 1
    device = images.device
    total = n * steps
    per_pass = max(1, batch_size // 2)  # each (image, step) costs an insertion and a deletion row
    scores: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for start in range(0, total, per_pass):
        idx = torch.arange(start, min(start + per_pass, total), device=device)
        img, k = idx // steps, idx % steps
        moved = groups.feature_mask(rank[img] < k.unsqueeze(1))  # (m, 1, H, W)
        x = images[img]
        rows = torch.cat([torch.where(moved, x, blurred[img]), torch.where(moved, 0.0, x)])
        out = model(rows)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != rows.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"model must return (N, C) logits for N={rows.shape[0]} rows, got {got}"
            )
        if start == 0 and int(target.max()) >= out.shape[1]:
            raise ValueError(
                f"target class {int(target.max())} is out of range for a model with "
                f"{out.shape[1]} outputs"
            )
        if not out.is_floating_point() or out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()  # score in at least single precision
        if start == 0:
            scores = {
                kind: (
                    torch.empty(total, device=device, dtype=out.dtype),
                    torch.empty(total, device=device, dtype=out.dtype),
                )
                for kind in ("logit", "prob")
            }
        tgt = target[img].repeat(2).unsqueeze(1)
        m = len(idx)
        for kind, z in (("logit", out), ("prob", out.softmax(dim=1))):
            score = z.gather(1, tgt).squeeze(1)
            scores[kind][0][start : start + m] = score[:m]
            scores[kind][1][start : start + m] = score[m:]
    return {kind: (i.view(n, steps), de.view(n, steps)) for kind, (i, de) in scores.items()}


def _paper_normalize(ins: torch.Tensor, dele: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale raw logit curves to ``(f_k - f_start_of_scale) / (f_x - f_start_of_scale)``."""
    f_blur, f_x_ins = ins[:, :1], ins[:, -1:]
    f_x_del, f_zero = dele[:, :1], dele[:, -1:]
    den_ins, den_del = f_x_ins - f_blur, f_x_del - f_zero
    bad = (den_ins == 0) | (den_del == 0)
    if bool(bad.any()):
        warnings.warn(
            f"{int(bad.sum())} image(s) score the same on the full image as on the blurred or "
            "all-zero image, so the paper normalization is undefined there; their curves and "
            "AUCs are NaN (use torch.nanmean, or normalize='prob')",
            RuntimeWarning,
            stacklevel=3,
        )
    nan = torch.full_like(den_ins, float("nan"))
    ins = (ins - f_blur) / torch.where(den_ins == 0, nan, den_ins)
    dele = (dele - f_zero) / torch.where(den_del == 0, nan, den_del)
    return ins, dele


def _forward(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int, n: int
) -> torch.Tensor:
    outs = [model(x[i : i + batch_size]) for i in range(0, n, batch_size)]
    out = torch.cat(outs)
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(
            f"model must return (N, C) logits for N={n} images, got {tuple(out.shape)}"
        )
    return out


def _check_inputs(
    images: torch.Tensor,
    attributions: torch.Tensor,
    target: int | torch.Tensor | None,
    superpixel_size: int,
    normalize: str,
    batch_size: int,
) -> tuple[Players, torch.Tensor | None]:
    if normalize not in _NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {_NORMALIZATIONS}, got {normalize!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
    if not isinstance(images, torch.Tensor) or not isinstance(attributions, torch.Tensor):
        raise TypeError("images and attributions must be torch tensors")
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float (N, C, H, W) batch of model inputs, got "
            f"{tuple(images.shape)} of dtype {images.dtype}; use x[None] for a single image"
        )
    n, _, h, w = images.shape
    if n == 0:
        raise ValueError("images is empty")
    if isinstance(superpixel_size, bool) or not isinstance(superpixel_size, int):
        raise ValueError(f"superpixel_size must be an int, got {superpixel_size!r}")
    groups = Players.superpixels((h, w), superpixel_size)
    grid = groups.grid
    if tuple(attributions.shape) != (n, *grid):
        raise ValueError(
            f"attributions must have shape (N, h, w) = ({n}, {grid[0]}, {grid[1]}) for {n} "
            f"images of size {h}x{w} and superpixel_size={superpixel_size}, got "
            f"{tuple(attributions.shape)}; select the explained class and reshape to the grid"
        )
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or infinite values")
    if attributions.is_floating_point() and not torch.isfinite(attributions).all():
        raise ValueError(
            "attributions contain NaN or infinite values; the ranking of superpixels is undefined"
        )
    if target is None:
        return groups, None
    tgt = torch.as_tensor(target, device=images.device)
    if tgt.dtype.is_floating_point or tgt.dtype == torch.bool or tgt.is_complex():
        raise ValueError(f"target must hold integer class indices, got dtype {tgt.dtype}")
    if tgt.ndim == 0:
        tgt = tgt.expand(n)
    if tgt.shape != (n,):
        raise ValueError(f"target must be an int or shape ({n},), got {tuple(tgt.shape)}")
    if bool((tgt < 0).any()):
        raise ValueError("target contains negative class indices")
    return groups, tgt.long()
