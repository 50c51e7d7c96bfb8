"""Validation of amortized explainers against fixed KernelSHAP targets.

Each validation batch gets KernelSHAP targets at ``val_budget`` evaluations, computed once with
a seed of their own and cached, so every epoch is scored against the same values. The logged
``val_l2`` is the mean l2 distance to them. At the best epoch the per-player mean squared error
is kept as ``prior_var``, and ``PRIOR_QUANTILES`` quantiles of the per-instance errors as
``prior_var_quantiles``: the prior of ``explainer(x, budget=k)``, whose error varies from row to
row. Both include the targets' own noise (small at the default ``val_budget``).
"""

from __future__ import annotations

from typing import Any

import torch

from simshap.estimators.kernel import kernel_shap

__all__ = ["PRIOR_QUANTILES", "FixedTargetValidation"]

_VAL_SEED_STRIDE = 1_000_003
PRIOR_QUANTILES = 32  # per-instance validation errors kept for explainer(x, budget=k)


class FixedTargetValidation:
    """Mixin of :class:`~simshap.amortized.base.AmortizedExplainer`: its validation hooks.

    Expects the host to provide ``hparams`` (``seed``, ``val_budget``), ``game(x, raw)``,
    ``raw_attributions(x)``, ``efficient(phi, v_full)``, ``_raw_ref(batch, table)``, the buffers
    ``prior_var``, ``prior_var_quantiles`` and ``_best_val``, and the containers
    ``_val_targets`` / ``_val_full`` / ``_val_sq`` / ``_val_inst`` (all set up by the
    explainer's constructor). The score is that of the efficient output users get; KernelSHAP
    is exactly efficient, so each target's v(N) comes with it.
    """

    def validation_targets(self, x: torch.Tensor, batch_idx: int, raw: Any = None) -> torch.Tensor:
        """Fixed KernelSHAP targets of validation batch ``batch_idx`` (computed once)."""
        if batch_idx not in self._val_targets:
            gen = torch.Generator().manual_seed(
                self.hparams.seed + _VAL_SEED_STRIDE * (batch_idx + 1)
            )
            with torch.autocast(self.device.type, enabled=False):
                game = self.game(x.float(), raw)
                est = kernel_shap(game, budget=self.hparams.val_budget, paired=True, generator=gen)
            self._val_targets[batch_idx] = est.values.float().to(x.device)
            # v(N) of the same game: what the efficient output adds up to
            self._val_full[batch_idx] = (est.values.sum(1) + est.base_values).float().to(x.device)
        return self._val_targets[batch_idx]

    def prior_variances(self) -> torch.Tensor:
        """The prior of ``explainer(x, budget=k)``: per-player validation errors, ``(K, C)``.

        The quantiles of the per-instance errors when recorded, otherwise the mean error alone
        (files saved before the quantiles were kept). Floored at 1e-12.
        """
        q = self.prior_var_quantiles
        chosen = q if bool(torch.isfinite(q).all()) else self.prior_var.unsqueeze(0)
        return chosen.clamp_min(1e-12)

    def validation_error(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """The efficient output minus the fixed KernelSHAP targets of a batch, ``(B, d, C)``."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        targets = self.validation_targets(x, batch_idx, self._raw_ref(batch, "val"))
        phi = self.efficient(self.raw_attributions(x), self._val_full[batch_idx])
        return phi.to(device=targets.device, dtype=targets.dtype) - targets

    def validation_l2(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Mean l2 distance of the explainer to the fixed KernelSHAP targets of a batch."""
        return self.validation_error(batch, batch_idx).norm(dim=1).mean()

    def validation_step(self, batch: Any, batch_idx: int) -> None:  # noqa: D102
        err = self.validation_error(batch, batch_idx)
        d = err.shape[1]
        self._val_sq.append(torch.cat([err.pow(2).sum((0, 1)) / d, err.new_tensor([err.shape[0]])]))
        self._val_inst.append(err.detach().pow(2).mean(1))  # (B, C) per instance
        # sync_dist: under DDP every rank sees a shard; the logged value is the all-reduced mean
        self.log("val_l2", err.norm(dim=1).mean(), prog_bar=True, sync_dist=True)

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        if not self._val_sq:
            return
        sums = torch.stack(self._val_sq).sum(0)
        inst = torch.cat(self._val_inst)
        self._val_sq.clear()
        self._val_inst.clear()
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
            inst = self.all_gather(inst).reshape(-1, inst.shape[-1])
        mse = sums[:-1] / sums[-1]  # per class, per player
        if float(mse.mean()) < float(self._best_val):  # the best epoch is the one kept
            self._best_val.fill_(float(mse.mean()))
            self.prior_var.copy_(mse)
            q = (torch.arange(PRIOR_QUANTILES, device=inst.device) + 0.5) / PRIOR_QUANTILES
            self.prior_var_quantiles.copy_(torch.quantile(inst.float(), q, dim=0))
