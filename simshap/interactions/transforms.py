"""Fast subset transforms on ``(B, 2^n, C)`` game tables and the interaction basis.

Möbius, zeta and (ranked) superset sums by butterfly passes, and the coalitions up to an order
that the interaction indices share.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

__all__ = ["interaction_basis", "moebius_transform", "superset_transform", "zeta_transform"]

# bytes a ranked transform may allocate at once (chunks over instances x outputs beyond this)
_RANKED_MEMORY = 256 * 2**20


# --------------------------------------------------------------------------- subset transforms


def _butterfly(x: torch.Tensor, n: int, op: str) -> torch.Tensor:
    """In-place passes over the coalition axis (last) of ``x`` (R, 2^n); returns ``x``."""
    r = x.shape[0]
    for i in range(n):
        v = x.view(r, 2 ** (n - 1 - i), 2, 2**i)
        if op == "zeta":  # f(T) <- Σ_{S ⊆ T} f(S)
            v[:, :, 1].add_(v[:, :, 0])
        elif op == "moebius":  # inverse of zeta
            v[:, :, 1].sub_(v[:, :, 0])
        else:  # "superset": f(T) <- Σ_{S ⊇ T} f(S)
            v[:, :, 0].add_(v[:, :, 1])
    return x


def _to_rows(table: torch.Tensor) -> torch.Tensor:
    """``(B, 2^n, C)`` -> contiguous float64 ``(B*C, 2^n)`` copy."""
    b, m, c = table.shape
    return table.to(torch.float64).permute(0, 2, 1).reshape(b * c, m).clone()


def _from_rows(rows: torch.Tensor, b: int, c: int) -> torch.Tensor:
    """``(B*C, K)`` -> ``(B, K, C)``."""
    return rows.view(b, c, -1).permute(0, 2, 1)


def _check_table(table: torch.Tensor) -> int:
    if table.ndim != 3:
        raise ValueError(f"table must be (B, 2^n, C), got shape {tuple(table.shape)}")
    n = int(round(math.log2(max(table.shape[1], 1))))
    if 2**n != table.shape[1]:
        raise ValueError(f"the table's second axis must have length 2^n, got {table.shape[1]}")
    return n


def moebius_transform(table: torch.Tensor) -> torch.Tensor:
    """Möbius coefficients of every coalition, O(n 2^n).

    Args:
        table: ``(B, 2^n, C)`` game values, coalition index with bit i = player i.

    Returns:
        float64 ``(B, 2^n, C)``: entry T is m(T) = Σ_{S ⊆ T} (-1)^{|T|-|S|} v(S).
    """
    n = _check_table(table)
    b, _, c = table.shape
    return _from_rows(_butterfly(_to_rows(table), n, "moebius"), b, c)


def zeta_transform(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`moebius_transform`: v(S) = Σ_{T ⊆ S} m(T), O(n 2^n).

    Args:
        coefficients: ``(B, 2^n, C)`` values per coalition index.

    Returns:
        float64 ``(B, 2^n, C)`` subset sums.
    """
    n = _check_table(coefficients)
    b, _, c = coefficients.shape
    return _from_rows(_butterfly(_to_rows(coefficients), n, "zeta"), b, c)


def superset_transform(values: torch.Tensor) -> torch.Tensor:
    """Superset sums f(T) = Σ_{S ⊇ T} values(S), O(n 2^n).

    Args:
        values: ``(B, 2^n, C)`` values per coalition index.

    Returns:
        float64 ``(B, 2^n, C)``.
    """
    n = _check_table(values)
    b, _, c = values.shape
    return _from_rows(_butterfly(_to_rows(values), n, "superset"), b, c)


def _ranked_superset(rows: torch.Tensor, n: int, index: torch.Tensor) -> torch.Tensor:
    """L_j(T) = Σ_{S ⊇ T, |S∖T| = j} f(S) for the coalitions ``index``.

    Args:
        rows: ``(R, 2^n)`` float64 values f.
        n: number of players.
        index: ``(p,)`` coalition indices T to return.

    Returns:
        ``(R, p, n + 1)``: axis 2 is j.
    """
    r = rows.shape[0]
    per_row = (2**n) * (n + 1) * 8
    chunk = max(1, _RANKED_MEMORY // per_row)
    out = []
    for start in range(0, r, chunk):
        part = rows[start : start + chunk]
        k = part.shape[0]
        x = torch.zeros(k, 2**n, n + 1, dtype=torch.float64, device=rows.device)
        x[:, :, 0] = part
        for i in range(n):
            v = x.view(k, 2 ** (n - 1 - i), 2, 2**i, n + 1)
            v[:, :, 0, :, 1:].add_(v[:, :, 1, :, :-1])
        out.append(x[:, index])
    return torch.cat(out)


# --------------------------------------------------------------------------- interaction basis


@dataclass(frozen=True)
class _Basis:
    """All interactions of size min_order..max_order among n players, in shapiq's order."""

    n: int
    tuples: tuple[tuple[int, ...], ...]
    index: torch.Tensor  # (p,) coalition index of each interaction
    sizes: torch.Tensor  # (p,)
    members: torch.Tensor  # (p, n) bool


def interaction_basis(
    n: int, max_order: int, min_order: int = 0, device: torch.device | str | None = None
) -> tuple[list[tuple[int, ...]], torch.Tensor]:
    """Interactions of size ``min_order..max_order``, by size then lexicographically.

    Args:
        n: number of players.
        max_order: largest interaction size.
        min_order: smallest interaction size.
        device: device of the returned membership matrix.

    Returns:
        (list of player tuples, bool membership matrix ``(p, n)``).
    """
    basis = _make_basis(n, max_order, min_order, torch.device(device or "cpu"))
    return list(basis.tuples), basis.members


def _make_basis(n: int, max_order: int, min_order: int, device: torch.device) -> _Basis:
    sizes = range(min_order, max_order + 1)
    tuples = tuple(t for size in sizes for t in itertools.combinations(range(n), size))
    members = torch.zeros(len(tuples), n, dtype=torch.bool)
    flat_rows = [i for i, t in enumerate(tuples) for _ in t]
    flat_cols = [p for t in tuples for p in t]
    members[flat_rows, flat_cols] = True
    members = members.to(device)
    bits = 1 << torch.arange(n, device=device)
    index = (members.long() * bits).sum(-1)
    return _Basis(n, tuples, index, members.sum(-1), members)
