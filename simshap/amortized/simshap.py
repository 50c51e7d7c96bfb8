"""SimSHAP (Zhang et al.): g(x) trained with plain L2 to unbiased Sim-Semivalue targets."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from simshap.amortized.base import AmortizedExplainer, efficient_normalization
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.target_memory import TargetMemory
from simshap.errors import UserError
from simshap.estimators.semivalues import sim_semivalue_target
from simshap.games.sampling import shapley_kernel_gamma

__all__ = ["SIMSHAP_TARGETS", "SimSHAP", "optimal_cv_coef", "residual_target"]

SIMSHAP_TARGETS = ("default", "paper")
_CV_DECAY = 0.9  # exponential average of the control-variate coefficient over steps


def residual_target(
    masks: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    v_full: torch.Tensor,
    baseline: torch.Tensor,
    centered: bool = True,
) -> torch.Tensor:
    """Sim-Semivalue target with an additive control variate ``baseline`` (ĝ, ``(B, d, C)``).

    phi_hat = ĝ + SimSemivalue(v - u) with u(S) = 1_Sᵀĝ, whose Shapley values are ĝ: unbiased by
    linearity of the Shapley value, and exact (zero variance) when v is additive with values ĝ.
    """
    additive = torch.einsum("bmd,bdc->bmc", masks.to(baseline.dtype), baseline)
    residual = sim_semivalue_target(
        masks, values - additive, v_empty, v_full - baseline.sum(1), centered
    )
    return residual + baseline


def optimal_cv_coef(
    masks: torch.Tensor,
    values: torch.Tensor,
    v_empty: torch.Tensor,
    baseline: torch.Tensor,
) -> torch.Tensor:
    """The variance-minimizing control-variate coefficient c* = Cov(t, s) / Var(s), in [0, 1].

    ``t`` are the per-coalition terms a_S (v(S) - v(∅)) of the centered Sim-Semivalue target of
    the game and ``s`` those of the additive game u(S) = 1_Sᵀĝ; the target with coefficient c,
    :func:`residual_target` with baseline c·ĝ, has per-coalition terms t - c s. Pooled over the
    batch, players and classes; 0 when u has no spread.
    """
    z = masks.to(values.dtype)
    d = masks.shape[-1]
    a = shapley_kernel_gamma(d) * (d * z - z.sum(-1, keepdim=True))  # (B, M, d)
    w = values - v_empty.unsqueeze(1)  # (B, M, C)
    wu = torch.einsum("bmd,bdc->bmc", z, baseline.to(values.dtype))
    t = a.unsqueeze(-1) * w.unsqueeze(2)  # (B, M, d, C)
    su = a.unsqueeze(-1) * wu.unsqueeze(2)
    t, su = t - t.mean(1, keepdim=True), su - su.mean(1, keepdim=True)
    var = su.pow(2).sum()
    if not bool(var > 0):
        return torch.zeros((), dtype=values.dtype, device=values.device)
    return ((t * su).sum() / var).clamp(0.0, 1.0)


class SimSHAP(AmortizedExplainer):
    """SimSHAP explainer: loss = MSE(g(x), phi_hat) with phi_hat an unbiased Shapley target.

    Both targets are built by ``simshap.estimators.sim_semivalue_target`` on the step's M
    paired Shapley-kernel coalitions (centered by default), the very function the stochastic
    estimator uses, so training and estimation share one formula. No normalization is applied:
    every target is already efficient, so g learns efficient outputs.

    * ``target="default"`` (variance-reduced): c·ĝ, with ĝ = g(x) the network's current output
      (detached), is a control variate. The target is c·ĝ + the Sim-Semivalue target of the
      residual game v(S) - c·1_Sᵀĝ. By linearity of the Shapley value it is unbiased for any ĝ
      and c that do not depend on the step's coalitions. The coefficient c is the
      variance-minimizing one, Cov/Var of the per-coalition terms (:func:`optimal_cv_coef`),
      estimated on the previous steps (an exponential average, so the current coalitions do not
      set it) and clipped to [0, 1]. It starts at 0, the paper's target: a freshly initialized ĝ
      is noise, and with many players (256 superpixels) a full control variate from it makes the
      target's variance explode. As g approaches the Shapley values c rises towards 1 and the
      target's variance shrinks, where the paper target's does not.
    * ``target="paper"``: Algorithm 1 of Zhang et al. exactly, the plain Sim-Semivalue target.

    With ``normalize`` (the default for the default target) the loss compares the target with
    g(x) after the additive efficient normalization that inference applies, as FastSHAP's
    loss does; g's sum over the players is then free, and only the served values are fitted
    (on the breast_cancer main job it took SimSHAP's l2 from 0.0224 to 0.0210, below
    FastSHAP's 0.0220; ``benchmarks/RESULTS.md`` has diabetes and census).

    With ``average_targets`` (the default for the default target) g is regressed on the mean of
    each training row's targets over the epochs so far instead of on the step's target alone
    (:mod:`~simshap.amortized.target_memory`): every target is unbiased, so their mean is, and
    its variance falls as 1/t. It needs the training loader to carry row indices: build it from
    :meth:`training_dataset` (``AmortizedExplainer.fit`` and the tabular runs do). With
    ``input_noise`` a row's targets are computed at different noisy copies of it, and their
    mean is the target of the row's neighbourhood, not of the input g is given: so by default
    ``input_noise`` turns the averaging off (on the main job, 0.3 noise with averaging gave
    l2 0.054 against 0.032 without it).

    With ``sampling_epochs=E`` (averaging only) the epochs after the first E draw no coalitions
    and call no surrogate: g is regressed on the memory's final means, which no longer change.
    The means after E epochs are the best labels the sampling produced, and fitting them
    longer is what the network still lacks (census: l2 0.0047 with 100 such epochs after 110
    sampling epochs, against 0.0053 with the 110 alone; ``benchmarks/RESULTS.md``). Set the
    trainer's ``max_epochs`` (and ``max_epochs_hint``) to E plus the fitting epochs.

    Args:
        net_spec: explainer network spec (``{"kind": "mlp", ...}`` or ``{"kind": "unet", ...}``).
        surrogate: the trained surrogate.
        centered: use v(S) - v(∅) in the target (unbiased, lower variance).
        target: ``"default"`` (the control-variate target) or ``"paper"`` (Algorithm 1).
        average_targets: regress on each row's mean target over the epochs (``None``: on for
            the default target without ``input_noise``; the paper target is Algorithm 1 and
            keeps it off).
        sampling_epochs: with ``average_targets``, the epochs that draw coalitions; the later
            ones fit g to the memory's means without calling the surrogate (``None``: every
            epoch draws).
        normalize: (default target) compare the target with g(x) made efficient, as
            :meth:`explainer(x) <forward>` serves it, not with the raw g(x); the control
            variate is that efficient ĝ too. The loss then counts only the error that is
            served (the part along the players' sum is removed at inference anyway). The
            paper target is Algorithm 1 and compares the raw g(x).
        **kwargs: see :class:`~simshap.amortized.base.AmortizedExplainer`.
    """

    def __init__(
        self,
        net_spec: dict[str, Any] | None = None,
        surrogate: Surrogate | None = None,
        centered: bool = True,
        target: str = "default",
        average_targets: bool | None = None,
        sampling_epochs: int | None = None,
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        if target not in SIMSHAP_TARGETS:
            raise UserError(f"SimSHAP target must be one of {SIMSHAP_TARGETS}, got {target!r}")
        if average_targets is None:  # a row's noisy copies are different inputs
            average_targets = target == "default" and not kwargs.get("input_noise", 0.0)
        if not isinstance(average_targets, bool):
            raise UserError(f"average_targets must be true or false, got {average_targets!r}")
        if average_targets and target == "paper":
            raise UserError(
                "target='paper' is Algorithm 1 exactly, a fresh target every step; "
                "average_targets needs target='default' (or pass "
                "average_targets=False)"
            )
        if sampling_epochs is not None:
            if (
                isinstance(sampling_epochs, bool)
                or not isinstance(sampling_epochs, int)
                or sampling_epochs < 1
            ):
                raise UserError(
                    f"sampling_epochs must be a positive integer or None, got {sampling_epochs!r}"
                )
            if not average_targets:
                raise UserError(
                    "sampling_epochs fits g to the mean targets after the sampling "
                    "epochs, so it needs average_targets=True (the default target "
                    "without input_noise)"
                )
        # hparams record `centered`, `target` and `average_targets` as resolved here
        super().__init__(net_spec, surrogate, **kwargs)
        self.target_memory: TargetMemory | None = None
        self._step_rows: torch.Tensor | None = None
        # the control-variate coefficient (default target): travels in checkpoints, so a
        # resumed run continues with the same value
        self.register_buffer("cv_coef", torch.zeros(()))

    @property
    def averages_targets(self) -> bool:
        """Whether g is regressed on each row's mean target (files before it: ``False``)."""
        return bool(self.hparams.get("average_targets", False))

    @property
    def fits_memory(self) -> bool:
        """Whether this epoch fits the memory's means instead of drawing coalitions."""
        n = self.hparams.get("sampling_epochs")  # files before it: every epoch draws
        return n is not None and self.current_epoch >= n

    def on_fit_start(self) -> None:  # noqa: D102
        super().on_fit_start()
        n, trainer = self.hparams.get("sampling_epochs"), self._trainer  # None: called alone
        total = trainer.max_epochs if n is not None and trainer is not None else None
        if total is not None and 0 <= total <= n:
            raise UserError(
                f"sampling_epochs={n} leaves no epoch to fit the mean targets "
                f"within the trainer's max_epochs={total}: set max_epochs to "
                "sampling_epochs plus the fitting epochs"
            )

    def training_dataset(self, x: torch.Tensor) -> torch.utils.data.Dataset:
        """The rows and their indices (and a fresh, empty memory when averaging targets)."""
        rows = super().training_dataset(x)
        if self.averages_targets:
            self.target_memory = TargetMemory(len(rows.tensors[0]))
        return rows

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        self._step_rows = None
        if self.averages_targets:
            ok = isinstance(batch, (list, tuple)) and len(batch) == 2 and batch[1].ndim == 1
            if not ok or self.target_memory is None:
                raise UserError(
                    "SimSHAP(average_targets=True) trains on (x, row index) batches: build the "
                    "training loader from explainer.training_dataset(x), or pass "
                    "average_targets=False"
                )
            self._step_rows = batch[1]
            if self.fits_memory:
                return self._memory_step(batch[0], batch[1])
        return super().training_step(batch, batch_idx)

    def _fitted(self, pred: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        """g(x) as the loss compares it: raw, or with ``normalize`` made efficient as served.

        ``total`` ``(B, C)`` is v(N) - v(∅), which every default target sums to over the
        players (a mean of targets too), so the loss sees only the error that inference keeps.
        """
        if not self.hparams.get("normalize", False):  # files before it: raw
            return pred
        return efficient_normalization(pred, total, self.sharing_players(pred.device))

    def _memory_step(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """L2 to the rows' mean targets: no coalitions, no surrogate call, no input noise."""
        if self.target_memory is None or self.target_memory.sums is None:
            raise RuntimeError("the target memory is empty after the sampling epochs")
        target = self.target_memory.mean(rows.long())
        loss = F.mse_loss(self._fitted(self.raw_attributions(x), target.sum(1)), target)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        super().on_save_checkpoint(checkpoint)
        if self.target_memory is not None:
            checkpoint["simshap_target_memory"] = self.target_memory.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:  # noqa: D102
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("simshap_target_memory")
        if state is not None:  # a resumed run continues with the same means
            self.target_memory = TargetMemory.from_state_dict(state)

    def _averaged(self, target: torch.Tensor) -> torch.Tensor:
        """Add this step's targets to the memory and return the rows' means."""
        rows = self._step_rows
        assert rows is not None and self.target_memory is not None
        all_rows, all_targets = rows, target
        if self.trainer.world_size > 1:  # every rank keeps the same memory of all rows
            all_rows = self.all_gather(rows).reshape(-1)
            all_targets = self.all_gather(target.detach()).reshape(-1, *target.shape[1:])
        self.target_memory.update(all_rows.long(), all_targets)
        return self.target_memory.mean(rows.long())

    def loss(  # noqa: D102
        self,
        x: torch.Tensor,
        masks: torch.Tensor,
        values: torch.Tensor,
        v_empty: torch.Tensor,
        v_full: torch.Tensor,
    ) -> torch.Tensor:
        pred = self.raw_attributions(x)
        if self.hparams.get("target", "paper") == "default":
            pred = self._fitted(pred, (v_full - v_empty).to(pred))  # ĝ: as served
            g_hat = pred.detach()
            target = residual_target(
                masks, values, v_empty, v_full, self.cv_coef * g_hat, self.hparams.centered
            )
            with torch.no_grad():  # for the next steps: never the coalitions it is used on
                c = optimal_cv_coef(masks, values.float(), v_empty.float(), g_hat)
                self.cv_coef.mul_(_CV_DECAY).add_((1.0 - _CV_DECAY) * c)
            if self._step_rows is not None:
                target = self._averaged(target)
            return F.mse_loss(pred, target)
        target = sim_semivalue_target(masks, values, v_empty, v_full, self.hparams.centered)
        return F.mse_loss(pred, target)
