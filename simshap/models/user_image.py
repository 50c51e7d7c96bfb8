"""The user's image classifier: loading it, masking its input, cutting its trunk.

``model.path`` is a TorchScript file (``torch.jit.save``), a ``torch.export`` program
(``torch.export.save``, suffix ``.pt2``) or ``module:function`` (a function of no arguments that
returns an ``nn.Module``). The model maps normalized images ``(N, C, H, W)`` to logits
``(N, K)``. These files run the user's code when loaded: give only files you trust.

* :class:`ImputedInput`: the surrogate's network, a copy of the user's classifier on
  ``x * m`` (a masked pixel is 0 after normalization: the normalization mean).
* :class:`MaskChannelInput` (``surrogate.mask_channel: true``): the same copy with the mask as
  one more input channel of its first convolution (:func:`add_mask_channel`; the new weights
  start at zero, so the copy starts as the user's model on ``x * m``).
* :class:`UserTrunkExplainerNet`: the explainer, the user's model cut with
  ``torchvision.models.feature_extraction`` at the last node whose output has the superpixel
  grid's resolution, then a 1x1 convolution (started at zero) to one value per superpixel and
  class.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from simshap.errors import MissingFileError, UserError

__all__ = [
    "ImputedInput",
    "MaskChannelInput",
    "UserTrunkExplainerNet",
    "add_mask_channel",
    "find_grid_node",
    "load_image_model",
]

_CONV_FUNCTIONS = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default, F.conv2d)


def load_image_model(ref: str) -> nn.Module:
    """Load the user's classifier from ``ref`` (TorchScript, ``.pt2`` or ``module:function``).

    Raises:
        UserError: a missing file, an unloadable file or a function that returns no module.
    """
    path = Path(ref)
    if ":" in ref and not path.exists():
        mod_name, _, fn_name = ref.partition(":")
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            fn = getattr(importlib.import_module(mod_name), fn_name)
        except (ImportError, AttributeError) as err:
            raise UserError(
                f"model.path {ref!r}: cannot import {fn_name} from {mod_name} ({err})"
            ) from None
        model = fn()
        if not isinstance(model, nn.Module):
            raise UserError(f"model.path {ref!r} returned {type(model).__name__}, not nn.Module")
        return model.float().eval()
    if not path.is_file():
        raise MissingFileError(
            f"model.path {ref!r} does not exist; give a TorchScript file, a torch.export .pt2 "
            "file or module:function"
        )
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path)).module()
        except Exception as err:  # noqa: BLE001 - any failure is the file's
            raise UserError(f"model.path {ref!r}: not a torch.export program ({err})") from None
        # a plain GraphModule of the same graph and weights: the exported module refuses
        # .train(), which fine-tuning and torchvision's feature extraction both call
        return torch.fx.GraphModule(program, program.graph)
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as err:  # noqa: BLE001
        raise UserError(
            f"model.path {ref!r}: not a TorchScript file ({type(err).__name__}); save it with "
            "torch.jit.save(torch.jit.script(model)), torch.export.save(...) as .pt2, or give "
            "module:function"
        ) from None


class ImputedInput(nn.Module):
    """The user's classifier on masked images: ``net(x * m)`` (``m`` broadcast over channels).

    Args:
        net: the classifier (a copy of the user's, fine-tuned as the surrogate).
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of ``x * mask``."""
        return self.net(x * mask.to(x.dtype))


def _first_conv_weight(gm: torch.fx.GraphModule, x: torch.fx.Node) -> tuple[Any, str]:
    """The module (or parent) and attribute name of the weight of the conv that reads ``x``."""
    users = list(x.users)
    if len(users) == 1 and users[0].op == "call_module":
        mod = gm.get_submodule(str(users[0].target))
        if isinstance(mod, nn.Conv2d) and mod.groups == 1:
            return mod, "weight"
    if len(users) == 1 and users[0].op == "call_function" and users[0].target in _CONV_FUNCTIONS:
        w = users[0].args[1]
        if users[0].args[0] is x and isinstance(w, torch.fx.Node) and w.op == "get_attr":
            parent, _, name = str(w.target).rpartition(".")
            return gm.get_submodule(parent) if parent else gm, name
    raise UserError(
        "surrogate.mask_channel needs a model whose input goes only to a first convolution "
        f"(found {[u.format_node() for u in users]}); set surrogate.mask_channel: false"
    )


def add_mask_channel(net: nn.Module) -> torch.fx.GraphModule:
    """The user's classifier taking one more input channel (the mask) in its first convolution.

    The graph (a ``.pt2`` program's, or ``torch.fx``'s trace of a ``module:function`` model) is
    edited: the input guard of an exported program is dropped (it checks the old channel
    count), and the first convolution's weight gets one more input channel, started at zero.

    Raises:
        UserError: a TorchScript model, an untraceable one, or an input that reaches anything
            but one convolution.
    """
    if isinstance(net, torch.jit.ScriptModule):
        raise UserError(
            "surrogate.mask_channel cannot edit a TorchScript model: give model.path as .pt2 "
            "or module:function, or set surrogate.mask_channel: false"
        )
    try:
        gm = net if isinstance(net, torch.fx.GraphModule) else torch.fx.symbolic_trace(net)
    except Exception as err:  # noqa: BLE001 - any tracing failure is the model's
        raise UserError(f"surrogate.mask_channel: cannot trace the model ({err})") from None
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    for user in list(x.users):  # torch.export's input guard: it checks the old shape
        if user.op == "call_module" and "guards" in str(user.target) and not user.users:
            gm.graph.erase_node(user)
    owner, name = _first_conv_weight(gm, x)
    w = getattr(owner, name)
    extra = torch.zeros(w.shape[0], 1, *w.shape[2:], dtype=w.dtype)
    setattr(owner, name, nn.Parameter(torch.cat([w.detach(), extra], dim=1)))
    if isinstance(owner, nn.Conv2d):
        owner.in_channels += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


class MaskChannelInput(nn.Module):
    """The user's classifier on ``[x * m, m]``, its first convolution edited for the mask.

    See :func:`add_mask_channel`.

    Args:
        net: the user's classifier, before the edit.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = add_mask_channel(net)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of the masked image and its mask as one more channel."""
        m = mask.to(x.dtype).expand(x.shape[0], 1, *x.shape[-2:])
        return self.net(torch.cat([x * m, m], dim=1))


def find_grid_node(model: nn.Module, probe: torch.Tensor, grid: tuple[int, int]) -> tuple:
    """The last traced node whose output is ``(1, F, *grid)``, and ``F``.

    Raises:
        ValueError: the model cannot be traced by ``torch.fx`` or no node has that resolution.
    """
    _, nodes = get_graph_node_names(model)
    extractor = create_feature_extractor(model.eval(), return_nodes=nodes)
    with torch.no_grad():
        outs = extractor(probe)
    found = None
    for name, out in outs.items():
        if isinstance(out, torch.Tensor) and out.ndim == 4 and tuple(out.shape[-2:]) == grid:
            found = (name, int(out.shape[1]))
    if found is None:
        raise ValueError(f"no layer of the model has the superpixel grid's resolution {grid}")
    return found


class UserTrunkExplainerNet(nn.Module):
    """Image explainer from the user's classifier: its trunk up to the grid, then a 1x1 head.

    Args:
        model: ``model.path`` (the trunk starts from the user's weights).
        in_channels: image channels.
        num_classes: K.
        image_size: ``[H, W]``.
        superpixel_size: superpixel side (divides H and W).
        node: the feature node (found by :func:`find_grid_node` when ``None``).
        features: its channels.
    """

    def __init__(
        self,
        model: str,
        in_channels: int,
        num_classes: int,
        image_size: list[int],
        superpixel_size: int,
        node: str | None = None,
        features: int | None = None,
    ) -> None:
        super().__init__()
        user = load_image_model(model)
        h, w = image_size
        grid = (h // superpixel_size, w // superpixel_size)
        if node is None or features is None:
            node, features = find_grid_node(user, torch.zeros(1, in_channels, h, w), grid)
        self.spec = {
            "kind": "user_trunk",
            "model": model,
            "in_channels": in_channels,
            "num_classes": num_classes,
            "image_size": [h, w],
            "superpixel_size": superpixel_size,
            "node": node,
            "features": features,
        }
        self.trunk = create_feature_extractor(user, return_nodes={node: "grid"})
        self.head = nn.Conv2d(features, num_classes, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, d, K)``."""
        return self.head(self.trunk(x)["grid"]).flatten(2).transpose(1, 2)


def describe_model(model: nn.Module, probe: torch.Tensor) -> dict[str, Any]:
    """Number of classes the model outputs on ``probe`` (a check that it maps images to logits).

    The model runs on the first image alone and on all of ``probe`` (a ``torch.export`` program
    exported with a fixed batch size fails here, with the fix in the message).

    Raises:
        UserError: the model fails on the probe or does not return ``(N, K)`` logits.
    """
    try:
        with torch.no_grad():
            model.eval()(probe[:1])
            out = model(probe)
    except Exception as err:  # noqa: BLE001
        raise UserError(
            f"the model fails on images of shape {tuple(probe.shape)} ({type(err).__name__}: "
            f"{str(err)[:200]}); check dataset.channels / image_size, and export .pt2 files "
            "with a dynamic batch: dynamic_shapes=({0: torch.export.Dim('batch', min=1)},)"
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise UserError(f"the model must return (N, K) logits, got {getattr(out, 'shape', out)}")
    return {"num_classes": int(out.shape[1])}
