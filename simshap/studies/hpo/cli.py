"""``simshap hpi CONFIG --out DIR``: the HyperSHAP study on LightGBM's hyperparameters."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from simshap.errors import ExistingOutputError, MissingFileError, UserError

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``hpi`` subcommand."""
    p = subparsers.add_parser(
        "hpi",
        help="hyperparameter importance (HyperSHAP games, FSII, R² curve, downstream search)",
        description="Explain LightGBM's hyperparameters with ablation and tunability games "
        "(exact FSII and SV), then compare random search on all vs the top hyperparameters.",
    )
    p.add_argument("config", type=Path, help="YAML config (see configs/hpi_lightgbm.yaml)")
    p.add_argument("--out", type=Path, default=Path("runs/hpi"), help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand; user mistakes raise :class:`~simshap.errors.UserError` (exit 2)."""
    import yaml

    from simshap.studies.hpo.study import run_study, validate_config

    if not args.config.is_file():
        raise MissingFileError(f"config file {args.config} does not exist")
    try:
        raw = yaml.safe_load(args.config.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{args.config} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{args.config}: the config must be a YAML mapping of keys to values")
    try:
        cfg = validate_config(raw)
    except UserError:
        raise
    except ValueError as err:  # a bad value found by the space or study checks
        raise UserError(f"{args.config}: {err}") from None
    if args.out.exists():
        if not args.overwrite:
            raise ExistingOutputError(
                f"output folder {args.out} already exists; pass --overwrite to replace it or "
                "choose another --out"
            )
        shutil.rmtree(args.out)
    run_study(cfg, args.out)
    return 0
