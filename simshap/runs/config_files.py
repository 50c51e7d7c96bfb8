"""Config files: YAML merged over the typed defaults of :mod:`simshap.runs.config`, validated.

``merge_config`` is the one strict merge of runs, studies and benchmarks (unknown keys are
refused, naming the allowed ones); ``load_config`` reads a YAML file, or the packaged example of
that name (``simshap run breast_cancer``), and validates every value before any work.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from simshap.errors import MissingFileError, UserError
from simshap.runs.config import IMAGE_DATASETS, defaults_for, validate_config

__all__ = ["load_config", "merge_config", "resolve_config_path"]


def merge_config(
    defaults: dict[str, Any],
    user: dict[str, Any],
    where: str = "",
    replace: tuple[str, ...] = (),
) -> dict:
    """Merge ``user`` over ``defaults``: the one config mechanism of runs, studies, benchmarks.

    Unknown keys raise :class:`~simshap.errors.UserError` naming them and the allowed ones; a
    mapping default only takes a mapping.

    Args:
        defaults: every allowed key with its default value (nested mappings merge key by key).
        user: the user's values.
        where: dotted prefix of ``user`` inside the whole config (for messages).
        replace: dotted keys whose user mapping replaces the default wholesale (free keys, such
            as a search space).

    Returns:
        A new dict; ``defaults`` is not modified.
    """
    if not isinstance(user, dict):
        raise UserError(f"the config{' at ' + where[:-1] if where else ''} must be a mapping")
    out = copy.deepcopy(defaults)
    for key, value in user.items():
        if key not in defaults:
            allowed = ", ".join(sorted(map(str, defaults)))
            scope = f" in {where[:-1]}" if where else ""
            raise UserError(
                f"unknown config key {where + str(key)!r}; allowed keys{scope}: {allowed}"
            )
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"config key {where + key!r} must be a mapping")
            if where + key in replace:
                out[key] = copy.deepcopy(value)
            else:
                out[key] = merge_config(defaults[key], value, f"{where}{key}.", replace)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike[str], defaults: dict[str, Any] | None = None) -> dict:
    """Read a YAML config (a file, or the name of an example shipped with simshap), validated.

    Args:
        path: a YAML file, or a packaged example's name (``breast_cancer``, ``census``...).
        defaults: the defaults to merge over (default: those of its data set).

    Returns:
        The merged, validated config.
    """
    path = resolve_config_path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path} cannot be read as a YAML config ({err})") from None
    try:
        user = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "syntax error"
        raise UserError(f"{path} is not valid YAML: {first}") from None
    if not isinstance(user, dict):
        raise UserError(f"{path} must hold a YAML mapping of config keys")
    dataset = user.get("dataset")
    if not dataset:
        raise UserError(f"{path} must name a dataset (key 'dataset')")
    if isinstance(dataset, str):
        from simshap.data.tabular_sources import TABULAR_DATASETS

        if dataset not in (*TABULAR_DATASETS, *IMAGE_DATASETS):
            raise UserError(
                f"unknown tabular data set {dataset!r}; available: "
                f"{', '.join((*TABULAR_DATASETS, *IMAGE_DATASETS))}, or your own "
                "table as dataset: {path: file.csv, target: column}"
            )
    cfg = merge_config(defaults or defaults_for(dataset), user)
    return validate_config(cfg)


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """A config file, or the packaged example of that name (``simshap run breast_cancer``)."""
    p = Path(path)
    if p.is_file():
        return p
    packaged = Path(__file__).parent / "configs" / f"{p.stem}.yaml"
    if p.suffix in ("", ".yaml") and p.parent == Path(".") and packaged.is_file():
        return packaged
    names = sorted(q.stem for q in (Path(__file__).parent / "configs").glob("*.yaml"))
    raise MissingFileError(
        f"config file {path} not found; give a YAML file or one of the "
        f"examples shipped with simshap: {', '.join(names)}"
    )
