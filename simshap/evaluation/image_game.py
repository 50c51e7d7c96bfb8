"""Image accuracy on the game itself: insertion / deletion under the game's own masking.

:func:`game_insertion_deletion` orders each image's superpixels by attribution and evaluates
the game (the surrogate's masking, as ViT-Shapley evaluates) on the top-k coalitions
(insertion) and on their complements (deletion), for k = 0..d. The score is the explained
class's game value (a probability); the AUC is the trapezoid mean over the d + 1 steps.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["game_insertion_deletion"]


def game_insertion_deletion(
    game: Any, attributions: torch.Tensor, target: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Insertion and deletion AUCs of ``(N, d)`` attributions on a game of N images.

    Args:
        game: ``game(masks (N, M, d)) -> (N, M, C)``.
        attributions: ``(N, d)`` attributions of the explained class.
        target: ``(N,)`` explained class.

    Returns:
        ``{"insertion": (N,), "deletion": (N,)}`` AUCs in the game's units.
    """
    n, d = attributions.shape
    order = attributions.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(d).expand(n, d).contiguous())
    steps = torch.arange(d + 1).view(1, d + 1, 1)
    present = rank.unsqueeze(1) < steps  # (N, d + 1, d): the top-k present
    out = {}
    for name, masks in (("insertion", present), ("deletion", ~present)):
        values = game(masks.to(game.device) if hasattr(game, "device") else masks)
        idx = target.to(values.device).long().view(n, 1, 1).expand(n, d + 1, 1)
        curve = values.gather(2, idx).squeeze(2).double().cpu()
        out[name] = torch.trapezoid(curve, dim=1) / d
    return out
