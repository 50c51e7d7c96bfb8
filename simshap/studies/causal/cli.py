"""``simshap study causal CONFIG --out DIR``: do explanations follow predictions?"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from simshap.errors import UserError

__all__ = ["register", "run"]


def _study_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``study`` command's own subparsers (created here unless another module did)."""
    study = subparsers.choices.get("study")
    if study is None:
        study = subparsers.add_parser("study", help="studies on explanations (see `study -h`)")
    for action in study._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return study.add_subparsers(dest="study", metavar="STUDY")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``study causal``."""
    p = _study_subparsers(subparsers).add_parser(
        "causal",
        help="hyperparameters' effects on predictions vs explanations (Karimi et al.)",
        description="Train (or resume) a zoo of small CNNs, explain fixed images with saliency "
        "methods and Shapley values, and compare the treatment effects of hyperparameters on "
        "predictions and explanations per accuracy bucket.",
    )
    p.add_argument(
        "config",
        type=Path,
        help="YAML config, or a shipped one: causal_fmnist, causal_digits",
    )
    p.add_argument("--out", type=Path, default=Path("runs/causal"), help="output folder")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an existing --out")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new zoo chunk after this long (rerun to resume; 0: only "
        "explain and analyze the stored models)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the study; a rerun with the same config and --out resumes the stored zoo."""
    import yaml

    from simshap.runs.config_files import resolve_config_path
    from simshap.studies.causal.study import run_study, validate_config

    args.config = resolve_config_path(args.config)
    try:
        raw = yaml.safe_load(args.config.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{args.config} is not valid YAML: {err}".replace("\n", " ")) from None
    cfg = validate_config(raw)
    if args.out.exists():
        is_study = (args.out / "zoo" / "zoo.json").is_file()
        if args.overwrite:
            shutil.rmtree(args.out)
        elif not is_study:
            raise UserError(
                f"output folder {args.out} exists and is not a causal study; pass --overwrite to "
                "replace it or choose another --out"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    max_s = None if args.max_minutes is None else 60.0 * args.max_minutes
    res = run_study(cfg, args.out, max_s)
    print(f"{res['n_models_trained']}/{res['n_models_requested']} models; results in {args.out}")
    return 0
