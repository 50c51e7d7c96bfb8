"""The F1–F10 test suite of Tsang et al. (2018) as printed in ParaACE's Table 4 (p = 10).

Features are 1-indexed in the formulas (x1 … x10) and 0-indexed in arrays (``x[:, 0]`` is x1).
Two places where the authors' repository departs from the paper follow the paper:

* F2 takes ``sqrt(|x7| / (1 + |x8|))`` (the printed root of x7 / (1 + |x8|) with the absolute
  value that keeps it real on U(-1, 1));
* F3 and F4 take the term ``-(x3²)^|x4|``.

Inputs are U(-1, 1) except for F1 (Sorokina et al.): x4, x5, x8, x10 ~ U(0.6, 1), the rest
U(0, 1). The targets get noise 0.1 · N(0, 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score

from simshap.errors import UserError

__all__ = [
    "FUNCTIONS",
    "INTERACTION_SETS",
    "NOISE_STD",
    "NUM_FEATURES",
    "ground_truth_pairs",
    "input_bounds",
    "pair_labels",
    "pair_roc_auc",
    "sample_inputs",
    "synthetic_dataset",
]

NUM_FEATURES = 10
NOISE_STD = 0.1


def _c(x: np.ndarray, i: int) -> np.ndarray:
    """Column of the 1-indexed feature x_i."""
    return x[:, i - 1]


def f1(x: np.ndarray) -> np.ndarray:
    """π^(x1 x2) √(2 x3) − asin(x4) + log(x3 + x5) − (x9/x10) √(x7/x8) − x2 x7."""
    x1, x2, x3, x4, x5, x7, x8, x9, x10 = (_c(x, i) for i in (1, 2, 3, 4, 5, 7, 8, 9, 10))
    return (
        np.pi ** (x1 * x2) * np.sqrt(2 * x3)
        - np.arcsin(x4)
        + np.log(x3 + x5)
        - (x9 / x10) * np.sqrt(x7 / x8)
        - x2 * x7
    )


def f2(x: np.ndarray) -> np.ndarray:
    """π^(x1 x2) √(2|x3|) − asin(0.5 x4) + log(|x3 + x5| + 1) + x9/(1+|x10|) √(|x7|/(1+|x8|)) − x2 x7."""  # noqa: E501
    x1, x2, x3, x4, x5, x7, x8, x9, x10 = (_c(x, i) for i in (1, 2, 3, 4, 5, 7, 8, 9, 10))
    return (
        np.pi ** (x1 * x2) * np.sqrt(2 * np.abs(x3))
        - np.arcsin(0.5 * x4)
        + np.log(np.abs(x3 + x5) + 1)
        + x9 / (1 + np.abs(x10)) * np.sqrt(np.abs(x7) / (1 + np.abs(x8)))
        - x2 * x7
    )


def _f3_terms(x: np.ndarray) -> np.ndarray:
    x1, x2, x3, x4, x5, x7, x8, x9, x10 = (_c(x, i) for i in (1, 2, 3, 4, 5, 7, 8, 9, 10))
    return (
        np.exp(np.abs(x1 - x2))
        + np.abs(x2 * x3)
        - (x3**2) ** np.abs(x4)
        + np.log(x4**2 + x5**2 + x7**2 + x8**2)
        + x9
        + 1 / (1 + x10**2)
    )


def f3(x: np.ndarray) -> np.ndarray:
    """exp|x1 − x2| + |x2 x3| − (x3²)^|x4| + log(x4² + x5² + x7² + x8²) + x9 + 1/(1 + x10²)."""
    return _f3_terms(x)


def f4(x: np.ndarray) -> np.ndarray:
    """F3 + (x1 x4)²."""
    return _f3_terms(x) + (_c(x, 1) * _c(x, 4)) ** 2


def f5(x: np.ndarray) -> np.ndarray:
    """1/(1 + x1² + x2² + x3²) + √exp(x4 + x5) + |x6 + x7| + x8 x9 x10."""
    return (
        1 / (1 + _c(x, 1) ** 2 + _c(x, 2) ** 2 + _c(x, 3) ** 2)
        + np.sqrt(np.exp(_c(x, 4) + _c(x, 5)))
        + np.abs(_c(x, 6) + _c(x, 7))
        + _c(x, 8) * _c(x, 9) * _c(x, 10)
    )


def f6(x: np.ndarray) -> np.ndarray:
    """exp(|x1 x2| + 1) − exp(|x3 + x4| + 1) + cos(x5 + x6 − x8) + √(x8² + x9² + x10²)."""
    return (
        np.exp(np.abs(_c(x, 1) * _c(x, 2)) + 1)
        - np.exp(np.abs(_c(x, 3) + _c(x, 4)) + 1)
        + np.cos(_c(x, 5) + _c(x, 6) - _c(x, 8))
        + np.sqrt(_c(x, 8) ** 2 + _c(x, 9) ** 2 + _c(x, 10) ** 2)
    )


def f7(x: np.ndarray) -> np.ndarray:
    """(atan x1 + atan x2)² + max(x3 x4 + x6, 0) − 1/(1 + (x4 x5 x6 x7 x8)²) + (|x7|/(1+|x9|))⁵ + Σ x_i."""  # noqa: E501
    prod = _c(x, 4) * _c(x, 5) * _c(x, 6) * _c(x, 7) * _c(x, 8)
    return (
        (np.arctan(_c(x, 1)) + np.arctan(_c(x, 2))) ** 2
        + np.maximum(_c(x, 3) * _c(x, 4) + _c(x, 6), 0)
        - 1 / (1 + prod**2)
        + (np.abs(_c(x, 7)) / (1 + np.abs(_c(x, 9)))) ** 5
        + x.sum(axis=1)
    )


def f8(x: np.ndarray) -> np.ndarray:
    """x1 x2 + 2^(x3 + x5 + x6) + 2^(x3 + x4 + x5 + x7) + sin(x7 sin(x8 + x9)) + acos(0.9 x10)."""
    return (
        _c(x, 1) * _c(x, 2)
        + 2 ** (_c(x, 3) + _c(x, 5) + _c(x, 6))
        + 2 ** (_c(x, 3) + _c(x, 4) + _c(x, 5) + _c(x, 7))
        + np.sin(_c(x, 7) * np.sin(_c(x, 8) + _c(x, 9)))
        + np.arccos(0.9 * _c(x, 10))
    )


def f9(x: np.ndarray) -> np.ndarray:
    """tanh(x1 x2 + x3 x4) √|x5| + exp(x5 + x6) + log((x6 x7 x8)² + 1) + x9 x10 + 1/(1 + |x10|)."""
    return (
        np.tanh(_c(x, 1) * _c(x, 2) + _c(x, 3) * _c(x, 4)) * np.sqrt(np.abs(_c(x, 5)))
        + np.exp(_c(x, 5) + _c(x, 6))
        + np.log((_c(x, 6) * _c(x, 7) * _c(x, 8)) ** 2 + 1)
        + _c(x, 9) * _c(x, 10)
        + 1 / (1 + np.abs(_c(x, 10)))
    )


def f10(x: np.ndarray) -> np.ndarray:
    """sinh(x1 + x2) + acos(tanh(x3 + x5 + x7)) + cos(x4 + x5) + sec(x7 x9)."""
    return (
        np.sinh(_c(x, 1) + _c(x, 2))
        + np.arccos(np.tanh(_c(x, 3) + _c(x, 5) + _c(x, 7)))
        + np.cos(_c(x, 4) + _c(x, 5))
        + 1 / np.cos(_c(x, 7) * _c(x, 9))
    )


FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "F1": f1,
    "F2": f2,
    "F3": f3,
    "F4": f4,
    "F5": f5,
    "F6": f6,
    "F7": f7,
    "F8": f8,
    "F9": f9,
    "F10": f10,
}

_F3_SETS = ((1, 2), (2, 3), (3, 4), (4, 5, 7, 8))
# the interaction sets of the table (1-indexed)
INTERACTION_SETS: dict[str, tuple[tuple[int, ...], ...]] = {
    "F1": ((1, 2, 3), (3, 5), (7, 8, 9, 10), (2, 7)),
    "F2": ((1, 2, 3), (3, 5), (7, 8, 9, 10), (2, 7)),
    "F3": _F3_SETS,
    "F4": (*_F3_SETS, (1, 4)),
    "F5": ((1, 2, 3), (4, 5), (6, 7), (8, 9, 10)),
    "F6": ((1, 2), (3, 4), (5, 6, 8), (8, 9, 10)),
    "F7": ((1, 2), (3, 4, 6), (4, 5, 6, 7, 8), (7, 9)),
    "F8": ((1, 2), (3, 5, 6), (3, 4, 5, 7), (7, 8, 9)),
    "F9": ((1, 2, 3, 4, 5), (5, 6), (6, 7, 8), (9, 10)),
    "F10": ((1, 2), (3, 5, 7), (4, 5), (7, 9)),
}


def _check_name(name: str) -> str:
    if name not in FUNCTIONS:
        raise UserError(f"unknown synthetic function {name!r}; choose one of {list(FUNCTIONS)}")
    return name


def input_bounds(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds ``(10,)`` of the uniform inputs of ``name``."""
    _check_name(name)
    if name == "F1":
        lo = np.zeros(NUM_FEATURES)
        hi = np.ones(NUM_FEATURES)
        lo[[3, 4, 7, 9]] = 0.6  # x4, x5, x8, x10 ~ U(0.6, 1)
        return lo, hi
    return -np.ones(NUM_FEATURES), np.ones(NUM_FEATURES)


def sample_inputs(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` input rows of ``name`` drawn from its uniform distribution."""
    lo, hi = input_bounds(name)
    return rng.uniform(lo, hi, size=(n, NUM_FEATURES))


def synthetic_dataset(
    name: str, n: int, seed: int, noise: float = NOISE_STD
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` with y = F(X) + noise · N(0, 1), float64."""
    rng = np.random.default_rng(seed)
    x = sample_inputs(name, n, rng)
    y = FUNCTIONS[_check_name(name)](x) + noise * rng.standard_normal(n)
    return x, y


def ground_truth_pairs(name: str) -> set[tuple[int, int]]:
    """Every 0-indexed pair (i, j), i < j, inside one of the interaction sets of ``name``."""
    out: set[tuple[int, int]] = set()
    for group in INTERACTION_SETS[_check_name(name)]:
        out.update((a - 1, b - 1) for a, b in itertools.combinations(sorted(group), 2))
    return out


def pair_labels(name: str, pairs: list[tuple[int, int]]) -> np.ndarray:
    """0/1 ground truth of each pair (in the given order)."""
    truth = ground_truth_pairs(name)
    return np.array([1 if tuple(sorted(p)) in truth else 0 for p in pairs])


def pair_roc_auc(name: str, pairs: list[tuple[int, int]], scores: np.ndarray) -> float:
    """ROC-AUC of pair scores against the ground truth of ``name``."""
    return float(roc_auc_score(pair_labels(name, pairs), np.asarray(scores, dtype=np.float64)))
