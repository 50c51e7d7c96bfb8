"""One request's journey: a parsed JSON body -> checked raw rows -> Shapley values -> answer.

Shared by the uvicorn app (:mod:`simshap.serving.app`) and the LitServe backend. Rows are checked
and encoded by the explainer's own preprocessing, the same as in Python and ``simshap explain``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from simshap.errors import UserError
from simshap.serving.batch import Runtime

__all__ = ["ExplainHandler", "metadata"]


def metadata(explainer: Any) -> dict[str, Any]:
    """What a client needs to know: names, categories, what is explained, how faithfully."""
    prep = explainer.preprocessor
    c = explainer.net.spec["num_classes"]
    info = dict(explainer.hparams.get("model_info") or {})
    return {
        "method": type(explainer).__name__,
        "game": explainer.game_name,
        "explained": info.get("explained"),
        "task": info.get("task"),
        "fidelity": info.get("fidelity"),
        "accuracy": info.get("accuracy"),
        "feature_names": list(prep.feature_names),
        "categories": dict(prep.categories),
        "missing": list(prep.missing),
        "unseen_categories": prep.unseen_categories,
        "class_names": explainer.hparams.class_names or [str(i) for i in range(c)],
        "base_values": [float(v) for v in explainer.base_value.cpu()],
    }


def _cell(value: Any, where: str) -> Any:
    """A JSON value of a row: a number, a string or null (missing); anything else is refused."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, a string or null, got {json.dumps(value)[:40]}")
    try:
        return float(value)
    except OverflowError:
        return math.inf


class ExplainHandler:
    """Request body -> checked raw rows -> Shapley values -> answer; shared by both servers.

    The rows are checked and encoded by the explainer's own preprocessing (the same as in
    Python and ``simshap explain``): a missing value (``null``) is accepted in the columns that
    may be missing, an unseen category becomes the ``other`` code and is counted in the
    answer's ``warnings`` (or refused with ``unseen_categories: error``).

    Args:
        explainer: a loaded tabular explainer (it must hold its preprocessing; a model's game
            needs the model attached).
        max_rows: the most rows one request may carry.
        attributions: ``(explainer, x) -> (B, d, C)`` values of network inputs ``x`` (the serving
            benchmark swaps in KernelSHAP as its anchor). Implies ``runtime="torch"``.
        runtime: ``"onnx"`` runs the explainer's exported graph (:mod:`simshap.amortized.export`,
            equal to PyTorch to 1e-5) in ONNX Runtime with one thread; ``"torch"`` the module.
    """

    def __init__(
        self,
        explainer: Any,
        max_rows: int = 1024,
        attributions: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
        runtime: str = "onnx",
    ) -> None:
        self.run = Runtime(explainer, runtime, attributions=attributions)
        self.explainer = self.run.explainer
        self.runtime = self.run.runtime
        self.prep = explainer.preprocessor
        self.max_rows = int(max_rows)
        self.meta = metadata(explainer)

    def rows(self, instances: Any) -> np.ndarray:
        """The ``instances`` list as raw rows ``(B, d)`` in feature order (object array)."""
        names = self.meta["feature_names"]
        if not isinstance(instances, list) or not instances:
            raise UserError('"instances" must be a non-empty list of rows or records')
        if len(instances) > self.max_rows:
            raise UserError(
                f"{len(instances)} rows is over this server's limit of {self.max_rows} per request"
            )
        rows = []
        for i, inst in enumerate(instances):
            if isinstance(inst, dict):
                missing = [n for n in names if n not in inst]
                unknown = [k[:40] for k in inst if k not in names]
                if missing or unknown:
                    raise UserError(
                        f"instance {i}: missing features {missing[:5]}, unknown "
                        f"features {unknown[:5]}"
                    )
                inst = [inst[n] for n in names]
            if not isinstance(inst, list) or len(inst) != len(names):
                raise UserError(
                    f"instance {i} must be a list of {len(names)} values in the "
                    f"order {names[:5]}... or a record of them"
                )
            rows.append(
                [_cell(v, f"instance {i}, feature {n!r}") for n, v in zip(names, inst, strict=True)]
            )
        return np.array(rows, dtype=object)

    def target(self, target: Any) -> int | None:
        """A class index from an index or a class name (``None``: every class)."""
        if target is None:
            return None
        classes = self.meta["class_names"]
        if isinstance(target, str) and target in classes:
            return classes.index(target)
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(classes):
            return target
        raise UserError(f'"target" must be a class index 0..{len(classes) - 1} or one of {classes}')

    def decode(self, request: Any) -> tuple[dict[str, Any], int | None]:
        """A parsed JSON body -> (checked rows for :meth:`explain`, target).

        Raises :class:`UserError` for bad input.
        """
        if not isinstance(request, dict):
            raise UserError('the body must be a JSON object {"instances": [...]}')
        unknown = set(request) - {"instances", "target"}
        if unknown:
            raise UserError(
                f"unknown keys {sorted(k[:40] for k in unknown)[:5]}; send "
                '"instances" and optionally "target"'
            )
        if "instances" not in request:
            raise UserError('the body needs "instances": a list of rows or records')
        target = self.target(request.get("target"))
        raw = self.rows(request["instances"])
        unseen: dict[str, int] = {}
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, by name
            encoded = self.prep.encode(raw, unseen)
            x = self.prep.network_inputs(encoded)
        return {"raw": raw, "encoded": encoded, "x": x, "unseen": unseen}, target

    def explain(self, rows: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Values ``(B, d, C)`` and the prediction ``(B, C)`` they add up to."""
        return self.run(rows["raw"], rows["encoded"], rows["x"])

    def encode(
        self,
        result: tuple[torch.Tensor, torch.Tensor],
        target: int | None,
        rows: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The answer's JSON object."""
        values, prediction = result
        base = self.meta["base_values"]
        if target is not None:
            values, base, prediction = values[..., target], base[target], prediction[..., target]
        out = {
            "values": values.tolist(),
            "base_values": base,
            "prediction": prediction.tolist(),
            "feature_names": self.meta["feature_names"],
            "class_names": self.meta["class_names"],
            "game": self.meta["game"],
        }
        e = self.explainer
        if rows is not None and e.game_name == "surrogate" and e.model is not None:
            own = torch.from_numpy(e.model.on_array(rows["raw"])).float()
            out["model_output"] = (own[..., target] if target is not None else own).tolist()
        if rows is not None and rows["unseen"]:
            out["warnings"] = [
                f"{n} value(s) of {name!r} never seen in training were explained "
                "as the 'other' category"
                for name, n in rows["unseen"].items()
            ]
        return out
