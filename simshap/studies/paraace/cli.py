"""``simshap interactions detect|compress CONFIG --out DIR``: the ParaACE study."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from simshap.errors import UserError

__all__ = ["load_config", "prepare_out", "register", "run_compress", "run_detect"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``interactions`` command group (``detect`` and ``compress``)."""
    p = subparsers.add_parser(
        "interactions",
        help="ParaACE: UCB interaction detection (F1-F10) and ParaACE compression",
        description="Detect pairwise interactions of a trained teacher with ParaACE's UCB "
        "search, or compress the teacher into a ParaACE model built on the detected pairs.",
    )
    sub = p.add_subparsers(dest="interactions_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("detect", run_detect, "teacher + UCB detection + baselines; ROC-AUC on F1-F10"),
        ("compress", run_compress, "k-fold NRMSE of teacher, ParaACE and random-pair ParaACE"),
    ):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("config", type=Path, help="YAML config (see configs/paraace_*.yaml)")
        q.add_argument("--out", type=Path, required=True, help="output folder")
        q.add_argument("--overwrite", action="store_true", help="replace an existing --out")
        q.set_defaults(func=func)


def load_config(path: Path) -> Any:
    """Read and validate a ParaACE YAML config."""
    import yaml

    from simshap.studies.paraace.experiments import validate_config

    if not Path(path).is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}") from err
    try:
        return validate_config(raw)
    except TypeError as err:  # a value of the wrong kind reaching the dataclass
        raise UserError(f"{path}: {err}") from err


def prepare_out(out: Path, overwrite: bool) -> Path:
    """Create ``out``; an existing folder is replaced only with ``overwrite``."""
    out = Path(out)
    if out.exists():
        if not overwrite:
            raise UserError(
                f"output folder {out} already exists; pass --overwrite to replace it or choose "
                "another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def _write(out: Path, name: str, obj: Any) -> None:
    (out / name).write_text(json.dumps(obj, indent=1, default=float))


def run_detect(args: argparse.Namespace) -> int:
    """Run the detection study; writes detection.json, summary.md and figures."""
    from simshap.studies.paraace.experiments import run_detection
    from simshap.studies.paraace.plots import plot_heatmaps, plot_pulls
    from simshap.studies.paraace.summary import detection_table, summarize_detection

    cfg = load_config(args.config)
    out = prepare_out(args.out, args.overwrite)
    records = []
    for name in cfg.datasets:
        for seed in cfg.seeds:
            rec = run_detection(cfg, name, seed)
            records.append(rec)
            auc = rec.get("auc", {}).get("ucb")
            print(
                f"{name} seed {seed}: pulls {rec['ucb']['pulls']}/{rec['ucb']['naive_pulls']}"
                + (f", AUC {auc:.3f}" if auc is not None else ""),
                flush=True,
            )
    summary = summarize_detection(records)
    _write(out, "detection.json", {"summary": summary, "records": records})
    table = detection_table(summary)
    (out / "summary.md").write_text(table + "\n")
    plot_pulls(summary, out / "pulls.png")
    first = {r["dataset"]: r for r in reversed(records)}
    plot_heatmaps(dict(reversed(list(first.items()))), out / "heatmaps.png")
    print(table)
    return 0


def run_compress(args: argparse.Namespace) -> int:
    """Run the compression study; writes compression.json and summary.md."""
    from simshap.studies.paraace.experiments import run_compression
    from simshap.studies.paraace.summary import compression_table, summarize_compression

    cfg = load_config(args.config)
    out = prepare_out(args.out, args.overwrite)
    records = []
    for name in cfg.datasets:
        for seed in cfg.seeds:
            rec = run_compression(cfg, name, seed)
            records.append(rec)
            print(
                f"{name} seed {seed}: NRMSE teacher {rec['teacher_nrmse']:.4f}, ParaACE "
                f"{rec['paraace_nrmse']:.4f}, random {rec['random_nrmse']:.4f}, "
                f"CR {rec['compression_ratio']:.0f}",
                flush=True,
            )
    summary = summarize_compression(records)
    _write(out, "compression.json", {"summary": summary, "records": records})
    table = compression_table(summary)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    return 0
