"""Zoo training throughput: the batched trainer against the one-model loops, same cores, one run.

Trains the same models (the study zoo's first ``--n-models`` hyperparameter draws, Fashion-MNIST,
50,000 training images, the study's batch size) three ways in this process with the same thread
setting, interleaved group by group (each group of the batched trainer, then the same models one
at a time each way) so that all three see the same load on a shared machine:

- ``lightning``: the study's former loop (:mod:`simshap.studies.causal.lightning_loop`), one
  model at a time through a Lightning ``Trainer`` and a ``DataLoader``;
- ``single``: the batched trainer's reference, one model at a time in plain PyTorch
  (:func:`simshap.studies.causal.trainer.train_single`);
- ``batched``: :func:`simshap.studies.causal.trainer.train_group` on the groups of
  :func:`simshap.studies.causal.trainer.plan_groups` (at most ``--group-size`` models).

Training time only (scoring the test set is not timed), as wall seconds and as this process's
CPU seconds. ``--fractions`` times only the first full group (``--group-size`` models) of each
listed train fraction among the ``--n-models`` draws: groups as large as the zoo's, at a fraction
of the cost of timing all of them.

    OMP_NUM_THREADS=1 python benchmarks/causal_throughput.py --n-models 100 --epochs 1

writes ``benchmarks/results/causal_throughput.json`` (models per minute, the ratios, and each
way's mean test accuracy as a sanity check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import time
import warnings
from pathlib import Path

import torch
from _report import machine  # benchmarks/_report.py

from simshap.studies.causal.chunks import model_seed, zoo_hparams
from simshap.studies.causal.lightning_loop import train_model
from simshap.studies.causal.study import validate_config
from simshap.studies.causal.trainer import (
    TrainSettings,
    grouped_accuracy,
    plan_groups,
    train_group,
    train_single,
)
from simshap.studies.causal.workers import load_config_data

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:  # noqa: D103
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-models", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--fractions",
        type=float,
        nargs="*",
        default=None,
        help="time only the first full group of each of these train fractions",
    )
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    cfg = validate_config(
        {
            "dataset": "fashion_mnist",
            "n_train": 50000,
            "n_val": 10000,
            "n_models": args.n_models,
            "chunk_size": args.n_models,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
        }
    )
    data = load_config_data(cfg)
    indices = list(range(args.n_models))
    _, hps = zoo_hparams(cfg, indices)
    seeds = [model_seed(cfg, k) for k in indices]
    settings = TrainSettings(args.epochs, args.batch_size, 2)
    test = (data.x_test, data.y_test)
    seconds = {"batched": 0.0, "single": 0.0, "lightning": 0.0}
    cpu = dict.fromkeys(seconds, 0.0)
    groups = plan_groups(hps, args.group_size)
    if args.fractions is not None:
        full = [g for g in groups if len(g) == args.group_size]
        groups = [next(g for g in full if hps[g[0]]["train_fraction"] == f) for f in args.fractions]
    n_timed = sum(len(g) for g in groups)
    accs: dict[str, list[float]] = {k: [] for k in seconds}
    # interleaved by group, so that the three ways see the same machine load over time
    for members in groups:
        g_hps, g_seeds = [hps[k] for k in members], [seeds[k] for k in members]
        t0, c0 = time.perf_counter(), time.process_time()
        res = train_group(g_hps, g_seeds, data.x_train, data.y_train, settings)
        seconds["batched"] += time.perf_counter() - t0
        cpu["batched"] += time.process_time() - c0
        accs["batched"] += grouped_accuracy(
            res.params, [h["activation"] for h in g_hps], 2, *test
        ).tolist()
        for hp, seed in zip(g_hps, g_seeds, strict=True):
            t0, c0 = time.perf_counter(), time.process_time()
            net = train_single(hp, seed, data.x_train, data.y_train, settings)
            seconds["single"] += time.perf_counter() - t0
            cpu["single"] += time.process_time() - c0
            with torch.no_grad():
                accs["single"].append(float((net(test[0]).argmax(-1) == test[1]).double().mean()))
            t0, c0 = time.perf_counter(), time.process_time()
            net, _ = train_model(
                hp,
                data.x_train,
                data.y_train,
                (test[0][:1], test[1][:1]),
                args.epochs,
                args.batch_size,
                2,
                seed,
            )  # scored below
            seconds["lightning"] += time.perf_counter() - t0
            cpu["lightning"] += time.process_time() - c0
            with torch.no_grad():
                accs["lightning"].append(
                    float((net(test[0]).argmax(-1) == test[1]).double().mean())
                )
        print({k: round(v, 1) for k, v in seconds.items()}, flush=True)
    rows = {
        k: {
            "seconds": seconds[k],
            "cpu_seconds": cpu[k],
            "mean_accuracy": sum(accs[k]) / len(accs[k]),
        }
        for k in seconds
    }
    for row in rows.values():
        row["models_per_minute"] = 60 * n_timed / row["seconds"]
        row["models_per_cpu_minute"] = 60 * n_timed / row["cpu_seconds"]
    out = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} python "
        f"benchmarks/causal_throughput.py --n-models {args.n_models} --epochs "
        f"{args.epochs} --group-size {args.group_size} --batch-size {args.batch_size}"
        + ("" if args.fractions is None else " --fractions " + " ".join(map(str, args.fractions))),
        "n_models": n_timed,
        "n_models_drawn": args.n_models,
        "fractions": args.fractions,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "group_size": args.group_size,
        "n_train": 50000,
        "dataset": "fashion_mnist",
        "runs": rows,
        "batched_over_lightning": rows["batched"]["models_per_minute"]
        / rows["lightning"]["models_per_minute"],
        "batched_over_single": rows["batched"]["models_per_minute"]
        / rows["single"]["models_per_minute"],
    }
    path = ROOT / "benchmarks" / "results" / "causal_throughput.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    print(json.dumps({k: out[k] for k in ("batched_over_lightning", "batched_over_single")}))


if __name__ == "__main__":
    main()
