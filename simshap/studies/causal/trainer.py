"""Batched training of zoo models: groups of CNNs trained in one grouped network per step.

Every model has its own seed and three generators drawn from it (initialization, mini-batch
order, dropout masks), its own hyperparameters (optimizer, learning rate, initialization, L2,
dropout, activation, train fraction) and its own mini-batches. Nothing random is shared between
the models of a group, so a model trained in any group equals the same model trained alone by
:func:`train_single` (plain PyTorch modules and torch.optim), up to float rounding.

A model with train fraction f trains on the first ``round(f * n_train)`` training images for
``epochs`` epochs of ``n // batch_size`` mini-batches (a fresh permutation per epoch; the
remainder of an epoch's permutation is skipped). Models that share a train fraction take the
same number of steps, so groups are formed within a train fraction (and activation).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from simshap.studies.causal.grouped import (
    DropoutPlan,
    grouped_forward,
    single_forward,
    stack_state_dicts,
    weight_keys,
)
from simshap.studies.causal.optim import OPTIMIZERS, StackedOptimizer, single_optimizer
from simshap.studies.causal.zoo import SmallCNN, build_model

__all__ = [
    "GroupResult",
    "TrainSettings",
    "grouped_accuracy",
    "model_generators",
    "plan_groups",
    "train_group",
    "train_models",
    "train_single",
]


@dataclass(frozen=True)
class TrainSettings:
    """What every model of a zoo shares: epochs, mini-batch size, convolution stride."""

    epochs: int
    batch_size: int
    stride: int


@dataclass
class GroupResult:
    """Trained models of a group.

    Attributes:
        params: stacked parameters ``{key: (M, ...)}``, in the order the models were given.
        val_curve: ``(epochs, M)`` validation accuracy after each epoch, or None.
        seconds: wall seconds of the training.
    """

    params: dict[str, torch.Tensor]
    val_curve: torch.Tensor | None
    seconds: float


def model_generators(seed: int) -> tuple[torch.Generator, torch.Generator, torch.Generator]:
    """A model's generators for initialization, mini-batch order and dropout (seeds 3s+0..2)."""
    return tuple(torch.Generator().manual_seed(3 * int(seed) + j) for j in range(3))  # type: ignore[return-value]


def _subset(n_train: int, hp: Mapping[str, Any], batch_size: int) -> tuple[int, int, int]:
    """(training images, mini-batch size, steps per epoch) of a model."""
    n = max(1, int(round(float(hp["train_fraction"]) * n_train)))
    b = min(batch_size, n)
    return n, b, n // b


@torch.no_grad()
def grouped_accuracy(
    params: Mapping[str, torch.Tensor],
    activations: Sequence[str],
    stride: int,
    x: torch.Tensor,
    y: torch.Tensor,
    max_rows: int = 16384,
) -> torch.Tensor:
    """Top-1 accuracy ``(M,)`` of stacked models on shared images (non-finite logits: wrong).

    ``max_rows`` bounds images times models per forward pass (memory).
    """
    m = len(activations)
    batch_size = max(1, max_rows // m)
    correct = torch.zeros(m, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        logits = grouped_forward(params, xb.repeat(1, m, 1, 1), activations, stride).logits
        pred = torch.where(torch.isfinite(logits).all(-1), logits.argmax(-1), -1)
        correct += (pred == y[i : i + batch_size]).sum(1)
    return correct.double() / len(x)


def train_group(
    hps: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    settings: TrainSettings,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> GroupResult:
    """Train models that share a train fraction together, one grouped step per mini-batch.

    Args:
        hps: hyperparameter values per model (the same ``train_fraction``).
        seeds: seed per model.
        x_train: training images ``(N, C, H, W)``; model k uses the first
            ``round(train_fraction * N)``.
        y_train: labels.
        settings: epochs, batch size, stride.
        val: optional validation images and labels, scored after every epoch.

    Returns:
        :class:`GroupResult`.

    Raises:
        ValueError: models with different train fractions, or mismatched lengths.
    """
    if len(hps) != len(seeds) or not hps:
        raise ValueError("give one seed per model and at least one model")
    if len({float(hp["train_fraction"]) for hp in hps}) != 1:
        raise ValueError("a group's models must share the train fraction (the same step count)")
    t0 = time.perf_counter()
    order = sorted(range(len(hps)), key=lambda k: OPTIMIZERS.index(hps[k]["optimizer"]))
    hps = [hps[k] for k in order]
    gens = [model_generators(seeds[k]) for k in order]
    models = [build_model(hp, settings.stride, g[0]) for hp, g in zip(hps, gens, strict=True)]
    params = {
        k: v.clone().requires_grad_(True)
        for k, v in stack_state_dicts([m.state_dict() for m in models]).items()
    }
    acts = [hp["activation"] for hp in hps]
    l2 = torch.tensor([float(hp["l2"]) for hp in hps], dtype=x_train.dtype)
    opt = StackedOptimizer(
        params, [hp["optimizer"] for hp in hps], [float(hp["learning_rate"]) for hp in hps]
    )
    plan = DropoutPlan([float(hp["dropout"]) for hp in hps], [g[2] for g in gens])
    n, b, steps = _subset(len(x_train), hps[0], settings.batch_size)
    curve = []
    wkeys = weight_keys(params)
    for _ in range(settings.epochs):
        perms = torch.stack([torch.randperm(n, generator=g[1]) for g in gens])  # (M, n)
        for i in range(steps):
            idx = perms[:, i * b : (i + 1) * b]
            logits = grouped_forward(params, x_train[idx], acts, settings.stride, plan).logits
            ce = (
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y_train[idx].reshape(-1), reduction="none"
                )
                .reshape(len(hps), b)
                .mean(1)
            )
            penalty = sum((params[k] ** 2).flatten(1).sum(1) for k in wkeys)
            loss = (ce + l2 * penalty).sum()
            grads = torch.autograd.grad(loss, list(params.values()))
            opt.step(params, dict(zip(params, grads, strict=True)))
        if val is not None:
            curve.append(grouped_accuracy(params, acts, settings.stride, *val))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    out = {k: v.detach()[inverse].clone() for k, v in params.items()}
    val_curve = torch.stack(curve)[:, inverse] if curve else None
    return GroupResult(out, val_curve, time.perf_counter() - t0)


def train_single(
    hp: Mapping[str, Any],
    seed: int,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    settings: TrainSettings,
) -> SmallCNN:
    """The reference: one model, ``nn.Module`` layers and a torch.optim optimizer.

    Draws the same mini-batches and dropout masks from the same generators as
    :func:`train_group`, so both give the same model up to float rounding.
    """
    g_init, g_data, g_drop = model_generators(seed)
    model = build_model(hp, settings.stride, g_init)
    model.train()
    opt = single_optimizer(hp["optimizer"], model.parameters(), float(hp["learning_rate"]))
    n, b, steps = _subset(len(x_train), hp, settings.batch_size)
    p, l2 = float(hp["dropout"]), float(hp["l2"])
    for _ in range(settings.epochs):
        perm = torch.randperm(n, generator=g_data)
        for i in range(steps):
            idx = perm[i * b : (i + 1) * b]
            logits = single_forward(model, x_train[idx], hp["activation"], (p, g_drop))
            penalty = sum((w**2).sum() for k, w in model.named_parameters() if k.endswith("weight"))
            loss = F.cross_entropy(logits, y_train[idx]) + l2 * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def plan_groups(hps: Sequence[Mapping[str, Any]], group_size: int) -> list[list[int]]:
    """Groups of at most ``group_size`` model positions sharing train fraction and activation."""
    classes: dict[tuple[float, str], list[int]] = {}
    for k, hp in enumerate(hps):
        classes.setdefault((float(hp["train_fraction"]), str(hp["activation"])), []).append(k)
    groups = []
    for key in sorted(classes):
        members = sorted(classes[key], key=lambda k: (OPTIMIZERS.index(hps[k]["optimizer"]), k))
        groups += [members[i : i + group_size] for i in range(0, len(members), group_size)]
    return groups


def train_models(
    hps: Sequence[Mapping[str, Any]],
    seeds: Sequence[int],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    settings: TrainSettings,
    group_size: int = 8,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> GroupResult:
    """Train any set of models in groups (:func:`plan_groups`); results in the given order."""
    t0 = time.perf_counter()
    parts: list[tuple[list[int], GroupResult]] = []
    for members in plan_groups(hps, group_size):
        res = train_group(
            [hps[k] for k in members], [seeds[k] for k in members], x_train, y_train, settings, val
        )
        parts.append((members, res))
    where = torch.tensor([k for members, _ in parts for k in members])
    inverse = torch.empty_like(where)
    inverse[where] = torch.arange(len(where))
    params = {k: torch.cat([r.params[k] for _, r in parts])[inverse] for k in parts[0][1].params}
    curve = None
    if val is not None:
        curve = torch.cat([r.val_curve for _, r in parts], dim=1)[:, inverse]  # type: ignore[misc]
    return GroupResult(params, curve, time.perf_counter() - t0)
