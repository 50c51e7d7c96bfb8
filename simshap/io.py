"""One versioned save / load for surrogates and explainers (weights-only ``torch.load``).

A file is a dict of tensors, numbers, strings and lists: ``format`` (``"simshap"``),
``version``, ``kind`` (``"surrogate"`` or ``"explainer"``) and the specs, hyperparameters,
weights and fitted preprocessing needed to rebuild the module. Loading never unpickles code
(``weights_only=True``). Files written before the version field (``simshap-explainer-v1``
explainers, bare surrogate dicts) still load; anything else fails with a message that says
what the file is not.

This module sits above the explainers: the explainer classes import nothing from here, so
there is no import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from simshap.errors import ExistingOutputError, MissingFileError, UserError
from simshap.explainers.base import AmortizedExplainer
from simshap.explainers.fastshap import FastSHAP
from simshap.explainers.labels import LabelRegression
from simshap.explainers.simshap import SimSHAP
from simshap.surrogate import Surrogate

__all__ = [
    "FORMAT",
    "VERSION",
    "EXPLAINER_CLASSES",
    "load_explainer",
    "load_surrogate",
    "save_explainer",
    "save_surrogate",
]

FORMAT = "simshap"
VERSION = 2
_LEGACY_EXPLAINER = "simshap-explainer-v1"
EXPLAINER_CLASSES: dict[str, type[AmortizedExplainer]] = {
    "SimSHAP": SimSHAP, "FastSHAP": FastSHAP, "LabelRegression": LabelRegression,
}


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistingOutputError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def surrogate_state(surrogate: Surrogate) -> dict[str, Any]:
    """What rebuilds a surrogate: specs, weights and its preprocessing."""
    prep = surrogate.preprocessor
    return {
        "net_spec": dict(surrogate.hparams.net_spec),
        "grouping_spec": surrogate.groups.to_dict(),
        "state_dict": _cpu(surrogate.net.state_dict()),
        "preprocessor": prep.to_dict() if prep is not None else None,
    }


def surrogate_from_state(state: dict[str, Any]) -> Surrogate:
    """Inverse of :func:`surrogate_state` (eval mode, on the CPU)."""
    model = Surrogate(state["net_spec"], state["grouping_spec"],
                      preprocessor=state.get("preprocessor"))  # fmt: skip
    model.net.load_state_dict(state["state_dict"])
    return model.eval()


def save_surrogate(
    surrogate: Surrogate, path: str | os.PathLike[str], overwrite: bool = True
) -> None:
    """Write a surrogate file.

    Args:
        surrogate: the trained surrogate.
        path: file to write.
        overwrite: replace an existing file (otherwise :class:`ExistingOutputError`).
    """
    blob = {"format": FORMAT, "version": VERSION, "kind": "surrogate",
            **surrogate_state(surrogate)}  # fmt: skip
    torch.save(blob, _target(path, overwrite))


def _read(path: str | os.PathLike[str], map_location: Any) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no simshap file at {path}")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # not a torch file, or one holding code
        raise UserError(f"{path} is not a simshap surrogate or explainer file ({err})") from None
    if not isinstance(blob, dict):
        raise UserError(f"{path} is not a simshap surrogate or explainer file")
    version = blob.get("version", 1)
    if blob.get("format") == FORMAT and version > VERSION:
        raise UserError(
            f"{path} was written by a newer simshap (file version {version}, this one reads "
            f"up to {VERSION}); upgrade simshap"
        )
    return blob


def load_surrogate(path: str | os.PathLike[str], map_location: Any = "cpu") -> Surrogate:
    """Load a surrogate written by :func:`save_surrogate` (or an older bare surrogate dict)."""
    blob = _read(path, map_location)
    legacy = "format" not in blob and {"net_spec", "grouping_spec", "state_dict"} <= set(blob)
    if not legacy and blob.get("kind") != "surrogate":
        raise UserError(f"{path} is not a simshap surrogate file (kind {blob.get('kind')!r})")
    return surrogate_from_state(blob).to(map_location)


def save_explainer(
    explainer: AmortizedExplainer,
    path: str | os.PathLike[str],
    overwrite: bool = False,
    include_surrogate: bool = True,
) -> None:
    """Write an explainer file (with its surrogate, which FastSHAP's normalization needs).

    Args:
        explainer: a trained SimSHAP or FastSHAP.
        path: file to write.
        overwrite: replace an existing file (otherwise :class:`ExistingOutputError`).
        include_surrogate: also store the surrogate.
    """
    hparams = {k: v for k, v in dict(explainer.hparams).items() if k != "net_spec"}
    blob: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": "explainer",
        "class": type(explainer).__name__,
        "net_spec": dict(explainer.net.spec),
        "hparams": hparams,
        "state_dict": _cpu(explainer.net.state_dict()),
        "base_value": explainer.base_value.detach().cpu(),
        "prior_var": explainer.prior_var.detach().cpu(),
        "prior_var_quantiles": explainer.prior_var_quantiles.detach().cpu(),
        "surrogate": None,
    }
    if include_surrogate and explainer.surrogate is not None:
        blob["surrogate"] = surrogate_state(explainer.surrogate)
    torch.save(blob, _target(path, overwrite))


def load_explainer(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> AmortizedExplainer:
    """Load an explainer written by :func:`save_explainer` (weights only), in eval mode.

    Args:
        path: the file (also ``simshap-explainer-v1`` files of earlier releases).
        map_location: device to load onto.

    Returns:
        A :class:`~simshap.explainers.SimSHAP` or :class:`~simshap.explainers.FastSHAP`.
    """
    blob = _read(path, map_location)
    if blob.get("format") == _LEGACY_EXPLAINER:
        pass  # same fields as version 2, minus the preprocessing
    elif blob.get("format") != FORMAT or blob.get("kind") != "explainer":
        raise UserError(f"{path} is not a simshap explainer file (format {FORMAT!r})")
    cls = EXPLAINER_CLASSES.get(blob["class"])
    if cls is None:
        raise UserError(f"{path}: unknown explainer class {blob['class']!r}")
    surrogate = surrogate_from_state(blob["surrogate"]) if blob["surrogate"] else None
    model = cls(blob["net_spec"], surrogate=surrogate, **blob["hparams"])
    model.net.load_state_dict(blob["state_dict"])
    model.base_value.copy_(blob["base_value"])
    if "prior_var" in blob:  # files of earlier releases lack it: explainer(x, budget=) refuses
        model.prior_var.copy_(blob["prior_var"])
    if "prior_var_quantiles" in blob:  # absent before: the mean error alone weighs the prior
        model.prior_var_quantiles.copy_(blob["prior_var_quantiles"])
    return model.to(map_location).eval()
