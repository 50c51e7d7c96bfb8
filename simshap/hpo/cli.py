"""``simshap hpi CONFIG --out DIR``: the HyperSHAP study on LightGBM's hyperparameters."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

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
    """Run the subcommand; returns the exit status (2 on a usage or config error)."""
    import yaml

    from simshap.hpo.study import run_study, validate_config

    if not args.config.is_file():
        print(f"error: config file {args.config} does not exist", file=sys.stderr)
        return 2
    try:
        raw = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError("the config must be a YAML mapping of keys to values")
        cfg = validate_config(raw)
    except (ValueError, yaml.YAMLError) as err:
        print(f"error: {args.config}: {err}", file=sys.stderr)
        return 2
    if args.out.exists():
        if not args.overwrite:
            print(
                f"error: output folder {args.out} already exists; pass --overwrite to replace "
                "it or choose another --out",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(args.out)
    try:
        run_study(cfg, args.out)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
