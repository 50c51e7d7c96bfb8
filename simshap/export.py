"""Export a tabular explainer as one graph: raw rows in, Shapley values out (ONNX, TorchScript).

The graph holds the fitted standardization, the explainer network and, for FastSHAP, the
additive efficient normalization with the surrogate's v(N) and v(∅) computed inside the graph.
Its input is ``rows`` ``float32 (batch, d)`` in feature order, with a dynamic batch axis;
string (categorical) columns enter as their category codes, whose lists travel in the
metadata. Its output is ``values`` ``float32 (batch, d, C)``.

Metadata (feature names, class names, categories, base values, the format version) travels
with the file: ONNX ``metadata_props``, TorchScript ``_extra_files["simshap.json"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simshap.errors import ExistingOutputError, UserError
from simshap.explainers.base import AmortizedExplainer
from simshap.explainers.fastshap import FastSHAP, additive_efficient_normalization

__all__ = ["EXPORT_VERSION", "ExportGraph", "export_explainer", "export_metadata"]

EXPORT_VERSION = 1
FORMATS = ("onnx", "torchscript")


class ExportGraph(nn.Module):
    """Raw rows ``(B, d)`` -> Shapley values ``(B, d, C)``, preprocessing included.

    Args:
        explainer: a trained tabular explainer that holds its preprocessing.
    """

    def __init__(self, explainer: AmortizedExplainer) -> None:
        super().__init__()
        prep = explainer.preprocessor
        if prep is None or explainer.net.spec["kind"] != "mlp":
            raise UserError(
                "only tabular explainers that hold their preprocessing can be exported (train "
                "them with SimSHAP.fit / FastSHAP.fit or `simshap run`)"
            )
        self.register_buffer("mean", torch.tensor(prep.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(prep.std, dtype=torch.float32))
        self.net = explainer.net
        self.normalize = isinstance(explainer, FastSHAP) and bool(explainer.hparams.normalize)
        self.surrogate = explainer.surrogate.net if self.normalize else None
        if self.surrogate is not None:
            # v(∅) does not depend on x: the surrogate sees x * 0 = 0 and the mask 0
            zeros = torch.zeros(1, len(prep.mean), device=_device(explainer))
            with torch.no_grad():
                v_empty = torch.softmax(self.surrogate(zeros, zeros).float(), dim=-1)
            self.register_buffer("v_empty", v_empty.cpu())

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows (B, d)`` raw -> ``(B, d, C)``."""
        x = (rows - self.mean) / self.std
        phi = self.net(x)
        if self.surrogate is not None:
            v_full = torch.softmax(self.surrogate(x, torch.ones_like(x)), dim=-1)
            phi = additive_efficient_normalization(phi, v_full - self.v_empty)
        return phi


def _device(explainer: AmortizedExplainer) -> torch.device:
    """The device of the explainer's parameters."""
    return next(explainer.net.parameters()).device


def export_metadata(explainer: AmortizedExplainer) -> dict[str, Any]:
    """What a client needs beside the graph: names, categories, base values, versions."""
    prep = explainer.preprocessor
    c = explainer.net.spec["num_classes"]
    return {
        "format": "simshap-export",
        "version": EXPORT_VERSION,
        "method": type(explainer).__name__,
        "feature_names": list(prep.feature_names) if prep else None,
        "categories": dict(prep.categories) if prep else {},
        "class_names": explainer.hparams.class_names or [str(i) for i in range(c)],
        "base_values": [float(v) for v in explainer.base_value.cpu()],
        "input": "rows float32 (batch, d) in feature_names order; categorical columns as "
                 "their index in categories[name]",
        "output": "values float32 (batch, d, classes)",
    }  # fmt: skip


def export_explainer(
    explainer: AmortizedExplainer,
    path: str | os.PathLike[str],
    format: str = "onnx",  # noqa: A002 - the user-facing name
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
    d = len(meta["feature_names"])
    example = torch.zeros(2, d)
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(graph, example)
        torch.jit.save(traced, str(path), _extra_files={"simshap.json": json.dumps(meta)})
        return path
    import onnx

    with torch.no_grad():
        torch.onnx.export(
            graph, (example,), str(path), input_names=["rows"], output_names=["values"],
            dynamic_axes={"rows": {0: "batch"}, "values": {0: "batch"}}, opset_version=17,
            dynamo=False,
        )  # fmt: skip
    model = onnx.load(str(path))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(model, str(path))
    return path
