"""Per-row running means of SimSHAP's unbiased targets over the epochs.

Every epoch SimSHAP draws fresh coalitions for each training row and computes an unbiased
target for its Shapley values. Each new target is unbiased whatever the network looked like
when it was drawn: the control variate ĝ and its coefficient never depend on the step's own
coalitions. The mean of a row's targets so far is therefore unbiased too, and its variance
falls as 1/t after t epochs. Regressing g on that mean is the stochastic-amortization view
(Covert, Kolbeinsson & Lee, 2024): a less noisy unbiased label trains towards the same optimum
with fewer rows' worth of noise. Nothing is evaluated twice: the memory only stores
``(N, d, C)`` sums and ``N`` counts.
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.errors import UserError

__all__ = ["TargetMemory"]


class TargetMemory:
    """Sums and counts of the targets of ``rows`` training rows (on the targets' device).

    Args:
        rows: number of training rows (the dataset's length); row indices are ``0..rows-1``.
    """

    def __init__(self, rows: int) -> None:
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise UserError(f"the target memory needs a positive number of rows, got {rows!r}")
        self.rows = rows
        self.sums: torch.Tensor | None = None  # (rows, d, C) float32, allocated on first use
        self.counts = torch.zeros(rows)

    def update(self, index: torch.Tensor, targets: torch.Tensor) -> None:
        """Add one target per listed row (repeated rows count once per occurrence).

        Args:
            index: int64 row indices ``(B,)``.
            targets: ``(B, d, C)`` unbiased targets of those rows.
        """
        if index.ndim != 1 or index.dtype != torch.int64 or len(index) != len(targets):
            raise UserError(
                f"the target memory needs int64 row indices (B,) matching targets (B, d, C), "
                f"got {tuple(index.shape)} {index.dtype} and {tuple(targets.shape)}"
            )
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= self.rows):
            raise UserError(
                f"row index out of range for a memory of {self.rows} training rows: build the "
                "training loader from explainer.training_dataset(x) with the same rows"
            )
        targets = targets.detach().float()
        if self.sums is None:
            self.sums = torch.zeros((self.rows, *targets.shape[1:]), device=targets.device)
        elif self.sums.shape[1:] != targets.shape[1:]:
            raise UserError(
                f"targets of shape {tuple(targets.shape[1:])} do not match the "
                f"memory's {tuple(self.sums.shape[1:])}"
            )
        self.sums = self.sums.to(targets.device)
        self.counts = self.counts.to(targets.device)
        index = index.to(targets.device)
        self.sums.index_add_(0, index, targets)
        self.counts.index_add_(0, index, torch.ones(len(index), device=targets.device))

    def mean(self, index: torch.Tensor) -> torch.Tensor:
        """The mean target of each listed row so far, ``(B, d, C)`` (rows must have one)."""
        if self.sums is None:
            raise RuntimeError("the target memory is empty: call update() first")
        index = index.to(self.sums.device)
        counts = self.counts[index]
        if not bool((counts > 0).all()):
            raise RuntimeError("a row was read from the target memory before it got a target")
        return self.sums[index] / counts.view(-1, *([1] * (self.sums.ndim - 1)))

    def state_dict(self) -> dict[str, Any]:
        """CPU copies of the sums and counts (for Lightning checkpoints)."""
        return {
            "rows": self.rows,
            "counts": self.counts.cpu(),
            "sums": None if self.sums is None else self.sums.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TargetMemory:
        """The memory saved by :meth:`state_dict`."""
        memory = cls(int(state["rows"]))
        memory.counts = state["counts"].float().clone()
        memory.sums = None if state["sums"] is None else state["sums"].float().clone()
        return memory
