"""``ShapleyValues``: the one result type of every estimator, explainer call and baseline.

It sits at the bottom of the layer stack (it imports only torch and numpy; shap lazily), so every
layer above may return it.

Shapes: ``values`` ``(B, d, C)`` (B instances, d players, C outputs), ``base_values`` ``(B, C)``
(the value of the empty coalition, v(∅)), ``std`` ``(B, d, C)`` or ``None``. For an exact
method, ``values.sum(1) == v(N) - base_values`` (efficiency; see
:meth:`ShapleyValues.check_efficiency`).

Baselines that explain only one class per instance (captum / shap image baselines) return
``C = 1`` with ``target`` set to the ``(B,)`` class that column holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

__all__ = ["ShapleyValues"]


def _user_error(msg: str) -> Exception:
    from simshap.errors import UserError

    return UserError(msg)


@dataclass(eq=False)
class ShapleyValues:
    """Shapley values of B instances, d players and C outputs.

    Attributes:
        values: ``(B, d, C)`` attributions.
        base_values: ``(B, C)`` v(∅) (NaN where a method does not know it).
        std: ``(B, d, C)`` standard error of ``values`` (``None`` for exact or deterministic
            methods).
        n_evals: game evaluations (coalitions) per instance, v(∅) and v(N) included (for
            gradient baselines, forward/backward passes are not counted: 0).
        method: the method that produced them (e.g. ``"exact"``, ``"kernel_shap"``,
            ``"captum.attr.IntegratedGradients"``).
        player_names: optional names of the d players.
        class_names: optional names of the C outputs.
        grid: ``(h, w)`` when the players are superpixels on an ``h x w`` grid (row-major).
        target: ``(B,)`` classes when ``C == 1`` holds one explained class per instance.
        extras: what is explained (``game``, ``explained``...) and method-specific diagnostics
            (e.g. IG's convergence delta, a fallback reason, the model's own output).
        prediction: ``(B, C)`` the value the attributions add up to, base + Σφ (v(N)), where
            the method is efficient; ``None`` otherwise.
        data: the explained rows (raw, as given), which shap's plots colour by.

    Indexing works like ``shap.Explanation``'s, by position or by name, and keeps the three
    axes: ``sv[0]`` (one instance), ``sv[:, "age"]``, ``sv[..., "benign"]``, ``sv[:10, :, 1]``.
    """

    values: torch.Tensor
    base_values: torch.Tensor
    std: torch.Tensor | None = None
    n_evals: int = 0
    method: str = ""
    player_names: list[str] | None = None
    class_names: list[str] | None = None
    grid: tuple[int, int] | None = None
    target: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    prediction: torch.Tensor | None = None
    data: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.values, torch.Tensor) or self.values.ndim != 3:
            got = getattr(self.values, "shape", type(self.values).__name__)
            raise _user_error(f"values must be a (B, d, C) tensor, got {got}")
        b, d, c = self.values.shape
        if self.base_values is None:
            self.base_values = torch.full(
                (b, c), float("nan"), dtype=self.values.dtype, device=self.values.device
            )
        if tuple(self.base_values.shape) != (b, c):
            raise _user_error(
                f"base_values must have shape (B, C) = ({b}, {c}), got "
                f"{tuple(self.base_values.shape)}"
            )
        if self.std is not None and self.std.shape != self.values.shape:
            raise _user_error(f"std must have the shape of values {(b, d, c)}")
        if self.grid is not None and self.grid[0] * self.grid[1] != d:
            raise _user_error(f"grid {self.grid} does not hold d={d} players")
        if self.prediction is not None and tuple(self.prediction.shape) != (b, c):
            raise _user_error(
                f"prediction must have shape (B, C) = ({b}, {c}), got "
                f"{tuple(self.prediction.shape)}"
            )

    def __repr__(self) -> str:
        b, d, c = self.values.shape
        what = self.extras.get("explained")
        parts = [f"{b} instances", f"{d} players", f"{c} outputs", f"method={self.method!r}"]
        if "game" in self.extras:
            parts.append(f"game={self.extras['game']!r}")
        if what:
            parts.append(f"explaining {what}")
        parts.append(f"n_evals={self.n_evals}")
        return f"ShapleyValues({', '.join(parts)})"

    # ------------------------------------------------------------------ indexing
    def _axis_index(self, key: Any, names: list[str] | None, size: int, axis: str) -> Any:
        """A position, slice, name or list of them -> something torch indexes with (kept 1-D)."""

        def one(k: Any) -> int:
            if isinstance(k, str):
                if names is None or k not in names:
                    raise _user_error(f"no {axis} named {k!r}; {axis}s: {names}")
                return names.index(k)
            if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
                i = int(k)
                if not -size <= i < size:
                    raise _user_error(f"{axis} index {i} is out of range for {size} {axis}s")
                return i % size
            raise _user_error(f"index {axis}s by position, name, slice or list, got {k!r}")

        if isinstance(key, slice):
            return key
        if isinstance(key, (list, tuple, np.ndarray, torch.Tensor)):
            seq = key.tolist() if hasattr(key, "tolist") else list(key)
            return [one(k) for k in seq]
        return [one(key)]

    def __getitem__(self, key: Any) -> ShapleyValues:
        keys = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in keys):
            i = keys.index(Ellipsis)
            keys = keys[:i] + (slice(None),) * (3 - len(keys) + 1) + keys[i + 1 :]
        if len(keys) > 3:
            raise _user_error("ShapleyValues has three axes: instances, players, outputs")
        keys = keys + (slice(None),) * (3 - len(keys))
        b, d, c = self.values.shape
        ib = self._axis_index(keys[0], None, b, "instance")
        ip = self._axis_index(keys[1], self.player_names, d, "player")
        ic = self._axis_index(keys[2], self.class_names, c, "output")

        def pick(t: torch.Tensor | None, axes: tuple[Any, ...]) -> torch.Tensor | None:
            if t is None:
                return None
            for dim, idx in enumerate(axes):
                t = t[(slice(None),) * dim + (idx,)]
            return t

        def names_of(names: list[str] | None, idx: Any) -> list[str] | None:
            if names is None:
                return None
            return (
                list(np.asarray(names, dtype=object)[idx])
                if isinstance(idx, list)
                else list(names[idx])
            )

        data = self.data
        if data is not None:
            rows = np.arange(b)[ib] if not isinstance(ib, list) else np.asarray(ib)
            data = data.iloc[rows] if hasattr(data, "iloc") else np.asarray(data)[rows]
        keep_players = isinstance(ip, slice) and ip == slice(None)
        extras = {
            k: (
                pick(v, (ib, ic))
                if isinstance(v, torch.Tensor) and v.ndim == 2 and v.shape == (b, c)
                else v
            )
            for k, v in self.extras.items()
        }
        return replace(
            self,
            values=pick(self.values, (ib, ip, ic)),
            base_values=pick(self.base_values, (ib, ic)),
            std=pick(self.std, (ib, ip, ic)),
            player_names=names_of(self.player_names, ip),
            class_names=names_of(self.class_names, ic),
            grid=self.grid if keep_players else None,
            target=pick(self.target, (ib,)),
            prediction=pick(self.prediction, (ib, ic)) if keep_players else None,
            data=data if keep_players else None,
            extras=extras,
        )

    # ------------------------------------------------------------------ shape helpers
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, d, C)``."""
        return tuple(self.values.shape)  # type: ignore[return-value]

    def __len__(self) -> int:
        return self.values.shape[0]

    def _targets(self, target: int | torch.Tensor | Sequence[int] | None) -> torch.Tensor:
        b, _, c = self.values.shape
        if target is None:
            if self.target is not None:
                return torch.zeros(b, dtype=torch.long)
            if c != 1:
                raise _user_error(
                    f"select(target) needs a class: the values hold C={c} outputs; pass an int "
                    "or a (B,) tensor of classes"
                )
            return torch.zeros(b, dtype=torch.long)
        if isinstance(target, str):
            if not self.class_names or target not in self.class_names:
                raise _user_error(f"no output named {target!r}; outputs: {self.class_names}")
            target = self.class_names.index(target)
        t = torch.as_tensor(target).long().cpu()
        if t.ndim == 0:
            t = t.expand(b)
        if t.shape != (b,):
            raise _user_error(f"target must be an int or a (B,) = ({b},) tensor of classes")
        if self.target is not None:  # one stored column per instance
            if not torch.equal(t, self.target.long().cpu()):
                raise _user_error("these values hold only the classes in .target; select those")
            return torch.zeros(b, dtype=torch.long)
        if bool((t < 0).any()) or bool((t >= c).any()):
            raise _user_error(f"target classes must lie in 0..{c - 1}")
        return t

    def select(self, target: int | torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """One class per instance: an int or a ``(B,)`` tensor of classes -> values ``(B, d)``."""
        t = self._targets(target).to(self.values.device)
        idx = t.view(-1, 1, 1).expand(-1, self.values.shape[1], 1)
        return self.values.gather(2, idx).squeeze(2)

    def select_base(self, target: int | torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """The base value of the selected class per instance: ``(B,)``."""
        t = self._targets(target).to(self.base_values.device)
        return self.base_values.gather(1, t.view(-1, 1)).squeeze(1)

    def check_efficiency(self, v_full: torch.Tensor, atol: float = 1e-6) -> bool:
        """Whether ``values.sum(1) == v(N) - base_values`` (holds for exact and KernelSHAP)."""
        v_full = torch.as_tensor(v_full, dtype=self.values.dtype, device=self.values.device)
        return bool(torch.allclose(self.values.sum(1), v_full - self.base_values, atol=atol))

    def as_image(self) -> torch.Tensor:
        """Superpixel values as images: ``(B, C, h, w)`` (players are row-major on ``grid``)."""
        if self.grid is None:
            raise _user_error(
                "as_image() needs superpixel players: these values have no grid (set grid=(h, w))"
            )
        b, _, c = self.values.shape
        return self.values.permute(0, 2, 1).reshape(b, c, *self.grid)

    def to(self, device: torch.device | str) -> ShapleyValues:
        """A copy with every tensor on ``device``."""

        def mv(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return replace(
            self,
            values=mv(self.values),
            base_values=mv(self.base_values),
            std=mv(self.std),
            prediction=mv(self.prediction),
        )

    def to_shap(
        self,
        target: int | str | torch.Tensor | Sequence[int] | None = None,
        data: Any = None,
    ) -> Any:
        """A ``shap.Explanation`` for shap's plots.

        With ``target`` (or one stored class): values ``(B, d)``, ready for
        ``shap.plots.bar`` / ``beeswarm`` / ``waterfall(e[0])``. Without it and ``C > 1``:
        ``(B, d, C)`` with ``output_names``. For superpixel values (``grid`` set) the values are
        reshaped to ``(B, h, w, 1)`` (or ``(..., C)``) and ``data`` should be images
        ``(B, h, w, channels)`` for ``shap.plots.image``.

        Args:
            target: class per instance to keep (index, name, or ``(B,)``).
            data: feature values ``(B, d)`` (tabular; default the explained rows, with string
                columns as category codes so the plots have colours) or images (superpixel
                values).
        """
        import shap

        if data is None and self.grid is None:
            data = _plot_data(self.data)
        one = target is not None or self.values.shape[2] == 1 or self.target is not None
        if one:
            vals = self.select(target).detach().cpu().double().numpy()
            base = self.select_base(target).detach().cpu().double().numpy()
        else:
            vals = self.values.detach().cpu().double().numpy()
            base = self.base_values.detach().cpu().double().numpy()
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        if self.grid is not None:
            b = vals.shape[0]
            if one:
                vals = vals.reshape(b, *self.grid, 1)
            else:
                vals = vals.reshape(b, *self.grid, -1)
            return shap.Explanation(
                values=vals, base_values=base, data=data, output_names=self.class_names
            )
        return shap.Explanation(
            values=vals,
            base_values=base,
            data=None if data is None else np.asarray(data),
            feature_names=self.player_names,
            output_names=None if one else self.class_names,
        )


def _plot_data(data: Any) -> np.ndarray | None:
    """Rows as numbers for shap's colours: numeric columns as they are, strings as codes."""
    if data is None:
        return None
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data, dtype=object))
    cols = []
    for name in frame.columns:
        col = pd.to_numeric(frame[name], errors="coerce")
        if col.isna().sum() > frame[name].isna().sum():  # strings: their sorted codes
            col = pd.Series(pd.Categorical(frame[name].astype(str)).codes, dtype=float)
        cols.append(col.to_numpy(dtype=np.float64))
    return np.stack(cols, axis=1)
