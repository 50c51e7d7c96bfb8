"""Exact FSII (order 2): simshap's fast transforms vs shapiq 1.4.1's ExactComputer.

n = 12 and 14 run both in the same process (ratio); n = 16 and 18 run simshap alone (shapiq's
dense 2^n x 2^n weight matrix would need 32 GiB at n = 16). The game is a cheap vectorised
synthetic game (random main effects, pairwise and third-order terms), so the timings measure
the index computation plus one evaluation of all 2^n coalitions. Also checks that both agree.

Writes benchmarks/results/interactions.json and replaces this benchmark's section of
benchmarks/RESULTS.md.

    OMP_NUM_THREADS=1 python benchmarks/interactions.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import machine, write_section  # benchmarks/_report.py

from simshap.games.values import FunctionGame
from simshap.interactions.exact import ExactInteractionComputer

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Exact Shapley interactions vs shapiq"


def synthetic(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(n, generator=g, dtype=torch.float64)
    w2 = torch.randn(n, n, generator=g, dtype=torch.float64).triu(1) / n
    triples = torch.randint(0, n, (n, 3), generator=g)
    w3 = torch.randn(n, generator=g, dtype=torch.float64) / n

    def value(z: torch.Tensor) -> torch.Tensor:
        z = z.double()
        out = z @ w1 + torch.einsum("...i,ij,...j->...", z, w2, z)
        out = out + (z[..., triples].prod(-1) * w3).sum(-1)
        return out

    return value


def run_ours(n: int, repeats: int) -> tuple[float, torch.Tensor]:
    value = synthetic(n)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        game = FunctionGame(lambda m: value(m).unsqueeze(-1), n)
        iv = ExactInteractionComputer(game, batch_size=2**16).fsii(2)
        times.append(time.perf_counter() - start)
    return min(times), iv.values[0, :, 0]


def run_shapiq(n: int) -> tuple[float, dict]:
    import shapiq

    value = synthetic(n)
    start = time.perf_counter()
    comp = shapiq.ExactComputer(
        lambda cm: value(torch.as_tensor(np.asarray(cm, dtype=bool))).numpy(), n_players=n
    )
    iv = comp("FSII", 2)
    return time.perf_counter() - start, iv


def section(res: dict) -> str:
    lines = [
        SECTION,
        "",
        f"- date: {res['date']}",
        f"- machine: {res['machine']}",
        f"- command: `{res['command']}`",
        "- game: synthetic vectorised game (main + pairwise + third-order terms); time = one "
        "evaluation of all 2^n coalitions + exact FSII of order 2 (best of "
        f"{res['repeats']} for simshap, one run for shapiq)",
        "",
        "| n | simshap (s) | shapiq ExactComputer (s) | speed-up | max abs diff |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in res["rows"]:
        sq = "-" if row["shapiq_s"] is None else f"{row['shapiq_s']:.3f}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.0f}x"
        diff = "-" if row["max_abs_diff"] is None else f"{row['max_abs_diff']:.1e}"
        lines.append(f"| {row['n']} | {row['simshap_s']:.4f} | {sq} | {ratio} | {diff} |")
    lines += [
        "",
        "shapiq is not run at n >= 16 (its dense 2^n x 2^n weight matrix needs 32 GiB at n = 16). "
        f"Goal n = 16 under 10 s: {res['goal_n16_under_10s']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compare", type=int, nargs="*", default=[12, 14])
    p.add_argument("--alone", type=int, nargs="*", default=[16, 18])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "interactions.json"
    )
    p.add_argument("--results-md", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    rows = []
    for n in args.compare + args.alone:
        ours_s, ours = run_ours(n, args.repeats)
        row = {"n": n, "simshap_s": ours_s, "shapiq_s": None, "ratio": None, "max_abs_diff": None}
        if n in args.compare:
            sq_s, sq = run_shapiq(n)
            from simshap.interactions.exact import interaction_basis

            tuples, _ = interaction_basis(n, 2)
            diff = max(abs(float(ours[i]) - float(sq[t])) for i, t in enumerate(tuples))
            row.update(shapiq_s=sq_s, ratio=sq_s / ours_s, max_abs_diff=diff)
        rows.append(row)
        print(json.dumps(row), flush=True)
    env = machine()
    n16 = [r["simshap_s"] for r in rows if r["n"] == 16]
    res = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{env['cpu']} ({env['cpus']} CPUs), {env['platform']}, Python "
        f"{env['python']}, torch {env['torch']} ({env['torch_threads']} threads)",
        "command": "OMP_NUM_THREADS=1 python "
        + " ".join(["benchmarks/interactions.py", *sys.argv[1:]]),
        "repeats": args.repeats,
        "rows": rows,
        "goal_n16_under_10s": (n16[0] < 10.0) if n16 else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    write_section(args.results_md, SECTION, section(res))
    print(f"wrote {args.out} and {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
