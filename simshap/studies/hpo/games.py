"""Hyperparameter-importance games (HyperSHAP) on the simshap game contract.

Players are hyperparameters. Each game is bound to one "instance" and one output, so
``game(masks (1, M, d))`` returns ``(1, M, 1)`` and every estimator or
:mod:`simshap.interactions.exact` routine applies unchanged. An *objective* is any vectorised
callable ``objective(configs (N, d) float64 array) -> (N,)`` performance, higher is better
(a fitted surrogate, see :mod:`simshap.studies.hpo.objectives`).

* :class:`AblationGame`: v(S) = perf(λ* on S, λ0 elsewhere).
* :class:`TunabilityGame`: v(S) = best perf of a random search over one shared batch of
  candidate configurations blinded to S (hyperparameters outside S reset to λ0); the reference
  itself is one of the candidates, so v(∅) = perf(λ0) and v(S) >= v(∅).
* :class:`MultiDataTunabilityGame`: per-data-set tunability aggregated by mean, median or a
  quantile.
* :class:`OptimizerBiasGame`: v(S) = virtual best of an ensemble of optimizers on S minus the
  optimizer of interest on S (what it fails to exploit). :class:`OneAtATimeSearch` and
  :class:`SubsetSearch` are the two deficient optimizers of the paper.

All coalitions of a call are blinded and evaluated together: one objective call per chunk of
``batch_rows`` configurations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np
import torch

from simshap.games.values import Game
from simshap.studies.hpo.space import ConfigSpace

__all__ = [
    "Objective",
    "Optimizer",
    "RandomSearch",
    "OneAtATimeSearch",
    "SubsetSearch",
    "HPIGame",
    "AblationGame",
    "TunabilityGame",
    "MultiDataTunabilityGame",
    "OptimizerBiasGame",
    "aggregate",
]

Objective = Callable[[np.ndarray], np.ndarray]


def _config(space: ConfigSpace, config: np.ndarray | dict, what: str) -> np.ndarray:
    row = space.encode(config) if isinstance(config, dict) else np.asarray(config, np.float64)
    if row.shape != (len(space),):
        raise ValueError(f"{what} must have {len(space)} entries (one per hyperparameter)")
    return row


def _evaluate(objective: Objective, configs: np.ndarray, batch_rows: int) -> np.ndarray:
    """Objective on ``(N, d)`` rows, ``batch_rows`` at a time; checks the output shape."""
    outs = []
    for i in range(0, configs.shape[0], batch_rows):
        part = configs[i : i + batch_rows]
        out = np.asarray(objective(part), dtype=np.float64).reshape(-1)
        if out.shape[0] != part.shape[0]:
            raise ValueError(
                f"the objective must return one value per configuration: got {out.shape[0]} "
                f"for {part.shape[0]}"
            )
        outs.append(out)
    values = np.concatenate(outs)
    if not np.all(np.isfinite(values)):
        raise ValueError("the objective returned NaN or infinite values")
    return values


def _as_numpy_masks(masks: torch.Tensor) -> np.ndarray:
    return masks.detach().cpu().numpy().astype(bool)


# --------------------------------------------------------------------------- optimizers


class Optimizer(ABC):
    """An optimizer restricted to a coalition: best performance when only S may be tuned."""

    @abstractmethod
    def best(self, masks: np.ndarray) -> np.ndarray:
        """Bool ``(M, d)`` coalitions -> ``(M,)`` best performance found tuning only S."""


class RandomSearch(Optimizer):
    """Random search over one shared batch of candidates, blinded per coalition.

    Args:
        space: configuration space.
        objective: vectorised performance.
        reference: λ0 (array or dict); absent hyperparameters keep its values.
        n_samples: candidates drawn once (the reference is added as one more candidate).
        seed: seed of the numpy Generator that draws them.
        candidates: explicit ``(K, d)`` candidates instead of drawing them.
        batch_rows: configurations per objective call.
    """

    def __init__(
        self,
        space: ConfigSpace,
        objective: Objective,
        reference: np.ndarray | dict,
        n_samples: int = 10_000,
        seed: int = 0,
        candidates: np.ndarray | None = None,
        batch_rows: int = 500_000,
    ) -> None:
        self.space = space
        self.objective = objective
        self.reference = _config(space, reference, "reference")
        if candidates is None:
            if n_samples < 1:
                raise ValueError(f"n_samples must be >= 1, got {n_samples}")
            candidates = space.sample(n_samples, np.random.default_rng(seed))
        candidates = np.asarray(candidates, dtype=np.float64)
        if candidates.ndim != 2 or candidates.shape[1] != len(space):
            raise ValueError(f"candidates must be (K, {len(space)}), got {candidates.shape}")
        self.candidates = np.concatenate([self.reference[None], candidates])
        self.batch_rows = int(batch_rows)

    def blinded(self, masks: np.ndarray) -> np.ndarray:
        """``(M, K + 1, d)`` candidates with hyperparameters outside each S reset to λ0."""
        return np.where(masks[:, None, :], self.candidates[None], self.reference[None, None])

    def best(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        k = self.candidates.shape[0]
        per_call = max(1, self.batch_rows // k)
        out = []
        for i in range(0, masks.shape[0], per_call):
            part = masks[i : i + per_call]
            rows = self.blinded(part).reshape(-1, masks.shape[1])
            out.append(
                _evaluate(self.objective, rows, self.batch_rows).reshape(len(part), k).max(1)
            )
        return np.concatenate(out)


class OneAtATimeSearch(Optimizer):
    """Deficient optimizer 1: tunes each hyperparameter alone (others at λ0), keeps the best.

    For coalition S the result is max(perf(λ0), max_{i ∈ S} best_i), where best_i is the random
    search over the shared candidates blinded to {i}. Blind to every interaction.

    Args:
        search: the random search whose candidates, reference and objective are used.
    """

    def __init__(self, search: RandomSearch) -> None:
        self.search = search
        self._single: np.ndarray | None = None

    def single_best(self) -> np.ndarray:
        """``(d + 1,)``: perf(λ0) followed by the best of tuning each hyperparameter alone."""
        if self._single is None:
            d = len(self.search.space)
            masks = np.concatenate([np.zeros((1, d), bool), np.eye(d, dtype=bool)])
            self._single = self.search.best(masks)
        return self._single

    def best(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        single = self.single_best()
        per_player = np.where(masks, single[None, 1:], -np.inf).max(1)
        return np.maximum(single[0], per_player)


class SubsetSearch(Optimizer):
    """Deficient optimizer 2: random search that only ever tunes a fixed subset A (S ∩ A).

    Args:
        search: the random search to restrict.
        subset: names (or indices) of the hyperparameters it tunes.
    """

    def __init__(self, search: RandomSearch, subset: Sequence[str | int]) -> None:
        names = search.space.names
        idx = [names.index(s) if isinstance(s, str) else int(s) for s in subset]
        if any(i < 0 or i >= len(names) for i in idx):
            raise ValueError(f"subset {list(subset)} names hyperparameters outside {names}")
        self.search = search
        self.allowed = np.zeros(len(names), dtype=bool)
        self.allowed[idx] = True

    def best(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.search.best(masks & self.allowed[None])


# --------------------------------------------------------------------------- games


class HPIGame(Game):
    """Base of the hyperparameter-importance games: one instance, one output, float64.

    Subclasses implement :meth:`coalition_values` on bool numpy masks ``(M, d)``.
    """

    num_instances = 1

    def __init__(self, space: ConfigSpace) -> None:
        self.space = space
        self.num_players = len(space)

    @property
    def player_names(self) -> list[str]:
        """Hyperparameter names, in player order."""
        return list(self.space.names)

    @abstractmethod
    def coalition_values(self, masks: np.ndarray) -> np.ndarray:
        """Bool ``(M, d)`` -> ``(M,)`` values."""

    def value(self, masks: torch.Tensor) -> torch.Tensor:  # noqa: D102
        vals = self.coalition_values(_as_numpy_masks(masks[0]))
        return torch.as_tensor(vals, dtype=torch.float64).view(1, -1, 1)


class AblationGame(HPIGame):
    """v(S) = perf of the configuration taking λ* on S and λ0 elsewhere.

    Args:
        space: configuration space.
        objective: vectorised performance.
        reference: λ0.
        target: λ* (the configuration of interest, e.g. the tuned one).
        batch_rows: configurations per objective call.
    """

    def __init__(
        self,
        space: ConfigSpace,
        objective: Objective,
        reference: np.ndarray | dict,
        target: np.ndarray | dict,
        batch_rows: int = 500_000,
    ) -> None:
        super().__init__(space)
        self.objective = objective
        self.reference = _config(space, reference, "reference")
        self.target = _config(space, target, "target")
        self.batch_rows = int(batch_rows)

    def coalition_values(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        configs = np.where(masks, self.target[None], self.reference[None])
        return _evaluate(self.objective, configs, self.batch_rows)


class _OptimizerGame(HPIGame):
    def __init__(self, space: ConfigSpace, optimizer: Optimizer) -> None:
        super().__init__(space)
        self.optimizer = optimizer

    def coalition_values(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        return self.optimizer.best(masks)


class TunabilityGame(_OptimizerGame):
    """Data-specific tunability: v(S) = best of random search tuning only S (rest at λ0).

    Args:
        space: configuration space.
        objective: vectorised performance on one data set.
        reference: λ0 (e.g. the learner's defaults).
        n_samples: shared candidate configurations (HyperSHAP uses 10,000).
        seed: seed of the candidates.
        candidates: explicit candidates instead.
        batch_rows: configurations per objective call.
    """

    def __init__(
        self,
        space: ConfigSpace,
        objective: Objective,
        reference: np.ndarray | dict,
        n_samples: int = 10_000,
        seed: int = 0,
        candidates: np.ndarray | None = None,
        batch_rows: int = 500_000,
    ) -> None:
        search = RandomSearch(space, objective, reference, n_samples, seed, candidates, batch_rows)
        super().__init__(space, search)
        self.search = search


def aggregate(values: np.ndarray, how: str | float) -> np.ndarray:
    """Aggregate ``(D, M)`` per-data-set values over axis 0: "mean", "median" or a quantile q.

    Raises:
        ValueError: an unknown aggregate or a quantile outside [0, 1].
    """
    if how == "mean":
        return values.mean(0)
    if how == "median":
        return np.median(values, axis=0)
    if isinstance(how, str) and how.startswith("quantile"):
        how = float(how.split(":", 1)[1]) if ":" in how else float("nan")
    if isinstance(how, (int, float)) and not isinstance(how, bool) and 0.0 <= how <= 1.0:
        return np.quantile(values, float(how), axis=0)
    raise ValueError(
        f"aggregate must be 'mean', 'median', a quantile q in [0, 1] or 'quantile:q', got {how!r}"
    )


class MultiDataTunabilityGame(HPIGame):
    """Tunability over several data sets: aggregate_D v_D(S) of the per-data-set tunability.

    All data sets share the same candidates (one batch drawn with ``seed``).

    Args:
        space: configuration space.
        objectives: one vectorised performance per data set.
        reference: λ0.
        how: "mean", "median" or a quantile in [0, 1] (e.g. 0.25 for a pessimistic view).
        n_samples: shared candidates.
        seed: seed of the candidates.
        batch_rows: configurations per objective call.
    """

    def __init__(
        self,
        space: ConfigSpace,
        objectives: Sequence[Objective],
        reference: np.ndarray | dict,
        how: str | float = "mean",
        n_samples: int = 10_000,
        seed: int = 0,
        batch_rows: int = 500_000,
    ) -> None:
        super().__init__(space)
        if len(objectives) < 1:
            raise ValueError("MultiDataTunabilityGame needs at least one objective")
        aggregate(np.zeros((1, 1)), how)  # validate early
        candidates = space.sample(n_samples, np.random.default_rng(seed))
        self.games = [
            TunabilityGame(space, f, reference, candidates=candidates, batch_rows=batch_rows)
            for f in objectives
        ]
        self.how = how

    def coalition_values(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        per_data = np.stack([g.coalition_values(masks) for g in self.games])
        return aggregate(per_data, self.how)


class OptimizerBiasGame(HPIGame):
    """v(S) = max over the ensemble (and the optimizer) of best(S) minus the optimizer's best(S).

    v(∅) = 0 and v(S) >= 0: the value is what the virtual best optimizer finds on S that the
    optimizer of interest misses.

    Args:
        space: configuration space.
        optimizer: the optimizer to explain.
        ensemble: the other optimizers of the virtual best.
    """

    def __init__(
        self, space: ConfigSpace, optimizer: Optimizer, ensemble: Sequence[Optimizer]
    ) -> None:
        super().__init__(space)
        if not ensemble:
            raise ValueError("OptimizerBiasGame needs at least one optimizer in the ensemble")
        self.optimizer = optimizer
        self.ensemble = list(ensemble)

    def coalition_values(self, masks: np.ndarray) -> np.ndarray:  # noqa: D102
        own = self.optimizer.best(masks)
        vbo = np.max(np.stack([own] + [o.best(masks) for o in self.ensemble]), axis=0)
        return vbo - own
