"""Scale-out: rows per second of every batch engine against raw ONNX Runtime, and labels on Ray.

Two parts, in one run on the same cores (each writes its entry of
benchmarks/results/scale.json and the section "## Scale-out" of benchmarks/RESULTS.md):

* ``explain``: ``--rows`` (10M) census-like rows, resampled from UCI Adult (strings and the
  '?' cells as missing values), in Parquet files. An explainer of a HistGradientBoosting
  pipeline is trained by ``simshap.fit`` with the default network of a large table (512 x 3;
  a few epochs: the values' accuracy does not change the cost of a forward pass). Rows per
  second of:

  - the limit: raw ONNX Runtime on the exported graph, one thread, on rows already encoded
    (no file reading, no checks, no output);
  - ``simshap explain`` local (one process: Parquet in, checks, encoding, ONNX Runtime,
    Parquet out);
  - Spark ``local[W]`` (``mapInPandas``);
  - Ray with W actors (``map_batches``);

  each as a ratio to the limit per core used (goals: local >= 0.8, Spark and Ray >= 0.7), with
  a projection of 100M rows on a 64-core cluster from the measured per-core rates.
* ``labels``: Shapley labels of ``--label-rows`` census training rows at 2,048 surrogate
  evaluations per row: in this process, and as Ray tasks on 1 and on 2 CPUs; the wall-time
  ratio between 1 and 2 workers, and whether all three are bitwise equal.

    OMP_NUM_THREADS=1 python benchmarks/scale.py --data-dir ../shared/data [--rows 10000000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _adult import read_adult  # noqa: E402
from _report import machine, write_section  # noqa: E402

import simshap  # noqa: E402
from simshap.data.tabular_sources import CENSUS_COLUMNS  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "scale.json"
SECTION = "## Scale-out"
FEATURES = [c for c in CENSUS_COLUMNS if c not in ("fnlwgt", "Education", "Income")]


def _adult(data_dir: Path) -> tuple[pd.DataFrame, pd.Series]:
    frame = read_adult(data_dir)
    return frame[FEATURES], (frame["Income"] == ">50K").astype(int)


def _model(x: pd.DataFrame, y: pd.Series) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    strings = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    encode = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2
                ),
                strings,
            )
        ],
        remainder="passthrough",
    )
    return make_pipeline(encode, HistGradientBoostingClassifier(random_state=0)).fit(x, y)


def _explainer(x: pd.DataFrame, y: pd.Series, folder: Path) -> tuple[Any, Path]:
    path = folder / "census.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        e = simshap.fit(
            _model(x, y),
            x,
            y,
            accelerator="cpu",
            surrogate={"max_epochs": 3},
            explainer={"max_epochs": 2},
        )
    simshap.save(e, path)
    return e, path


def _table(x: pd.DataFrame, rows: int, folder: Path, files: int = 20) -> Path:
    """``rows`` rows resampled from the real table, in ``files`` Parquet files."""
    out = folder / "rows"
    out.mkdir()
    rng = np.random.default_rng(0)
    per = -(-rows // files)
    for i in range(files):
        n = min(per, rows - i * per)
        if n <= 0:
            break
        x.iloc[rng.integers(0, len(x), n)].reset_index(drop=True).to_parquet(
            out / f"part-{i:03d}.parquet"
        )
    return out


def _limit(explainer: Any, x: pd.DataFrame, rows: int, batch: int) -> float:
    """Rows per second of one ONNX Runtime thread on encoded rows (the exported graph)."""
    from simshap.serving.batch import Runtime

    session = Runtime(explainer, "onnx").session
    encoded = explainer.preprocessor.encode(x).astype(np.float32)
    reps = -(-rows // len(encoded))
    start = time.perf_counter()
    done = 0
    for _ in range(reps):
        for i in range(0, len(encoded), batch):
            session.run(None, {"rows": encoded[i : i + batch]})
        done += len(encoded)
    return done / (time.perf_counter() - start)


class CpuSampler:
    """CPU seconds of this process and its descendants, by role, while an engine runs.

    A thread polls every process of the tree twice a second and keeps each one's last
    cumulative user + system time, so processes that exit before the end still count (up to
    their last poll). Roles: ``explaining`` (Spark's Python workers, Ray's explaining actors),
    ``engine`` (the JVM, Ray's raylet, GCS and read / write workers) and ``driver`` (this
    process: for ``local`` it does everything).
    """

    def __init__(self) -> None:
        import threading

        import psutil

        self.me = psutil.Process()
        self.seen: dict[int, tuple[str, float]] = {}
        self.base: dict[int, float] = {}
        self.stop = threading.Event()
        self.start_self = sum(self.me.cpu_times()[:2])
        self._poll()  # processes already running (a Spark JVM from before) count from now
        self.base = {pid: cpu for pid, (_, cpu) in self.seen.items()}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _role(proc: Any) -> str:
        try:
            line = " ".join(proc.cmdline())
        except Exception:  # noqa: BLE001 - a process may vanish while being read
            return "engine"
        if "pyspark.daemon" in line or "pyspark/worker" in line or "ExplainActor" in line:
            return "explaining"
        return "engine"

    def _poll(self) -> None:
        for proc in self.me.children(recursive=True):
            try:
                cpu = sum(proc.cpu_times()[:2])
            except Exception:  # noqa: BLE001
                continue
            # an idle Ray worker becomes an actor later: a role is re-read until it explains
            known = self.seen.get(proc.pid, ("engine", 0.0))[0]
            role = known if known == "explaining" else self._role(proc)
            self.seen[proc.pid] = (role, cpu)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self._poll()

    def result(self) -> dict[str, float]:
        """Stop polling; CPU seconds by role since this sampler started."""
        self._poll()
        self.stop.set()
        self.thread.join()
        out = {"driver": sum(self.me.cpu_times()[:2]) - self.start_self}
        for pid, (role, cpu) in self.seen.items():
            out[role] = out.get(role, 0.0) + cpu - self.base.get(pid, 0.0)
        return {k: round(v, 1) for k, v in out.items()}


def _engine(
    path: Path, rows_dir: Path, folder: Path, engine: str, workers: int, batch: int
) -> tuple[float, int, dict[str, float]]:
    from simshap.serving.files import explain_file

    out = folder / f"out-{engine}"
    if engine == "ray":  # started here (as explain_file would), so the sampler sees its workers
        import ray

        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False)
    sampler = CpuSampler()
    start = time.perf_counter()
    n = explain_file(
        path, rows_dir, out, engine=engine, workers=workers, chunk_rows=batch, progress=False
    )
    seconds = time.perf_counter() - start
    cpu = sampler.result()
    # local writes one file, Spark and Ray a folder of parts
    shutil.rmtree(out) if out.is_dir() else out.unlink(missing_ok=True)
    return n / seconds, n, cpu


def part_explain(
    args: argparse.Namespace, x: pd.DataFrame, explainer: Any, path: Path, folder: Path
) -> dict[str, Any]:
    rows_dir = _table(x, args.rows, folder)
    w = args.workers
    limit_rows = min(args.rows, args.limit_rows)
    out: dict[str, Any] = {"rows": args.rows, "workers": w, "batch": args.batch, "engines": {}}
    limits = []
    for engine, cores in (("local", 1), ("spark", w), ("ray", w)):
        # the limit measured just before each engine: a shared machine's load changes
        limit = _limit(explainer, x, limit_rows, args.batch)
        limits.append(limit)
        rate, n, cpu = _engine(path, rows_dir, folder, engine, w, args.batch)
        assert n == args.rows, (engine, n)
        total_cpu = sum(cpu.values())
        out["engines"][engine] = {
            "rows_per_s": rate,
            "cores": cores,
            "limit_rows_per_s": limit,
            "ratio_per_core": rate / cores / limit,
            "load_average_1min": os.getloadavg()[0],
            "cpu_s": cpu,
            # rows per CPU second of every process the engine ran, against the limit's
            "ratio_per_cpu_second": n / total_cpu / limit,
        }
        print(
            f"[scale] {engine}: {rate:,.0f} rows/s, {rate / cores / limit:.2f}x the limit per core "
            f"(limit {limit:,.0f} rows/s, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        if engine == "ray":
            import ray

            ray.shutdown()
    out["limit_rows_per_s"] = float(np.median(limits))
    for engine in ("spark", "ray"):
        per_core = out["engines"][engine]["rows_per_s"] / w
        out["engines"][engine]["projection_100M_64_cores_min"] = 100e6 / (per_core * 64) / 60
    return out


def part_labels(args: argparse.Namespace, explainer: Any, x: pd.DataFrame) -> dict[str, Any]:
    import ray

    from simshap.amortized.labels import LabelRegression

    prep = explainer.preprocessor
    inputs = torch.as_tensor(prep.network_inputs(prep.encode(x.iloc[: args.label_rows])))
    module = LabelRegression(dict(explainer.net.spec), explainer.surrogate, label_budget=2048)
    times, labels = {}, {}
    start = time.perf_counter()
    labels["local"], evals = module.compute_labels(inputs)
    times["local"] = time.perf_counter() - start
    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter()
        labels[f"ray_{cpus}"], _ = module.compute_labels(inputs, engine="ray")
        times[f"ray_{cpus}"] = time.perf_counter() - start
        ray.shutdown()
        print(f"[scale] labels on Ray, {cpus} CPU(s): {times[f'ray_{cpus}']:.1f} s", flush=True)
    return {
        "rows": args.label_rows,
        "evals_per_row": evals,
        "seconds": times,
        "ratio_1_to_2_workers": times["ray_1"] / times["ray_2"],
        "bitwise_equal": all(torch.equal(labels["local"], v) for v in labels.values()),
    }


def _cpu_cell(r: dict[str, Any]) -> str:
    cpu = r.get("cpu_s", {})
    return " / ".join(f"{cpu.get(k, 0.0):.0f}" for k in ("explaining", "engine", "driver"))


def _report(res: dict[str, Any], command: str) -> str:
    m = res["machine"]
    lines = [SECTION, "", f"{res['date']}, {m['cpu']} ({m['cpus']} cores), `{command}`.", ""]
    if "explain" in res:
        e = res["explain"]
        lines += [
            f"Explaining {e['rows']:,} census-like rows (resampled UCI Adult, strings and "
            f"missing values; 512 x 3 explainer; batches of {e['batch']:,} rows). The limit is "
            "raw ONNX Runtime on encoded rows in one thread, measured just before each engine "
            f"(median {e['limit_rows_per_s']:,.0f} rows/s); the load average is the machine's "
            "when the engine finished (2 cores: above 2 means other processes shared them).",
            "",
            "| engine | cores | rows/s | limit rows/s | per core / limit | goal | load "
            "| CPU s: explaining / engine / driver | per CPU second / limit |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, goal in (("local", 0.8), ("spark", 0.7), ("ray", 0.7)):
            r = e["engines"][name]
            met = "met" if r["ratio_per_core"] >= goal else "missed"
            lines.append(
                f"| {name} | {r['cores']} | {r['rows_per_s']:,.0f} | "
                f"{r['limit_rows_per_s']:,.0f} | {r['ratio_per_core']:.2f} | >= {goal} ({met}) | "
                f"{r['load_average_1min']:.1f} | {_cpu_cell(r)} | "
                f"{r.get('ratio_per_cpu_second', float('nan')):.2f} |"
            )
        s, r = e["engines"]["spark"], e["engines"]["ray"]
        lines += [
            "",
            "Spark's JVM (Parquet reading and writing, Arrow conversion) and Ray's read and write "
            "tasks run on the same cores as the explaining workers; local does its file work in "
            "its one process. The per-core ratios count only the workers' cores; the CPU "
            "seconds are every process the engine ran (polled twice a second), and the last "
            "column is rows per CPU second of all of them against the limit: the share of the "
            "machine's work that went into explaining.",
            "",
            f"Projection for 100M rows on 64 cores at these per-core rates: Spark "
            f"{s['projection_100M_64_cores_min']:.1f} min, Ray "
            f"{r['projection_100M_64_cores_min']:.1f} min (linear scaling assumed: no "
            "shuffle, one file read and one written per row).",
            "",
        ]
    if "labels" in res:
        lab = res["labels"]
        t = lab["seconds"]
        lines += [
            f"Labels: {lab['rows']:,} census training rows at {lab['evals_per_row']:,} "
            f"surrogate evaluations per row. In this process {t['local']:.1f} s; Ray tasks on "
            f"1 CPU {t['ray_1']:.1f} s, on 2 CPUs {t['ray_2']:.1f} s "
            f"({lab['ratio_1_to_2_workers']:.2f}x). Bitwise equal to the single-process "
            f"labels: {'yes' if lab['bitwise_equal'] else 'NO'}.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    """Run the parts and write scale.json and the RESULTS.md section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("SIMSHAP_DATA", "../shared/data"))
    parser.add_argument("--parts", nargs="+", default=["explain", "labels"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--limit-rows", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--label-rows", type=int, default=512)
    parser.add_argument("--folder", default="/tmp/simshap-scale")
    args = parser.parse_args()
    data_dir = Path(args.data_dir)
    if not (data_dir / "adult.data").is_file():
        sys.exit(f"{data_dir / 'adult.data'} not found: pass --data-dir")
    folder = Path(args.folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    x, y = _adult(data_dir)
    explainer, path = _explainer(x, y, folder)
    res: dict[str, Any] = {"date": datetime.date.today().isoformat(), "machine": machine()}
    if "explain" in args.parts:
        res["explain"] = part_explain(args, x, explainer, path, folder)
    if "labels" in args.parts:
        res["labels"] = part_labels(args, explainer, x)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))
    command = "OMP_NUM_THREADS=1 python benchmarks/scale.py " + " ".join(sys.argv[1:])
    write_section(ROOT / "benchmarks" / "RESULTS.md", SECTION, _report(res, command))
    print(_report(res, command))


if __name__ == "__main__":
    main()
