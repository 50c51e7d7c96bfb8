"""``InteractionValues``: Shapley interaction values of B instances and C outputs per index."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from simshap.estimators.budget import check_positive
from simshap.interactions.transforms import _make_basis

__all__ = ["InteractionValues"]

# --------------------------------------------------------------------------- InteractionValues


@dataclass
class InteractionValues:
    """Interaction values of every instance and output, addressed by player tuples.

    ``iv[(0, 2)]`` returns the ``(B, C)`` values of the interaction of players 0 and 2 (tuples
    are sorted first, so ``iv[(2, 0)]`` is the same); ``iv[()]`` is the empty interaction.

    Attributes:
        values: ``(B, p, C)`` values, interaction axis in the order of ``interactions``.
        interactions: the p player tuples (by size, then lexicographic).
        index: "Moebius", "SII", "k-SII", "STII", "FSII" or "SV".
        order: largest interaction size (shapiq's ``max_order``).
        n_players: number of players n.
        baseline_value: ``(B, C)`` value of the empty coalition v(∅).
        min_order: smallest interaction size present.
        estimated: whether the values come from a sampled approximation.
        n_evals: game evaluations per instance used to compute them.
    """

    values: torch.Tensor
    interactions: list[tuple[int, ...]]
    index: str
    order: int
    n_players: int
    baseline_value: torch.Tensor
    min_order: int = 0
    estimated: bool = False
    n_evals: int | None = None
    lookup: dict[tuple[int, ...], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.shape[1] != len(self.interactions):
            raise ValueError(
                f"values must be (B, p, C) with p = {len(self.interactions)} interactions, got "
                f"{tuple(self.values.shape)}"
            )
        self.lookup = {t: i for i, t in enumerate(self.interactions)}

    @property
    def num_instances(self) -> int:
        """Number of instances B."""
        return self.values.shape[0]

    @property
    def num_outputs(self) -> int:
        """Number of outputs C."""
        return self.values.shape[2]

    def __len__(self) -> int:
        return len(self.interactions)

    def __contains__(self, players: object) -> bool:
        return isinstance(players, Iterable) and tuple(sorted(players)) in self.lookup

    def __getitem__(self, players: Iterable[int]) -> torch.Tensor:
        """Values ``(B, C)`` of one interaction given as a tuple of players."""
        key = tuple(sorted(int(p) for p in players))
        if key not in self.lookup:
            raise KeyError(
                f"interaction {key} is not in these {self.index} values (players 0.."
                f"{self.n_players - 1}, sizes {self.min_order}..{self.order})"
            )
        return self.values[:, self.lookup[key]]

    def get_order(self, order: int) -> InteractionValues:
        """The interactions of exactly size ``order`` (a new object sharing no storage)."""
        if not self.min_order <= order <= self.order:
            raise ValueError(
                f"order must be in {self.min_order}..{self.order} for these values, got {order}"
            )
        keep = [i for i, t in enumerate(self.interactions) if len(t) == order]
        return InteractionValues(
            values=self.values[:, keep].clone(),
            interactions=[self.interactions[i] for i in keep],
            index=self.index,
            order=order,
            n_players=self.n_players,
            baseline_value=self.baseline_value.clone(),
            min_order=order,
            estimated=self.estimated,
            n_evals=self.n_evals,
        )

    def to_dict(self, instance: int = 0, output: int = 0) -> dict[tuple[int, ...], float]:
        """``{players: value}`` for one instance and output."""
        col = self.values[instance, :, output].tolist()
        return dict(zip(self.interactions, col, strict=True))

    def top_k(
        self, k: int, instance: int = 0, output: int = 0, include_empty: bool = False
    ) -> list[tuple[tuple[int, ...], float]]:
        """The ``k`` interactions with the largest absolute value, largest first.

        Args:
            k: how many to return.
            instance: which instance.
            output: which output.
            include_empty: also rank the empty interaction.

        Returns:
            list of (players, value).
        """
        check_positive(k, "k")
        items = [(t, v) for t, v in self.to_dict(instance, output).items() if include_empty or t]
        items.sort(key=lambda tv: (-abs(tv[1]), len(tv[0]), tv[0]))
        return items[:k]

    def to_shapiq(self, instance: int = 0, output: int = 0) -> Any:
        """One instance and output as a ``shapiq.InteractionValues`` (needs shapiq installed)."""
        try:
            import shapiq
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("to_shapiq() needs shapiq: pip install 'shapiq==1.4.1'") from err
        import numpy as np

        return shapiq.InteractionValues(
            values=np.asarray(self.values[instance, :, output].detach().cpu(), dtype=float),
            index=self.index,
            max_order=self.order,
            min_order=self.min_order,
            n_players=self.n_players,
            interaction_lookup=dict(self.lookup),
            estimated=self.estimated,
            estimation_budget=self.n_evals,
            baseline_value=float(self.baseline_value[instance, output]),
        )

    @classmethod
    def from_shapiq(cls, iv: Any) -> InteractionValues:
        """Build from a ``shapiq.InteractionValues`` (one instance, one output)."""
        n = int(iv.n_players)
        tuples = list(
            _make_basis(n, int(iv.max_order), int(iv.min_order), torch.device("cpu")).tuples
        )
        vals = torch.tensor([float(iv[t]) for t in tuples], dtype=torch.float64)
        return cls(
            values=vals.view(1, -1, 1),
            interactions=tuples,
            index=str(iv.index),
            order=int(iv.max_order),
            n_players=n,
            baseline_value=torch.tensor([[float(iv.baseline_value)]], dtype=torch.float64),
            min_order=int(iv.min_order),
            estimated=bool(iv.estimated),
            n_evals=iv.estimation_budget,
        )
