"""Serving benchmark on census: HTTP latency under load, ONNX vs eager, file throughput.

    python benchmarks/serving.py [--seconds 20] [--data-dir ../shared/data]

1. Trains a SimSHAP and a FastSHAP explainer on census (the census config's network sizes, a
   short schedule: accuracy does not change latency) and saves them.
2. Serves each with ``simshap serve`` (uvicorn + Starlette, in-process ONNX Runtime) on
   loopback, the SimSHAP one also with ``--runtime torch`` and with ``--backend litserve``
   (dynamic batching), plus, as the anchor, the
   same endpoint running paired KernelSHAP on the same surrogate per request (what users do
   without an amortized explainer). A bounded aiohttp load generator drives each at
   concurrency 1, 16 and 64 for ``--seconds`` each: single-row requests, p50 / p95 / p99
   latency and throughput. One extra cell drives the SimSHAP endpoint with an httpx client
   instead, to show how much of a figure is the load generator's own cost.
3. Times single-row ONNX Runtime against the eager PyTorch graph in-process.
4. Explains 1,000,000 census-shaped rows from a CSV file into Parquet (``simshap explain``'s
   code path) and reports rows per second.
5. Hostile clients (issue 29, :mod:`_serving_edges`): a soak of 30,000 requests at c = 32
   (errors, server RSS growth), p99 at c = 16 while 200 slow connections are held open against
   the p99 without them, and the seconds from SIGTERM to exit with stalled clients connected.
   ``simshap-httptools`` is the SimSHAP server as it was before issue 29 (uvicorn's default
   httptools parser, no connection limits), to show what pinning h11 costs.

Writes ``benchmarks/results/serving.json`` and the "Serving" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _serving_edges as edges  # noqa: E402
from _loopback import load, load_httpx, run, start, stop  # noqa: E402
from _report import machine, write_section  # noqa: E402

import simshap  # noqa: E402
from simshap.amortized.io import save_explainer  # noqa: E402
from simshap.data.tabular import load_raw  # noqa: E402
from simshap.games import kernel_shap  # noqa: E402
from simshap.games.values import MaskedModelGame  # noqa: E402
from simshap.models.original import EncodedLightGBM, fit_original_model  # noqa: E402
from simshap.serving.app import build_app  # noqa: E402
from simshap.serving.files import explain_file  # noqa: E402

RESULTS_JSON = ROOT / "benchmarks" / "results" / "serving.json"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
KERNEL_BUDGET = 2048


def train(folder: Path, data_dir: str | None) -> tuple[dict[str, Path], np.ndarray]:
    """Census explainers with the census config's sizes and a short schedule."""
    from simshap.data.tabular import load_tabular

    data = load_tabular("census", data_dir=data_dir, seed=0)
    lgbm = EncodedLightGBM(
        fit_original_model(data, seed=0, max_rounds=300).booster_, data.preprocessor
    )  # the LightGBM sees encoded rows
    frame = load_raw("census", data_dir)[0]
    rows = frame.to_numpy()
    paths = {}
    for method in ("simshap", "fastshap"):
        explainer = simshap.fit(
            lgbm,
            data.raw_train[:4000],
            method=method,
            accelerator="cpu",
            surrogate={"hidden": 512, "layers": 4, "max_epochs": 2, "batch_size": 256},
            explainer={"hidden": 512, "layers": 3, "max_epochs": 1, "val_budget": 256},
        )
        paths[method] = folder / f"{method}.pt"
        save_explainer(explainer, paths[method], overwrite=True)
    return paths, rows


def onnx_vs_eager(model: Path, rows: np.ndarray, folder: Path, n: int = 2000) -> dict:
    """Single-row latency of ONNX Runtime and of the same eager graph (one thread each)."""
    import onnxruntime as ort

    from simshap.amortized.export import ExportGraph, export_explainer
    from simshap.amortized.io import load_explainer

    torch.set_num_threads(1)
    explainer = load_explainer(model)
    path = export_explainer(explainer, folder / "g.onnx", overwrite=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts)
    graph = ExportGraph(explainer).eval()
    x = rows[:n].astype(np.float32)
    out = {}
    for name, fn in (
        ("onnx", lambda r: session.run(None, {"rows": r})),
        ("eager", lambda r: graph(torch.from_numpy(r))),
    ):
        with torch.no_grad():
            for i in range(100):
                fn(x[i : i + 1])
            t0 = time.perf_counter()
            for i in range(n):
                fn(x[i : i + 1])
        out[f"{name}_ms"] = (time.perf_counter() - t0) / n * 1000.0
    out["ratio_onnx_over_eager"] = out["onnx_ms"] / out["eager_ms"]
    return out


def file_throughput(model: Path, rows: np.ndarray, folder: Path, n: int = 1_000_000) -> dict:
    """Explain ``n`` census-shaped rows (sampled with replacement) from CSV into Parquet."""
    import pandas as pd

    from simshap.amortized.io import load_explainer

    names = load_explainer(model).preprocessor.feature_names
    idx = np.random.default_rng(0).integers(0, len(rows), n)
    csv = folder / "rows.csv"
    pd.DataFrame(rows[idx], columns=names).to_csv(csv, index=False)
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    done = explain_file(
        model, csv, folder / "values.parquet", target=1, overwrite=True, progress=False
    )
    seconds = time.perf_counter() - t0
    return {"rows": done, "seconds": seconds, "rows_per_s": done / seconds}


def kernel_attributions(explainer, rows: torch.Tensor) -> torch.Tensor:
    """The anchor's work per request: paired KernelSHAP on the explainer's surrogate."""
    s = explainer.surrogate
    game = MaskedModelGame(s.value, rows, groups=s.groups)
    gen = torch.Generator().manual_seed(0)
    return kernel_shap(game, budget=KERNEL_BUDGET, generator=gen).values


def anchor_threads(model: Path, rows: np.ndarray) -> dict:
    """Seconds per KernelSHAP request with one thread and with every core; the anchor gets
    the faster (on 2 shared cores, OpenMP's spinning threads can lose to one thread)."""
    from simshap.amortized.io import load_explainer

    explainer = load_explainer(model).eval()
    x = explainer.preprocessor.transform(rows[:6])
    before = torch.get_num_threads()
    out = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            kernel_attributions(explainer, x[:1])
            t0 = time.perf_counter()
            for i in range(1, 6):
                kernel_attributions(explainer, x[i : i + 1])
        out[threads] = (time.perf_counter() - t0) / 5
    torch.set_num_threads(before)
    return {"seconds_per_request": out, "threads": min(out, key=out.get)}


def kernel_server(model: str, port: int, threads: int) -> None:
    """Serve the KernelSHAP anchor (run in its own process by :func:`start`)."""
    import uvicorn

    torch.set_num_threads(threads)
    app = build_app(model, attributions=kernel_attributions)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def httptools_server(model: str, port: int) -> None:
    """The server before issue 29: uvicorn's default httptools parser, no connection limits."""
    import uvicorn

    torch.set_num_threads(1)
    app = build_app(model)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--file-rows", type=int, default=1_000_000)
    parser.add_argument(
        "--only-hostile",
        action="store_true",
        help="run only the hostile-client rows (issue 29) and print them; writes nothing",
    )
    parser.add_argument("--kernel-server", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--httptools-server", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kernel_server:
        kernel_server(args.kernel_server, args.port, args.threads)
        return
    if args.httptools_server:
        httptools_server(args.httptools_server, args.port)
        return
    folder = Path(tempfile.mkdtemp(prefix="simshap-serving-"))
    paths, rows = train(folder, args.data_dir)
    if args.only_hostile:  # a quick look; the full run writes RESULTS.md
        print(json.dumps(edges.hostile_clients(paths["simshap"], rows, args.seconds), indent=2))
        return
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "command": "python benchmarks/serving.py " + " ".join(sys.argv[1:]),
        "endpoints": {},
    }
    kernel = f"kernelshap@{KERNEL_BUDGET}"
    for name, path, mode in (
        ("simshap", paths["simshap"], "uvicorn"),
        ("fastshap", paths["fastshap"], "uvicorn"),
        ("simshap-torch", paths["simshap"], "torch"),
        ("simshap-litserve", paths["simshap"], "litserve"),
        ("simshap-httptools", paths["simshap"], "httptools"),
        (kernel, paths["simshap"], "kernel"),
    ):
        threads = 1
        if mode == "kernel":
            results["anchor"] = anchor_threads(path, rows)
            threads = results["anchor"]["threads"]
        proc, base = start(path, mode, threads)
        try:
            levels = (1, 16, 64) if mode != "kernel" else (1, 16)
            results["endpoints"][name] = [run(load(base, rows, c, args.seconds)) for c in levels]
            if name == "simshap":
                results["httpx_client"] = run(load_httpx(base, rows, 16, args.seconds))
        finally:
            stop(proc)
        print(name, json.dumps(results["endpoints"][name]), flush=True)
    results["hostile_clients"] = edges.hostile_clients(paths["simshap"], rows, args.seconds)
    results["onnx_vs_eager"] = onnx_vs_eager(paths["simshap"], rows, folder)
    results["file"] = file_throughput(paths["simshap"], rows, folder, args.file_rows)
    anchor = max(r["throughput_rps"] for r in results["endpoints"][kernel])
    results["throughput_ratio_vs_kernelshap"] = {
        k: max(r["throughput_rps"] for r in v) / anchor for k, v in results["endpoints"].items()
    }
    p99 = {
        k: next(x["p99_ms"] for x in v if x["concurrency"] == 16)
        for k, v in results["endpoints"].items()
    }
    ratio = results["throughput_ratio_vs_kernelshap"]
    results["goals"] = {
        "p99_c16_le_20ms": {k: p99[k] <= 20.0 for k in ("simshap", "fastshap")},
        "throughput_ge_100x_kernelshap": {k: ratio[k] >= 100 for k in ("simshap", "fastshap")},
        "onnx_single_row_le_eager": results["onnx_vs_eager"]["ratio_onnx_over_eager"] <= 1.0,
        "hostile_clients (issue 29)": results["hostile_clients"]["goals"],
    }
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(results, indent=2))
    write_section(RESULTS_MD, "## Serving: latency under load, export, files", section(results))
    print(section(results))


def section(r: dict) -> str:
    m = r["machine"]
    lines = [
        "## Serving: latency under load, export, files",
        "",
        f"{r['date']}, {m['cpu']} ({m['cpus']} cores), torch {m['torch']}, device "
        f"{m['device']}. Command: `{r['command']}`. Census (12 features), single-row "
        "requests on loopback from a bounded aiohttp load generator (uvloop) on the same "
        "cores. "
        "Servers: `simshap serve` (uvicorn with its h11 protocol and the connection "
        "limits of issue 29 at their defaults, Starlette, inference in the server process "
        "with ONNX Runtime on the exported graph, one worker, one thread); "
        "`simshap-httptools` is the same app as served before issue 29 (uvicorn's "
        "default httptools parser, no connection limits); "
        "`simshap-torch` is the same with `--runtime torch` (eager PyTorch); "
        "`simshap-litserve` is the same model behind `--backend litserve` (max batch 64, "
        "2 ms batch timeout, ONNX Runtime); the KernelSHAP anchor "
        f"is the same endpoint running paired KernelSHAP@{KERNEL_BUDGET} on the "
        f"same surrogate per request, with {r['anchor']['threads']} torch thread(s), the "
        "faster in an in-process check: "
        + ", ".join(
            f"{k} thread(s) {v * 1000:.0f} ms"
            for k, v in r["anchor"]["seconds_per_request"].items()
        )
        + " per request.",
        "",
        "| endpoint | concurrency | requests | p50 ms | p95 ms | p99 ms | req/s | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, levels in r["endpoints"].items():
        for x in levels:
            lines.append(
                f"| {name} | {x['concurrency']} | {x['requests']} | {x['p50_ms']:.1f} | "
                f"{x['p95_ms']:.1f} | {x['p99_ms']:.1f} | {x['throughput_rps']:.0f} | "
                f"{x['errors']} |"
            )
    ratio = r["throughput_ratio_vs_kernelshap"]
    o, f, h = r["onnx_vs_eager"], r["file"], r["httpx_client"]
    lines += [
        "",
        "Best throughput over the KernelSHAP endpoint's (same run): "
        + ", ".join(f"{k} {v:.0f}x" for k, v in ratio.items() if not k.startswith("kernel"))
        + ".",
        f"Load generator check: the simshap endpoint driven by httpx's async client at "
        f"concurrency 16 gives p99 {h['p99_ms']:.1f} ms and {h['throughput_rps']:.0f} req/s; "
        "the difference from the aiohttp row is the client's own CPU cost on the shared cores.",
        f"Single-row in-process latency: ONNX Runtime {o['onnx_ms']:.3f} ms, eager PyTorch "
        f"{o['eager_ms']:.3f} ms (ratio {o['ratio_onnx_over_eager']:.2f}).",
        f"`simshap explain` on {f['rows']:,} rows (CSV in, Parquet out): {f['seconds']:.1f} s, "
        f"{f['rows_per_s']:,.0f} rows/s.",
        "",
        "Hostile clients (issue 29), the default `simshap serve` (request timeout 10 s, 1,000 "
        "connections) on loopback, the load generator and the slow clients on the same cores "
        "(machine shared with other jobs):",
        "",
        *edges.summary_lines(r["hostile_clients"]),
        "",
        "Goals (issues 12 and 29): " + ", ".join(f"{k}: {v}" for k, v in r["goals"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
