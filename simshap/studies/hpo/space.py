"""Hyperparameter configuration spaces (numeric, log-scale, integer, categorical).

A configuration is a row of a float64 array with one column per hyperparameter, holding the
value itself for numeric hyperparameters (integers are stored as whole numbers) and the index
of the choice for categorical ones. :meth:`ConfigSpace.to_unit` maps rows to [0, 1]^d (log
scale where asked) for surrogate models; :meth:`ConfigSpace.decode` gives the ``{name: value}``
dictionaries a learner takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Hyperparameter", "Float", "Integer", "Categorical", "ConfigSpace"]


@dataclass(frozen=True)
class Hyperparameter:
    """Base class: a named hyperparameter with a default value."""

    name: str

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` values drawn uniformly (on the log scale where set), encoded as floats."""
        raise NotImplementedError

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        """Encoded values -> [0, 1]."""
        raise NotImplementedError

    def encode(self, value: Any) -> float:
        """A value (e.g. a choice) -> its float encoding; raises ValueError when out of range."""
        raise NotImplementedError

    def decode(self, value: float) -> Any:
        """Float encoding -> the value a learner takes."""
        raise NotImplementedError

    @property
    def default_encoded(self) -> float:
        """Encoded default."""
        return self.encode(self.default)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Float(Hyperparameter):
    """A real hyperparameter in ``[low, high]``, optionally on a log scale.

    Args:
        name: hyperparameter name.
        low: lower bound.
        high: upper bound.
        log: sample and encode on a log scale (needs ``low > 0``).
        default: reference value (default: the midpoint on the chosen scale).
    """

    low: float = 0.0
    high: float = 1.0
    log: bool = False
    default: float | None = None

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"{self.name}: need low < high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log-scale range needs low > 0, got {self.low}")
        if self.default is None:
            mid = self._from_unit(np.array(0.5))
            object.__setattr__(self, "default", float(mid))
        self.encode(self.default)

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:  # noqa: D102
        return self._from_unit(rng.random(n))

    def to_unit(self, values: np.ndarray) -> np.ndarray:  # noqa: D102
        if self.log:
            return (np.log(values) - math.log(self.low)) / (
                math.log(self.high) - math.log(self.low)
            )
        return (values - self.low) / (self.high - self.low)

    def encode(self, value: Any) -> float:  # noqa: D102
        v = float(value)
        if not self.low <= v <= self.high:
            raise ValueError(f"{self.name}={v} is outside [{self.low}, {self.high}]")
        return v

    def decode(self, value: float) -> float:  # noqa: D102
        return float(value)


@dataclass(frozen=True)
class Integer(Float):
    """An integer hyperparameter in ``[low, high]`` (log scale optional); values are rounded."""

    def __post_init__(self) -> None:
        if self.default is not None and float(self.default) != round(float(self.default)):
            raise ValueError(f"{self.name}: integer default must be whole, got {self.default}")
        super().__post_init__()
        object.__setattr__(self, "default", int(round(float(self.default))))

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        # widen by half a unit on each side so that both bounds are as likely as inner values
        lo, hi = self.low - 0.4999, self.high + 0.4999
        if self.log:
            lo, hi = max(lo, self.low * 0.5), hi
            x = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
        else:
            x = lo + u * (hi - lo)
        return np.clip(np.round(x), self.low, self.high)

    def decode(self, value: float) -> int:  # noqa: D102
        return int(round(value))


@dataclass(frozen=True)
class Categorical(Hyperparameter):
    """A categorical hyperparameter; encoded as the index of its choice.

    Args:
        name: hyperparameter name.
        choices: the possible values.
        default: reference choice (default: the first).
    """

    choices: tuple[Any, ...] = ()
    default: Any = None

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise ValueError(f"{self.name}: a categorical needs at least 2 choices")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.default is None:
            object.__setattr__(self, "default", self.choices[0])
        self.encode(self.default)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:  # noqa: D102
        return rng.integers(0, len(self.choices), n).astype(np.float64)

    def to_unit(self, values: np.ndarray) -> np.ndarray:  # noqa: D102
        return values / (len(self.choices) - 1)

    def encode(self, value: Any) -> float:  # noqa: D102
        if value not in self.choices:
            raise ValueError(f"{self.name}={value!r} is not one of {list(self.choices)}")
        return float(self.choices.index(value))

    def decode(self, value: float) -> Any:  # noqa: D102
        return self.choices[int(round(value))]


_TYPES = {"float": Float, "int": Integer, "integer": Integer, "categorical": Categorical}


class ConfigSpace:
    """An ordered set of hyperparameters; configurations are float64 rows.

    Args:
        hyperparameters: the hyperparameters, in player order.
    """

    def __init__(self, hyperparameters: Sequence[Hyperparameter]) -> None:
        names = [hp.name for hp in hyperparameters]
        if len(set(names)) != len(names):
            raise ValueError(f"hyperparameter names must be unique, got {names}")
        if not names:
            raise ValueError("a configuration space needs at least one hyperparameter")
        self.hyperparameters = list(hyperparameters)
        self.names = names

    def __len__(self) -> int:
        return len(self.hyperparameters)

    def __repr__(self) -> str:
        return f"ConfigSpace({self.hyperparameters!r})"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]]) -> ConfigSpace:
        """Build from ``{name: {type: float|int|categorical, low, high, log, default, choices}}``.

        Raises:
            ValueError: unknown type or keys, naming the hyperparameter.
        """
        hps: list[Hyperparameter] = []
        for name, raw in spec.items():
            raw = dict(raw)
            kind = str(raw.pop("type", "float")).lower()
            if kind not in _TYPES:
                raise ValueError(
                    f"hyperparameter {name!r}: unknown type {kind!r}; use one of {sorted(_TYPES)}"
                )
            allowed = (
                {"choices", "default"}
                if kind == "categorical"
                else {"low", "high", "log", "default"}
            )
            unknown = set(raw) - allowed
            if unknown:
                raise ValueError(
                    f"hyperparameter {name!r} ({kind}): unknown keys {sorted(unknown)}; "
                    f"allowed: {sorted(allowed | {'type'})}"
                )
            if kind == "categorical":
                raw["choices"] = tuple(raw.get("choices", ()))
            hps.append(_TYPES[kind](name=name, **raw))
        return cls(hps)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` random configurations ``(n, d)``."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return np.stack([hp.sample(n, rng) for hp in self.hyperparameters], axis=1)

    def default(self) -> np.ndarray:
        """The default (reference) configuration ``(d,)``."""
        return np.array([hp.default_encoded for hp in self.hyperparameters], dtype=np.float64)

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """``{name: value}`` (missing names take the default) -> ``(d,)``."""
        unknown = set(config) - set(self.names)
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)}; known: {self.names}")
        return np.array(
            [hp.encode(config.get(hp.name, hp.default)) for hp in self.hyperparameters],  # type: ignore[attr-defined]
            dtype=np.float64,
        )

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """``(d,)`` -> ``{name: value}``."""
        return {
            hp.name: hp.decode(float(v)) for hp, v in zip(self.hyperparameters, row, strict=True)
        }

    def to_unit(self, configs: np.ndarray) -> np.ndarray:
        """``(N, d)`` configurations -> ``[0, 1]^d`` features for surrogate models."""
        configs = np.asarray(configs, dtype=np.float64)
        if configs.ndim != 2 or configs.shape[1] != len(self):
            raise ValueError(f"configs must be (N, {len(self)}), got {configs.shape}")
        return np.stack(
            [hp.to_unit(configs[:, j]) for j, hp in enumerate(self.hyperparameters)], axis=1
        )
