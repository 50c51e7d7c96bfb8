"""Export a tabular explainer as one graph: raw rows in, Shapley values out (ONNX, TorchScript).

The graph holds the fitted preprocessing (missing values to their fill and indicator, the
standardization), the explainer network and the additive efficient normalization, so its values
add up: base + Σφ = ``prediction``. For the surrogate game the graph computes v(N) = s(x, 1)
itself; for the marginal and baseline games v(N) = f(x) is the model's own output, which the
graph takes as a second input ``prediction`` ``float64 (batch, C)`` (the model is the user's and
is not in the graph).

Input ``rows`` ``float32 (batch, d)`` in feature order, with a dynamic batch axis: string
(categorical) columns enter as their index in the metadata's ``categories[name]`` (an unseen
value as ``len(categories[name])``), a missing value as NaN. Outputs ``values`` ``float64
(batch, d, C)`` and ``prediction`` ``float64 (batch, C)``: the network runs in float32, the
efficient normalization in float64, so the values add up to the prediction to float64 precision
(float32 would leave gaps of 1e-5 on a regressor's predictions of order 100).

Metadata (feature names, class names, categories, base values, what is explained, the
surrogate's fidelity, the format version) travels with the file: ONNX ``metadata_props``,
TorchScript ``_extra_files["simshap.json"]``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simshap.amortized.base import AmortizedExplainer, efficient_normalization
from simshap.amortized.surrogate import log_odds
from simshap.errors import ExistingOutputError, UserError
from simshap.files import atomic_write

__all__ = ["EXPORT_VERSION", "ExportGraph", "export_explainer", "export_metadata"]

EXPORT_VERSION = 3  # 3: float64 outputs
FORMATS = ("onnx", "torchscript")


class ExportGraph(nn.Module):
    """Raw rows ``(B, d)`` -> Shapley values ``(B, d, C)`` and the prediction they add up to.

    Args:
        explainer: a trained tabular explainer that holds its preprocessing.
    """

    def __init__(self, explainer: AmortizedExplainer) -> None:
        super().__init__()
        prep = explainer.preprocessor
        if prep is None or "in_features" not in explainer.net.spec:
            raise UserError(
                "only tabular explainers that hold their preprocessing can be exported (train "
                "them with simshap.fit or `simshap run`)"
            )
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32))
        cols = [prep.feature_names.index(n) for n in prep.missing]
        self.register_buffer("missing_cols", torch.tensor(cols, dtype=torch.long))
        self.register_buffer("players", (~prep.dummy_mask()).float())
        self.register_buffer("base", explainer.base_value.detach().float().cpu().clone())
        self.net = explainer.net
        self.has_missing = bool(cols)
        surrogate = explainer.surrogate if explainer.game_name == "surrogate" else None
        if explainer.game_name == "surrogate" and surrogate is None:
            raise UserError(
                "this explainer was saved without its surrogate, whose v(N) its "
                "values add up to; save it with include_surrogate=True"
            )
        # the surrogate's network and what turns its output into v(N) (not the Lightning module)
        self.surrogate = surrogate.net if surrogate is not None else None
        if surrogate is not None:
            self.register_buffer("owner", surrogate.groups.owner.clone())
            self.register_buffer("t_mean", surrogate.target_mean.detach().cpu().clone())
            self.register_buffer("t_std", surrogate.target_std.detach().cpu().clone())
            self.task = surrogate.task
            self.logit = surrogate.hparams.get("link", "identity") == "logit"

    def _v_full(self, z: torch.Tensor) -> torch.Tensor:
        """v(N) = s(x, 1): the surrogate on every feature present."""
        out = self.surrogate(z, torch.ones_like(z, dtype=torch.bool)).float()
        if self.task == "regression":
            return out * self.t_std + self.t_mean
        if self.logit:
            return log_odds(out)
        return torch.softmax(out, dim=-1)

    def forward(self, rows: torch.Tensor, prediction: torch.Tensor | None = None) -> Any:
        """``rows (B, d)`` raw (and, for a model's game, ``prediction (B, C)``)."""
        na = torch.isnan(rows)
        z = torch.where(na, torch.zeros_like(rows), (rows - self.mean) / self.std)
        if self.has_missing:
            z = torch.cat([z, na[:, self.missing_cols].to(z.dtype)], dim=1)
        phi = self.net(z) * self.players.view(1, -1, 1)
        if self.surrogate is not None:
            prediction = self._v_full(z)
        assert prediction is not None
        total = prediction.double() - self.base.double()
        phi = efficient_normalization(phi.double(), total, self.players > 0)
        return phi, prediction.double()


def _device(explainer: AmortizedExplainer) -> torch.device:
    """The device of the explainer's parameters."""
    return next(explainer.net.parameters()).device


def export_metadata(explainer: AmortizedExplainer) -> dict[str, Any]:
    """What a client needs beside the graph: names, categories, base values, what is explained."""
    prep = explainer.preprocessor
    c = explainer.net.spec["num_classes"]
    game = explainer.game_name
    inputs = (
        "rows float32 (batch, d) in feature_names order; categorical columns as their "
        "index in categories[name] (an unseen value: len(categories[name])); missing "
        "values as NaN (allowed in the columns listed in missing)"
    )
    if game != "surrogate":
        inputs += (
            "; prediction float64 (batch, classes): the model's own output on the rows, "
            "which the values add up to"
        )
    return {
        "format": "simshap-export",
        "version": EXPORT_VERSION,
        "method": type(explainer).__name__,
        "game": game,
        "model": dict(explainer.hparams.get("model_info") or {}),
        "feature_names": list(prep.feature_names) if prep else None,
        "categories": dict(prep.categories) if prep else {},
        "missing": list(prep.missing) if prep else [],
        "class_names": explainer.hparams.class_names or [str(i) for i in range(c)],
        "base_values": [float(v) for v in explainer.base_value.cpu()],
        "input": inputs,
        "output": "values float64 (batch, d, classes); prediction float64 (batch, classes) = "
        "base_values + values.sum(1)",
    }


def export_explainer(
    explainer: AmortizedExplainer,
    path: str | os.PathLike[str],
    format: str = "onnx",
    overwrite: bool = False,
) -> Path:
    """Write ``explainer`` as an ONNX or TorchScript file with its metadata.

    Args:
        explainer: a trained tabular SimSHAP or FastSHAP with its preprocessing.
        path: the file to write.
        format: ``"onnx"`` or ``"torchscript"``.
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    if format not in FORMATS:
        raise UserError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistingOutputError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    graph = ExportGraph(explainer).cpu().eval()
    meta = export_metadata(explainer)
    d, c = len(meta["feature_names"]), len(meta["class_names"])
    example: tuple[torch.Tensor, ...] = (torch.zeros(2, d),)
    names = ["rows"]
    if graph.surrogate is None:
        example = (torch.zeros(2, d), torch.zeros(2, c, dtype=torch.float64))
        names = ["rows", "prediction"]
    if format == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(graph, example)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={"simshap.json": json.dumps(meta)})
        return atomic_write(path, buffer.getvalue())
    import onnx

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            graph,
            example,
            buffer,
            input_names=names,
            output_names=["values", "prediction_out" if graph.surrogate is None else "prediction"],
            dynamic_axes={
                **{n: {0: "batch"} for n in names},
                "values": {0: "batch"},
                "prediction_out" if graph.surrogate is None else "prediction": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return atomic_write(path, model.SerializeToString())
