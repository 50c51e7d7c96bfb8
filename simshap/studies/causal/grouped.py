"""Many zoo CNNs as one grouped network: stacked parameters, one forward pass for all models.

The M models' parameters are stacked along a leading model dimension under the keys of
:class:`~simshap.studies.causal.zoo.SmallCNN`'s state dict (``conv1.weight`` of shape ``(M, 16, C,
3, 3)`` and so on). Activations are laid out ``(N, M * 16, H, W)``: channel block m belongs to model
m, so each convolution is one ``conv2d`` call with ``groups=M`` and the dense layer one batched
matmul. Each model keeps its own activation function and its own dropout masks, drawn from its own
generator exactly as :func:`dropout_mask` draws them for a single model, so a model computes the
same function (and, in training, the same updates) alone or in any group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "CONVS",
    "DropoutPlan",
    "GroupOutput",
    "dropout_mask",
    "grouped_forward",
    "single_forward",
    "stack_state_dicts",
    "unstack_state_dict",
    "weight_keys",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "elu": F.elu,
}
CONVS: tuple[str, ...] = ("conv1", "conv2", "conv3")


def weight_keys(params: Mapping[str, torch.Tensor]) -> list[str]:
    """The keys that the L2 penalty acts on (weights, not biases)."""
    return [k for k in params if k.endswith("weight")]


def stack_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack single-model state dicts into ``{key: (M, ...)}``."""
    return {k: torch.stack([s[k].detach() for s in states]) for k in states[0]}


def unstack_state_dict(params: Mapping[str, torch.Tensor], m: int) -> dict[str, torch.Tensor]:
    """Model ``m``'s state dict (copies) from stacked parameters."""
    return {k: v[m].detach().clone() for k, v in params.items()}


def dropout_mask(
    p: float, shape: Sequence[int], generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    """Inverted-dropout multipliers of one model: ``(u >= p) / (1 - p)``, ``u ~ U[0, 1)``.

    ``shape`` is the model's own ``(N, 16, H, W)``; one ``torch.rand`` call per layer and step
    on the model's generator, so grouped and single-model training draw the same masks.
    """
    u = torch.rand(tuple(shape), generator=generator, dtype=dtype)
    return (u >= p).to(dtype) * (1.0 / (1.0 - p))


class DropoutPlan:
    """Training-time dropout of a group: each model's rate and generator.

    Args:
        rates: dropout rate per model (0 draws nothing).
        generators: one generator per model.
    """

    def __init__(self, rates: Sequence[float], generators: Sequence[torch.Generator]) -> None:
        if len(rates) != len(generators):
            raise ValueError("one dropout generator per model")
        self.rates = [float(r) for r in rates]
        self.generators = list(generators)

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        """``h`` ``(N, M * 16, H, W)`` times every model's fresh mask."""
        if not any(self.rates):
            return h
        n, mc, hh, ww = h.shape
        m = len(self.rates)
        c = mc // m
        mask = torch.ones(n, hh, ww, m, c, dtype=h.dtype)  # channels-last, as h
        for k, (p, g) in enumerate(zip(self.rates, self.generators, strict=True)):
            if p > 0:
                mask[:, :, :, k] = dropout_mask(p, (n, c, hh, ww), g, h.dtype).permute(0, 2, 3, 1)
        return h * mask.reshape(n, hh, ww, mc).permute(0, 3, 1, 2)


_IN_PLACE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu_,
    "tanh": torch.tanh_,
    "elu": lambda t: F.elu(t, inplace=True),
}


def _activate(h: torch.Tensor, activations: Sequence[str]) -> torch.Tensor:
    """Each model's activation on its channel block; runs of equal names share one call.

    Without autograd (scoring, Shapley games) the activations run in place on the runs' slices.
    """
    m = len(activations)
    c = h.shape[1] // m
    runs: list[tuple[str, int, int]] = []
    for k, name in enumerate(activations):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], k + 1)
        else:
            runs.append((name, k, k + 1))
    if not torch.is_grad_enabled():
        for name, a, b in runs:
            _IN_PLACE[name](h[:, a * c : b * c])
        return h
    if len(runs) == 1:
        return ACTIVATIONS[runs[0][0]](h)
    return torch.cat([ACTIVATIONS[name](h[:, a * c : b * c]) for name, a, b in runs], dim=1)


class GroupOutput:
    """Logits of a group, and optionally the last convolution's output (for Grad-CAM).

    Attributes:
        logits: ``(M, N, C)``.
        conv3: ``(N, M * 16, h, w)`` pre-activation output of ``conv3`` or None.
    """

    def __init__(self, logits: torch.Tensor, conv3: torch.Tensor | None) -> None:
        self.logits, self.conv3 = logits, conv3


def grouped_forward(
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    activations: Sequence[str],
    stride: int,
    dropout: DropoutPlan | None = None,
    keep_conv3: bool = False,
) -> GroupOutput:
    """Forward pass of M stacked models (the computation of ``SmallCNN.forward``).

    Args:
        params: stacked parameters (see the module docstring).
        x: ``(M, N, C, H, W)`` one batch per model, or ``(N, M * C, H, W)`` already laid out
            (e.g. shared images repeated with ``x.repeat(1, M, 1, 1)``).
        activations: activation name per model.
        stride: convolution stride.
        dropout: training-time dropout (None: eval mode).
        keep_conv3: also return ``conv3``'s output (it stays in the autograd graph).

    Returns:
        :class:`GroupOutput` with logits ``(M, N, classes)``.
    """
    m = params["conv1.weight"].shape[0]
    if len(activations) != m:
        raise ValueError(f"{len(activations)} activations for {m} models")
    if x.dim() == 5:
        h = x.transpose(0, 1).reshape(x.shape[1], m * x.shape[2], *x.shape[3:])
    else:
        h = x
    h = h.contiguous(memory_format=torch.channels_last)  # ~10% faster grouped convs on CPU
    conv3 = None
    for name in CONVS:
        w = params[f"{name}.weight"]
        h = F.conv2d(
            h,
            w.reshape(m * w.shape[1], *w.shape[2:]),
            params[f"{name}.bias"].reshape(-1),
            stride=stride,
            padding=1,
            groups=m,
        )
        if name == "conv3" and keep_conv3:
            conv3 = h
        h = _activate(h, activations)
        if dropout is not None:
            h = dropout.apply(h)
    n = h.shape[0]
    pooled = h.mean(dim=(2, 3)).reshape(n, m, -1).transpose(0, 1)  # (M, N, 16)
    logits = torch.baddbmm(
        params["fc.bias"][:, None, :], pooled, params["fc.weight"].transpose(1, 2)
    )
    return GroupOutput(logits, conv3)


def single_forward(
    model: nn.Module, x: torch.Tensor, activation: str, dropout: tuple[float, torch.Generator]
) -> torch.Tensor:
    """One model's training forward with :func:`dropout_mask` (the grouped pass's reference).

    Args:
        model: a ``SmallCNN``.
        x: ``(N, C, H, W)``.
        activation: activation name.
        dropout: (rate, generator).
    """
    p, gen = dropout
    h = x
    for name in CONVS:
        h = ACTIVATIONS[activation](getattr(model, name)(h))
        if p > 0:
            h = h * dropout_mask(p, h.shape, gen, h.dtype)
    return model.fc(h.mean(dim=(2, 3)))
