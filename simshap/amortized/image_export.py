"""ONNX export of an image explainer, efficient normalization inside.

The graph maps normalized images ``(B, C, H, W)`` to ``values (B, d, K)`` (the explainer's
output made efficient with the surrogate's v(N) = softmax(s(x, 1)) and the stored v(∅)) and
``prediction (B, K)`` (v(N)). :func:`export_image_explainer` writes it with the legacy
TorchScript-based exporter (it handles TorchScript user models) and checks it against eager.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from simshap.amortized.base import AmortizedExplainer
from simshap.errors import ExistingOutputError, UserError

__all__ = ["ImageExportGraph", "export_image_explainer", "onnx_parity"]


class ImageExportGraph(nn.Module):
    """Images -> efficient values and the surrogate's prediction.

    Args:
        explainer: a trained image explainer with its surrogate.
    """

    def __init__(self, explainer: AmortizedExplainer) -> None:
        super().__init__()
        if explainer.surrogate is None:
            raise UserError("the image export needs the explainer's surrogate (v(N))")
        self.net = explainer.net
        self.surrogate_net = explainer.surrogate.net
        self.register_buffer("base_value", explainer.base_value.detach().clone().float())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, H, W)`` -> ``values (B, d, K)``, ``prediction (B, K)``."""
        phi = self.net(images).float()
        ones = torch.ones_like(images[:, :1])
        v_full = torch.softmax(self.surrogate_net(images, ones).float(), dim=-1)
        gap = v_full - self.base_value - phi.sum(1)
        return phi + gap.unsqueeze(1) / phi.shape[1], v_full


def onnx_parity(graph: nn.Module, path: Path, image_shape: tuple[int, int, int]) -> float:
    """Largest absolute difference of the ONNX file's values from eager on random images."""
    import onnxruntime as ort

    x = torch.randn(3, *image_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = graph(x)[0].numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"images": x.numpy()})[0]
    return float(abs(got - eager).max())


def export_image_explainer(
    explainer: AmortizedExplainer,
    path: str | os.PathLike[str],
    image_shape: tuple[int, int, int],
    mean: list[float],
    std: list[float],
    overwrite: bool = False,
) -> Path:
    """Write the image explainer as ONNX (``path``) plus ``path + ".json"`` metadata.

    Args:
        explainer: a trained image explainer (on the CPU).
        path: the ``.onnx`` file.
        image_shape: ``(C, H, W)``.
        mean: the per-channel normalization mean (the server normalizes request images).
        std: the per-channel standard deviation.
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistingOutputError(f"{path} exists; pass overwrite=True to replace it")
    graph = ImageExportGraph(explainer).cpu().eval()
    example = torch.zeros(2, *image_shape)
    with torch.no_grad():
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["values", "prediction"],
            dynamic_axes={
                "images": {0: "batch"},
                "values": {0: "batch"},
                "prediction": {0: "batch"},
            },
            dynamo=False,
            opset_version=17,
        )
    groups = explainer.surrogate.groups
    meta = {
        "modality": "image",
        "image_shape": list(image_shape),
        "superpixel_size": groups.superpixel_size,
        "grid": list(groups.grid),
        "base_value": explainer.base_value.tolist(),
        "mean": list(mean),
        "std": list(std),
        "class_names": explainer.hparams.get("class_names"),
        "max_abs_diff_onnx_eager": onnx_parity(graph, path, image_shape),
    }
    Path(str(path) + ".json").write_text(json.dumps(meta))
    return path
