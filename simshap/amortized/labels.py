"""Amortized regression on labels computed once (stochastic amortization).

Instead of a fresh noisy target every step (SimSHAP, FastSHAP), every training row gets one
label before training: its exact Shapley values when the game is small enough, otherwise paired
KernelSHAP at a fixed budget (an almost unbiased, low-noise estimate). g is then fitted by plain
L2 regression on (x, label) pairs and reuses the labels every epoch. Covert, Kolbeinsson & Lee
("Stochastic Amortization", 2024) show that any unbiased label trains towards the same
optimum as exact labels; what the labels' noise costs is extra training rows.

The price is paid up front: ``label_budget`` surrogate evaluations per row (2,048 by default),
or ``2^d`` for exact labels when that is no more. On census (d = 12) at equal surrogate
evaluations, paired KernelSHAP labels for every training row trained a better explainer than
exact labels for half of them (l2 0.0041 against 0.0065, benchmarks/RESULTS.md): rows matter
more than the last bit of label noise. :meth:`LabelRegression.compute_labels` reports the cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.surrogate import Surrogate
from simshap.errors import UserError
from simshap.estimators.chunks import CHUNK_ROWS, chunked_shapley

__all__ = ["DEFAULT_LABEL_BUDGET", "EXACT_LABEL_MAX_PLAYERS", "LabelRegression"]

#: exact labels (all 2^d coalitions) only up to this many players, and only within the budget
EXACT_LABEL_MAX_PLAYERS = 16
#: evaluations per row when ``label_budget`` is None
DEFAULT_LABEL_BUDGET = 2048


class LabelRegression(AmortizedExplainer):
    """An explainer fitted by L2 regression on Shapley labels computed once per training row.

    Training batches are ``(x, labels)`` pairs (labels from :meth:`compute_labels`); the loss
    is ``MSE(g(x), labels)``. Validation, saving, ``explainer(x)`` and
    ``explainer(x, budget=k)`` are those of every amortized explainer.

    Args:
        net_spec: explainer network spec (tabular MLP).
        surrogate: the trained surrogate (its game gives the labels).
        label_budget: game evaluations per row (∅ and N included); ``None``: 2,048. Rows get
            exact labels when ``2^d`` is within the budget (d <= 16), otherwise paired
            KernelSHAP at the budget.
        **kwargs: see :class:`~simshap.amortized.base.AmortizedExplainer` (``n_masks`` is
            not used).
    """

    def __init__(
        self,
        net_spec: dict[str, Any] | None = None,
        surrogate: Surrogate | None = None,
        label_budget: int | None = None,
        **kwargs: Any,
    ) -> None:
        if label_budget is not None and (
            isinstance(label_budget, bool) or not isinstance(label_budget, int) or label_budget < 2
        ):
            raise UserError(
                f"label_budget must be an integer >= 2 evaluations or None, got {label_budget!r}"
            )
        super().__init__(net_spec, surrogate, **kwargs)  # hparams record label_budget

    def label_method(self, num_players: int) -> tuple[str, int]:
        """``("exact", 2^d)`` or ``("kernel_shap", budget)``: how rows are labelled."""
        budget = self.hparams.label_budget
        if budget is None:
            budget = DEFAULT_LABEL_BUDGET
        if num_players <= EXACT_LABEL_MAX_PLAYERS and budget >= 2**num_players:
            return "exact", 2**num_players
        return "kernel_shap", int(budget)

    @torch.no_grad()
    def compute_labels(
        self,
        x: torch.Tensor,
        chunk_rows: int = CHUNK_ROWS,
        seed: int | None = None,
        engine: str = "local",
        cache_dir: str | Path | None = None,
        key: str | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Shapley labels of training rows on the explainer's game, chunk by chunk.

        Each chunk of ``chunk_rows`` rows has its own seed, so the labels are the same in this
        process and on Ray (``engine="ray"``, bitwise), and with a ``cache_dir`` a killed
        labelling resumes at the first missing chunk
        (:func:`~simshap.estimators.chunks.chunked_shapley`). Also sets ``base_value`` to the
        mean v(∅) over the rows.

        Args:
            x: model inputs ``(N, F)`` (already preprocessed, as the training loader yields).
            chunk_rows: rows per chunk.
            seed: seeds KernelSHAP's coalitions (``None``: the explainer's ``seed``).
            engine: ``"local"`` or ``"ray"``.
            cache_dir: where finished chunks are saved; ``None``: nowhere.
            key: what the labels depend on (required with ``cache_dir``).

        Returns:
            ``(labels (N, d, C) float32 on the CPU, evaluations per row)``.
        """
        x = torch.as_tensor(x, dtype=torch.float32)
        method, evals = self.label_method(self.net.spec["num_players"])
        table = getattr(self._require_source(), "tables", {}).get("train")  # a model's game
        raw = None if table is None else table[: len(x)]
        device = self.device if engine == "local" else torch.device("cpu")
        est = chunked_shapley(
            self.game(x.to(device), raw),
            "exact" if method == "exact" else "kernel_shap",
            budget=None if method == "exact" else evals,
            seed=self.hparams.seed if seed is None else seed,
            chunk_rows=chunk_rows,
            engine=engine,
            cache_dir=cache_dir,
            key=key,
        )
        self.base_value.copy_(est.base_values.float().mean(0).to(self.base_value))
        return est.values.float().cpu(), evals

    def training_dataset(self, x: torch.Tensor) -> torch.utils.data.Dataset:
        """The rows with their labels (computed here, once): what :meth:`fit` trains on."""
        labels, _ = self.compute_labels(x)
        x = torch.as_tensor(x, dtype=torch.float32)
        return torch.utils.data.TensorDataset(x, labels, torch.arange(len(x)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:  # noqa: D102
        if not isinstance(batch, (list, tuple)) or len(batch) not in (2, 3) or batch[1].ndim != 3:
            raise UserError(
                "LabelRegression trains on (x, labels) batches: compute the labels with "
                "compute_labels(x) and pass TensorDataset(x, labels)"
            )
        x, labels = batch[0], batch[1]
        loss = F.mse_loss(self.raw_attributions(x), labels.float())
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def loss(self, *args: Any) -> torch.Tensor:
        """Not used: the loss is the regression on stored labels (see ``training_step``)."""
        raise NotImplementedError("LabelRegression trains on stored labels")
