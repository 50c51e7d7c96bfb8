"""The ``simshap`` console script.

Each subcommand lives beside the layer it drives and registers itself here through a
``register(subparsers)`` function, so ``simshap --help`` lists exactly the commands that exist.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from simshap import __version__
from simshap.errors import UserError

# modules that define ``register(subparsers)``; each adds its own subcommands
COMMAND_MODULES: tuple[str, ...] = (
    "simshap.runs.cli",
    "simshap.serving.cli",
    "simshap.studies.hpo.cli",
    "simshap.studies.causal.cli",
    "simshap.studies.paraace.cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="simshap",
        description="Amortized Shapley-value explanations (SimSHAP, FastSHAP).",
    )
    parser.add_argument("--version", action="version", version=f"simshap {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Errors in the user's input (:class:`simshap.errors.UserError`: an unknown config key, an
    existing run folder, a missing data file or stage, input of the wrong shape or with NaN, too
    many players) print ``simshap: error: ...`` on stderr and return 2 instead of a traceback.
    Every other exception is a bug and keeps its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"simshap: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
