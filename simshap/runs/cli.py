"""The run commands: ``simshap run``, ``fit-model``, ``fit-surrogate``, ``fit-explainer``, ...

Also ``evaluate``.

``make_run`` picks the run folder type of a config (tabular or image); rerunning ``run`` with the
same config and ``--out`` resumes it (finished stages kept, an interrupted training stage
continues from its last checkpoint). Every command holds the run folder's lock while it works.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from simshap.amortized.training import is_rank_zero
from simshap.errors import ExistingOutputError
from simshap.runs.config import IMAGE_DATASETS
from simshap.runs.config_files import load_config
from simshap.runs.folder import lock_folder
from simshap.runs.tabular import EXPLAINERS, TabularRun

__all__ = ["make_run", "register"]


def make_run(out: str | Path, config: dict[str, Any] | None = None) -> Any:
    """The run object for a config: ``TabularRun`` or, for image data sets, ``ImageRun``."""
    if config is None:
        cfg_path = Path(out) / "config.yaml"
        config = load_config(cfg_path) if cfg_path.is_file() else None
    if config is not None and config["dataset"] in IMAGE_DATASETS:
        from simshap.runs.image import ImageRun

        return ImageRun(out, config)
    return TabularRun(out, config)


def _run_for(args: argparse.Namespace, new: bool) -> Any:
    if args.config is not None:
        cfg = load_config(args.config)
        run = make_run(args.out, cfg)
        if new or not run.path("config.yaml").exists():
            if run.start(overwrite=args.overwrite):
                print(f"[simshap] resuming {run.out} (same config)", flush=True)
        elif load_config(run.path("config.yaml")) != cfg:
            raise ExistingOutputError(
                f"{run.out} was started with another config; pass --overwrite with `run` to "
                "start over, or omit the config to resume it"
            )
        run.check_inputs()
        return run
    run = make_run(args.out)
    run.check_inputs()
    return run


def user_image_config(config: str) -> dict[str, Any] | None:
    """The raw config of a user-image run (a YAML file with ``modality: image``), else None."""
    import yaml

    path = Path(config)
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text())
    return raw if isinstance(raw, dict) and raw.get("modality") == "image" else None


def _cmd_user_image(args: argparse.Namespace, cfg: dict[str, Any]) -> int:
    from simshap.runs.user_image import UserImageRun, user_image_table

    results = UserImageRun(args.out, cfg, overwrite=args.overwrite).run()
    print(user_image_table(results))
    print(f"[simshap] results in {args.out}/results.json, explainer in {args.out}/simshap.onnx")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    image_cfg = user_image_config(args.config)
    if image_cfg is not None:
        return _cmd_user_image(args, image_cfg)
    load_config(args.config)  # every value checked before anything is touched
    with lock_folder(args.out):
        run = _run_for(args, new=True)
        if is_rank_zero() and not run.done("evaluate") and hasattr(run, "preflight"):
            est = run.preflight()
            if est:
                print(
                    f"[simshap] ground truth: {est['method']}, about {est['minutes']:.1f} minutes",
                    flush=True,
                )
        for stage, label, fit in run.stages():
            if run.done(stage):
                print(f"[simshap] {label}: done, kept", flush=True)
                continue
            problem = run.problem(stage)
            if problem != "not run yet":
                print(f"[simshap] {label}: {problem}; recomputing", flush=True)
            print(f"[simshap] {label}: {fit()}", flush=True)
        if not is_rank_zero():
            return 0
        if run.done("evaluate"):  # a finished run: show its results again
            results = json.loads(run.path("results.json").read_text())
        else:
            problem = run.problem("evaluate")
            if problem != "not run yet":
                print(f"[simshap] evaluation: {problem}; recomputing", flush=True)
            results = run.evaluate()
        print(run.table(results))
        print(f"[simshap] results in {run.out}/results.json")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    with lock_folder(args.out):
        run = _run_for(args, new=False)
        if args.command == "fit-model":
            print(run.fit_model(overwrite=args.overwrite))
        elif args.command == "fit-surrogate":
            print(run.fit_surrogate(overwrite=args.overwrite))
        elif args.command == "fit-explainer":
            for name in args.explainer or run.explainer_names:
                print(name, run.fit_explainer(name, overwrite=args.overwrite))
        else:
            print(run.table(run.evaluate(overwrite=args.overwrite)))
    return 0


def register(subparsers: Any) -> None:
    """Add ``run``, ``fit-model``, ``fit-surrogate``, ``fit-explainer``, ``evaluate``."""
    p = subparsers.add_parser(
        "run",
        help="train model, surrogate, SimSHAP and FastSHAP, then evaluate",
        epilog="model.path: a joblib / pickle model file runs code when it is loaded (as "
        "joblib.load does anywhere); give only model files you trust. Every file simshap "
        "writes itself is read back weights-only.",
    )
    p.add_argument(
        "config",
        help="YAML config file, or the name of an example shipped with "
        "simshap (breast_cancer, census, news, ...)",
    )
    p.add_argument("--out", required=True, help="run folder (must not exist, or --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.set_defaults(func=_cmd_run)
    helps = {
        "fit-model": "train the original model (LightGBM, or ResNet-18 for images)",
        "fit-surrogate": "train the surrogate s(x, m) on the stored model",
        "fit-explainer": "train SimSHAP and/or FastSHAP on the stored surrogate",
        "evaluate": "ground truth, errors at matched budgets, timings, table and plots",
    }
    for name, text in helps.items():
        sp = subparsers.add_parser(name, help=text)
        sp.add_argument("config", nargs="?", help="YAML config (only to start a new run)")
        sp.add_argument("--out", required=True, help="run folder")
        sp.add_argument("--overwrite", action="store_true", help="recompute this stage")
        if name == "fit-explainer":
            sp.add_argument(
                "--explainer",
                nargs="+",
                default=None,
                choices=list(EXPLAINERS),
                help="which explainers (default: the config's explainer.methods)",
            )
        sp.set_defaults(func=_cmd_stage)
