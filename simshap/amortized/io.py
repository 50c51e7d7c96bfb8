"""One versioned save / load for surrogates and explainers (weights-only ``torch.load``).

A file is a dict of tensors, numbers, strings and lists: ``format`` (``"simshap"``),
``version``, ``kind`` (``"surrogate"`` or ``"explainer"``) and the specs, hyperparameters,
weights and fitted preprocessing needed to rebuild the module. Loading never unpickles code
(``weights_only=True``), and the weights' SHA-256, written with them, is checked: a truncated,
bit-flipped or foreign file fails with a message that says what the file is not.

This module sits above the explainers: the explainer classes import nothing from here, so
there is no import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from simshap.amortized.base import AmortizedExplainer
from simshap.amortized.fastshap import FastSHAP
from simshap.amortized.labels import LabelRegression
from simshap.amortized.simshap import SimSHAP
from simshap.amortized.surrogate import Surrogate
from simshap.errors import ExistingOutputError, MissingFileError, UserError
from simshap.files import torch_save_atomic
from simshap.fingerprint import fingerprint

__all__ = [
    "FORMAT",
    "VERSION",
    "EXPLAINER_CLASSES",
    "load",
    "load_explainer",
    "load_surrogate",
    "save",
    "save_explainer",
    "save_surrogate",
]

FORMAT = "simshap"
VERSION = 3  # 3: raw-row preprocessing with missing values, games, the model contract
EXPLAINER_CLASSES: dict[str, type[AmortizedExplainer]] = {
    "SimSHAP": SimSHAP,
    "FastSHAP": FastSHAP,
    "LabelRegression": LabelRegression,
}


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _weights_hash(blob: dict[str, Any]) -> str:
    """SHA-256 of every tensor and setting in a file's blob (its own hash field excluded)."""
    return fingerprint({k: v for k, v in blob.items() if k != "sha256"})


def _sealed(blob: dict[str, Any]) -> dict[str, Any]:
    return {**blob, "sha256": _weights_hash(blob)}


def _check_seal(blob: dict[str, Any], path: Path) -> None:
    """Refuse a file whose content does not match the hash written with it."""
    recorded = blob.get("sha256")
    if recorded is None:
        raise UserError(f"{path} carries no weights hash: it was not written by simshap.save")
    if recorded != _weights_hash(blob):
        raise UserError(
            f"{path} is corrupted: its weights do not match the hash recorded when it "
            "was saved; retrain it or restore an intact copy"
        )


def _target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise ExistingOutputError(f"{path} exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def surrogate_state(surrogate: Surrogate) -> dict[str, Any]:
    """What rebuilds a surrogate: specs, weights and its preprocessing."""
    prep = surrogate.preprocessor
    hp = surrogate.hparams
    return {
        "net_spec": dict(hp.net_spec),
        "grouping_spec": surrogate.groups.to_dict(),
        "state_dict": _cpu(surrogate.net.state_dict()),
        "preprocessor": prep.to_dict() if prep is not None else None,
        "settings": {
            "task": hp.get("task", "classification"),
            "link": hp.get("link", "identity"),
            "target_mean": surrogate.target_mean.tolist(),
            "target_std": surrogate.target_std.tolist(),
            "always_present": list(hp.get("always_present") or []),
            "fidelity": hp.get("fidelity"),
        },
    }


def surrogate_from_state(state: dict[str, Any]) -> Surrogate:
    """Inverse of :func:`surrogate_state` (eval mode, on the CPU)."""
    model = Surrogate(
        state["net_spec"],
        state["grouping_spec"],
        preprocessor=state.get("preprocessor"),
        **dict(state.get("settings") or {}),
    )
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
    blob = {"format": FORMAT, "version": VERSION, "kind": "surrogate", **surrogate_state(surrogate)}
    torch_save_atomic(_sealed(blob), _target(path, overwrite))


def _read(path: str | os.PathLike[str], map_location: Any) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no simshap file at {path}")
    what = _sniff(path)
    if what is not None:
        raise UserError(f"{path} is {what}, not a simshap surrogate or explainer file (.pt)")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # not a torch file, truncated, or holding code: nothing is run
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise UserError(
            f"{path} is not a readable simshap surrogate or explainer file ({first})"
        ) from None
    if not isinstance(blob, dict):
        raise UserError(f"{path} is not a simshap surrogate or explainer file")
    _check_seal(blob, path)
    version = blob.get("version", 1)
    if blob.get("format") == FORMAT and version < VERSION:
        raise UserError(
            f"{path} was written by an earlier simshap (file version {version}; this one reads "
            f"version {VERSION}, whose preprocessing and games differ): train it again"
        )
    if blob.get("format") == FORMAT and version > VERSION:
        raise UserError(
            f"{path} was written by a newer simshap (file version {version}, this one reads "
            f"up to {VERSION}); upgrade simshap"
        )
    return blob


def _sniff(path: Path) -> str | None:
    """What a file is, when it is one of the files users mix up with ``.pt`` files."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if path.suffix.lower() == ".onnx" or (head[:1] == b"\x08" and b"pytorch" in head[:32]):
        return (
            "an ONNX graph (from `simshap export`): serve and explain take the .pt file it was "
            "exported from; load the graph itself with onnxruntime"
        )
    if path.suffix.lower() in (".pkl", ".pickle", ".joblib"):
        return "a pickle (never unpickled here: it could run code)"
    return None


def load_surrogate(path: str | os.PathLike[str], map_location: Any = "cpu") -> Surrogate:
    """Load a surrogate written by :func:`save_surrogate`."""
    blob = _read(path, map_location)
    if blob.get("format") != FORMAT or blob.get("kind") != "surrogate":
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
    torch_save_atomic(_sealed(blob), _target(path, overwrite))


def load_explainer(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    model: Any = None,
    net: torch.nn.Module | None = None,
) -> AmortizedExplainer:
    """Load an explainer written by :func:`save_explainer` (weights only), in eval mode.

    Args:
        path: the file.
        map_location: device to load onto.
        model: the model it explains (needed by the marginal and baseline games, whose values
            add up to the model's output; optional for the surrogate game, where it adds the
            model's own output to the answers). It is wrapped as it was when the explainer was
            trained (task, output, link, class names and column types are in the file).
        net: your own explainer network, when it was trained with one (the file holds its
            weights, not its code): a fresh instance of the same architecture.

    Returns:
        A :class:`~simshap.amortized.SimSHAP`, :class:`~simshap.amortized.FastSHAP` or
        labels regression.
    """
    blob = _read(path, map_location)
    if blob.get("format") != FORMAT or blob.get("kind") != "explainer":
        raise UserError(f"{path} is not a simshap explainer file (format {FORMAT!r})")
    cls = EXPLAINER_CLASSES.get(blob["class"])
    if cls is None:
        raise UserError(f"{path}: unknown explainer class {blob['class']!r}")
    surrogate = surrogate_from_state(blob["surrogate"]) if blob["surrogate"] else None
    user_model = model
    spec = blob["net_spec"]
    if net is not None and spec.get("kind") != "user":
        raise UserError(f"{path} was trained with simshap's own network: load it without net=")
    model = cls(spec, surrogate=surrogate, net=net, **blob["hparams"])
    try:
        model.net.load_state_dict(blob["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(
            f"{path}: net does not fit the saved weights of {spec.get('module', 'the network')}"
            f" ({first}); pass an instance of the same architecture"
        ) from None
    model.base_value.copy_(blob["base_value"])
    model.prior_var.copy_(blob["prior_var"])
    model.prior_var_quantiles.copy_(blob["prior_var_quantiles"])
    explainer = model.to(map_location).eval()
    if user_model is not None:
        explainer.attach_model(user_model)  # wrapped as it was in training
    return explainer


def save(
    explainer: AmortizedExplainer, path: str | os.PathLike[str], overwrite: bool = False
) -> None:
    """Save an explainer (with its surrogate): see :func:`save_explainer`."""
    save_explainer(explainer, path, overwrite=overwrite)


def load(
    path: str | os.PathLike[str],
    model: Any = None,
    map_location: str | torch.device = "cpu",
    net: torch.nn.Module | None = None,
) -> AmortizedExplainer:
    """Load an explainer, optionally with the model it explains: see :func:`load_explainer`."""
    return load_explainer(path, map_location=map_location, model=model, net=net)
