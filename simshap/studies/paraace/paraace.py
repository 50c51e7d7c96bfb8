"""The ParaACE model (Eq. 5), its parameter count, and the over-parameterized teacher.

ParaACE:  h(x) = β0 + Σ_i β_i s_i(x_i) + Σ_r β_{p+r} r_r(x_{I_r})  [+ fix-up block]

* main-effect subnets s_i: 1-50-8-1 ReLU networks with a linear output, one per feature;
* pair subnets r_r: 2-50-8-1, one per detected pair I_r;
* the optional fix-up layer is a one-layer residual block of 15 units on the vector z of all
  p + R subnet outputs: h(x) = β0 + βᵀz + vᵀ ReLU(U z + c), so the linear path is Eq. (5)
  itself and the block learns a correction on top (the paper's "single layer ResNet").

All subnets of one kind are evaluated together with batched matrix products (one weight tensor
per layer with a leading subnet axis), so R pairs cost three ``bmm`` calls, not 3R layers.
Weights use Kaiming-uniform initialization per subnet (fan-in of the subnet's layer).

The paper (supplement H) tunes the fix-up layer and the transformation layer alternately; here
both are trained jointly by one Adam optimizer (the fix-up block's residual form keeps Eq. (5)
as its linear path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from simshap.errors import UserError

__all__ = [
    "PAPER_TEACHER_HIDDEN",
    "ParaACE",
    "Standardized",
    "SubnetBank",
    "count_parameters",
    "paraace_num_parameters",
    "subnet_num_parameters",
    "teacher_mlp",
    "teacher_num_parameters",
]

SUBNET_HIDDEN: tuple[int, int] = (50, 8)
FIXUP_UNITS = 15
PAPER_TEACHER_HIDDEN: tuple[int, ...] = (5000, 900, 400, 100, 30)


def subnet_num_parameters(in_features: int, hidden: Sequence[int] = SUBNET_HIDDEN) -> int:
    """Weights and biases of one ``in-50-8-1`` subnet: 517 for 1 input, 567 for 2."""
    widths = [in_features, *hidden, 1]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


def paraace_num_parameters(p: int, n_pairs: int, fixup: bool = True) -> int:
    """Parameter count of :class:`ParaACE` by formula.

    p · P(1) + R · P(2) + (p + R + 1)  [+ 15 (p + R) + 15 + 15 with the fix-up block], where
    P(d) = (50 d + 50) + (50 · 8 + 8) + (8 + 1) is the size of a d-input subnet.
    """
    q = p + n_pairs
    total = p * subnet_num_parameters(1) + n_pairs * subnet_num_parameters(2) + q + 1
    if fixup:
        total += FIXUP_UNITS * q + FIXUP_UNITS + FIXUP_UNITS
    return total


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of a module."""
    return sum(t.numel() for t in module.parameters() if t.requires_grad)


class SubnetBank(nn.Module):
    """G independent ``d-50-8-1`` ReLU subnets evaluated together.

    Args:
        groups: ``(G, d)`` input feature indices of each subnet.
        hidden: hidden widths (default 50, 8).
    """

    def __init__(self, groups: torch.Tensor, hidden: Sequence[int] = SUBNET_HIDDEN) -> None:
        super().__init__()
        self.register_buffer("groups", groups.long())
        g, d = groups.shape
        widths = [d, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            bound = 1.0 / math.sqrt(a)
            w = torch.empty(g, a, b).uniform_(-math.sqrt(6.0 / a), math.sqrt(6.0 / a))  # Kaiming
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(g, 1, b).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, p) -> (N, G)`` outputs of every subnet."""
        h = x[:, self.groups].permute(1, 0, 2)  # (G, N, d)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h.squeeze(-1).transpose(0, 1)


class ParaACE(nn.Module):
    """Parametric ACE on p features with main-effect and pair subnets (Eq. 5).

    Args:
        num_features: p.
        pairs: the R interaction pairs I_r (0-indexed).
        fixup: add the 15-unit residual fix-up block.
    """

    def __init__(
        self, num_features: int, pairs: Sequence[Sequence[int]], fixup: bool = True
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise UserError(f"num_features must be positive, got {num_features}")
        pairs_t = torch.as_tensor([list(map(int, pr)) for pr in pairs], dtype=torch.long)
        pairs_t = pairs_t.reshape(-1, 2)
        if len(pairs_t) and (pairs_t.min() < 0 or pairs_t.max() >= num_features):
            raise UserError(f"pairs must index features 0..{num_features - 1}")
        if len(pairs_t) and (pairs_t[:, 0] == pairs_t[:, 1]).any():
            raise UserError("a pair must join two different features")
        self.num_features = num_features
        self.pairs = [tuple(pr) for pr in pairs_t.tolist()]
        self.mains = SubnetBank(torch.arange(num_features).unsqueeze(1))
        self.pair_nets = SubnetBank(pairs_t) if len(pairs_t) else None
        q = num_features + len(pairs_t)
        self.beta = nn.Linear(q, 1)  # β0 (bias) and β
        self.fixup: nn.Module | None = None
        if fixup:
            self.fixup = nn.Sequential(
                nn.Linear(q, FIXUP_UNITS), nn.ReLU(), nn.Linear(FIXUP_UNITS, 1, bias=False)
            )

    def transforms(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, p + R)`` outputs z of every main-effect and pair subnet."""
        z = self.mains(x)
        if self.pair_nets is not None:
            z = torch.cat([z, self.pair_nets(x)], dim=1)
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, p) -> (N, 1)``."""
        z = self.transforms(x)
        out = self.beta(z)
        if self.fixup is not None:
            out = out + self.fixup(z)
        return out


def teacher_mlp(num_features: int, hidden: Sequence[int] = PAPER_TEACHER_HIDDEN) -> nn.Sequential:
    """The OverparaFC teacher: ReLU MLP ``p-hidden…-1`` whose last hidden layer is linear.

    The paper's teacher is ``p-5000-900-400-100-30-1`` (:data:`PAPER_TEACHER_HIDDEN`).
    """
    if not hidden or min(hidden) < 1:
        raise UserError(f"teacher hidden widths must be positive, got {list(hidden)}")
    widths = [num_features, *hidden, 1]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        mods.append(nn.Linear(a, b))
        if i < len(hidden) - 1:  # no activation after the last hidden layer
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def teacher_num_parameters(num_features: int, hidden: Sequence[int] = PAPER_TEACHER_HIDDEN) -> int:
    """Parameters of :func:`teacher_mlp` (4,959,461 for the paper's teacher at p = 10)."""
    widths = [num_features, *hidden, 1]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))


class Standardized(nn.Module):
    """``net`` on standardized inputs and targets, exposed on the raw scale.

    ``forward(x) = y_mean + y_std · net((x - x_mean) / x_std)``.
    """

    def __init__(
        self,
        net: nn.Module,
        x_mean: torch.Tensor,
        x_std: torch.Tensor,
        y_mean: float = 0.0,
        y_std: float = 1.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))
        self.register_buffer("x_std", torch.as_tensor(x_std, dtype=torch.float32).clamp_min(1e-12))
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw ``(N, p)`` -> raw ``(N, 1)``."""
        z = (x.to(self.x_mean.dtype) - self.x_mean) / self.x_std
        return self.y_mean + self.y_std * self.net(z)
