"""Tiny tabular networks the unit tests share: a surrogate and an explainer spec on d features."""

from __future__ import annotations

import torch

from simshap.amortized.surrogate import Surrogate


def tiny_surrogate(d: int, c: int, hidden: int) -> Surrogate:
    """An untrained MLP surrogate (seeded: the same weights every call), in eval mode."""
    torch.manual_seed(0)
    return Surrogate(
        {"kind": "mlp", "in_features": d, "num_classes": c, "hidden": hidden, "layers": 2},
        {"kind": "identity", "num_features": d},
    ).eval()


def mlp_spec(d: int, c: int, hidden: int) -> dict:
    """The spec of a two-layer MLP explainer on d features and players, c classes."""
    return {
        "kind": "mlp",
        "in_features": d,
        "num_players": d,
        "num_classes": c,
        "hidden": hidden,
        "layers": 2,
    }
