"""The zoo's three optimizers applied to stacked parameters, each model with its own kind and rate.

The updates are torch.optim's defaults (``Adam(betas=(0.9, 0.999), eps=1e-8)``,
``RMSprop(alpha=0.99, eps=1e-8)``, plain ``SGD``), written for a leading model dimension. The
models of a group are ordered so that each optimizer owns a contiguous slice of that dimension,
and every update is an in-place operation on a view, so a model's update never reads another
model's numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

__all__ = ["OPTIMIZERS", "StackedOptimizer", "single_optimizer"]

OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd")
_BETAS, _ALPHA, _EPS = (0.9, 0.999), 0.99, 1e-8


def single_optimizer(kind: str, params: object, lr: float) -> torch.optim.Optimizer:
    """The torch.optim optimizer that :class:`StackedOptimizer` reproduces for one model."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=_BETAS, eps=_EPS)  # type: ignore[arg-type]
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=_ALPHA, eps=_EPS)  # type: ignore[arg-type]
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)  # type: ignore[arg-type]
    raise ValueError(f"unknown optimizer {kind!r}; choose from {OPTIMIZERS}")


class StackedOptimizer:
    """Per-model Adam / RMSprop / SGD on ``{key: (M, ...)}`` parameters.

    Args:
        params: stacked parameters (updated in place).
        kinds: optimizer per model; equal kinds must be adjacent.
        lrs: learning rate per model.

    Raises:
        ValueError: an unknown kind, or a kind whose models are not contiguous.
    """

    def __init__(
        self, params: Mapping[str, torch.Tensor], kinds: Sequence[str], lrs: Sequence[float]
    ) -> None:
        self.slices: dict[str, slice] = {}
        for k, kind in enumerate(kinds):
            if kind not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {kind!r}; choose from {OPTIMIZERS}")
            if kind in self.slices:
                if self.slices[kind].stop != k:
                    raise ValueError("models of one optimizer kind must be adjacent in a group")
                self.slices[kind] = slice(self.slices[kind].start, k + 1)
            else:
                self.slices[kind] = slice(k, k + 1)
        self.step_count = 0
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        self.lr: dict[str, torch.Tensor] = {}
        for key, p in params.items():
            self.state[key] = {}
            if "adam" in self.slices:
                sl = self.slices["adam"]
                self.state[key]["exp_avg"] = torch.zeros_like(p[sl])
                self.state[key]["exp_avg_sq"] = torch.zeros_like(p[sl])
            if "rmsprop" in self.slices:
                self.state[key]["square_avg"] = torch.zeros_like(p[self.slices["rmsprop"]])
        lr_all = torch.tensor([float(x) for x in lrs], dtype=torch.float64)
        for kind, sl in self.slices.items():
            self.lr[kind] = lr_all[sl]

    @staticmethod
    def _per_model(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor]) -> None:
        """One update of every model from its gradients (all models share the step count)."""
        self.step_count += 1
        t = self.step_count
        for key, p in params.items():
            g, st = grads[key], self.state[key]
            if "adam" in self.slices:
                sl = self.slices["adam"]
                pa, ga = p[sl], g[sl]
                st["exp_avg"].lerp_(ga, 1 - _BETAS[0])
                st["exp_avg_sq"].mul_(_BETAS[1]).addcmul_(ga, ga, value=1 - _BETAS[1])
                step_size = self.lr["adam"] / (1 - _BETAS[0] ** t)
                denom = (st["exp_avg_sq"].sqrt() / (1 - _BETAS[1] ** t) ** 0.5).add_(_EPS)
                pa.sub_(self._per_model(step_size, pa) * (st["exp_avg"] / denom))
            if "rmsprop" in self.slices:
                sl = self.slices["rmsprop"]
                pr, gr = p[sl], g[sl]
                st["square_avg"].mul_(_ALPHA).addcmul_(gr, gr, value=1 - _ALPHA)
                avg = st["square_avg"].sqrt().add_(_EPS)
                pr.sub_(self._per_model(self.lr["rmsprop"], pr) * (gr / avg))
            if "sgd" in self.slices:
                sl = self.slices["sgd"]
                p[sl].sub_(self._per_model(self.lr["sgd"], p[sl]) * g[sl])
