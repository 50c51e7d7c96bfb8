"""Your own image classifier, CPU proof: a user-defined CNN trained here, then `simshap run`.

Two runs (``--which fashion_mnist`` or ``cifar_folder``):

* ``fashion_mnist``: a small CNN (defined below, not simshap's ResNet) trained on the complete
  Fashion-MNIST (the system package ``dataset-fashion-mnist``), saved as a ``torch.export``
  ``.pt2`` file; the images as a ``.npz``; 4x4 superpixels (7x7 players).
* ``cifar_folder``: the 6,102-image CIFAR-10 subset written to disk as PNGs in ImageFolder
  layout (``train/`` and ``test/``), a small CNN trained on its 5,085 training images and saved
  as ``.pt2``; 4x4 superpixels (8x8 players).

The run sizes itself to ``--budget-minutes`` (default 30) on ``--threads`` torch threads
(default 2, or ``SIMSHAP_THREADS``): after the user model is trained, the surrogate game's cost
per evaluation is measured on that model, and the evaluation's costs (the ground truth at its
evaluation cap, KernelSHAP at each budget, the shared validation targets, the curves, IG and
DeepSHAP, export and serving) are estimated from it. The surrogate gets a tenth of what is left,
and the two explainers share the rest equally, each as a wall-clock budget
(``explainer.max_minutes``: early stopping on the validation l2, best weights restored, the
cosine schedule sized to the budget). The plan and the seconds each stage took go in the
entry's ``budget_split``; each explainer's time to accuracy in ``time_to_accuracy``.

Each run appends one entry to ``benchmarks/results/images_user_model.json`` (data set, device,
per method ``l2_game``, insertion / deletion AUCs both ways, seconds per image) and round-trips
one served heatmap through the image server. Usage (on quiet cores)::

    python benchmarks/images_user_model.py --which fashion_mnist --work /tmp/w \
        --budget-minutes 30 --threads 2
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import platform
import struct
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from simshap.runs.user_image import UserImageRun, merge_user_image_config, user_image_table
from simshap.serving.image_app import build_image_app

OUT = Path(__file__).resolve().parent / "results" / "images_user_model.json"
FMNIST = Path("/usr/share/datasets/fashion-mnist")


class SmallCNN(nn.Module):
    """The user's model: three conv blocks, global pooling, a linear layer."""

    def __init__(self, channels: int, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _idx(name: str) -> np.ndarray:
    with gzip.open(FMNIST / name) as f:
        magic, n = struct.unpack(">II", f.read(8))
        if magic == 2051:
            h, w = struct.unpack(">II", f.read(8))
            return np.frombuffer(f.read(), np.uint8).reshape(n, h, w)
        return np.frombuffer(f.read(), np.uint8)


def train_cnn(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0) -> nn.Module:
    """Train the user's CNN (Adam, flips not used: Fashion-MNIST and CIFAR both fine)."""
    torch.manual_seed(seed)
    model = SmallCNN(x.shape[1])
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        model.train()
        for i in range(0, len(x), 128):
            idx = perm[i : i + 128]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def prepare(which: str, work: Path, train_images: int | None) -> tuple[dict, dict, nn.Module]:
    """Write the user's model and data; return the run config, facts, and the trained model."""
    work.mkdir(parents=True, exist_ok=True)
    if which == "fashion_mnist":
        x_tr, y_tr = _idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz")
        x_te, y_te = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
        data = work / "fashion_mnist.npz"
        np.savez(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        mean, std, channels, epochs, crops = [0.286], [0.353], 1, 1, 0
    else:
        z = np.load(Path(os.environ.get("SIMSHAP_DATA", "../shared/data")) / "cifar10-subset.npz")
        x_tr, y_tr, x_te, y_te = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
        data = work / "cifar_folder"
        for split, xs, ys in (("train", x_tr, y_tr), ("test", x_te, y_te)):
            for i, (img, label) in enumerate(zip(xs, ys, strict=True)):
                folder = data / split / f"class_{int(label)}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(img).transpose(1, 2, 0)).save(folder / f"{i}.png")
        # 5,085 images: the explainers see them many times, so one round of shifted copies
        mean, std, channels, epochs, crops = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26], 3, 8, 1
    xt = torch.from_numpy(np.array(x_tr)).float().div(255)
    xt = xt.unsqueeze(1) if xt.ndim == 3 else xt
    xt = (xt - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    t0 = time.perf_counter()
    model = train_cnn(xt, torch.from_numpy(np.asarray(y_tr)).long(), epochs)
    model_s = time.perf_counter() - t0
    path = work / "user_cnn.pt2"
    batch = {0: torch.export.Dim("batch", min=1)}
    torch.export.save(torch.export.export(model, (xt[:4],), dynamic_shapes=(batch,)), str(path))
    cfg = {
        "modality": "image",
        "model": {"path": str(path)},
        "dataset": {"path": str(data), "channels": channels, "mean": mean, "std": std},
        "superpixel_size": 4,
        # max_minutes are set by plan_budget; max_epochs only cap the schedule
        "surrogate": {"max_epochs": 20, "batch_size": 128, "train_size": train_images,
                      "lr": 3e-4, "patience": 3},
        "explainer": {"max_epochs": 200, "batch_size": 64, "n_masks": 8,
                      "train_size": train_images, "crops": crops, "patience": 5,
                      "val_instances": 64, "val_budget": 2048, "lr": 1e-3},
        "evaluation": {"images": 50, "budgets": [512, 2048], "truth_threshold": 0.02,
                       "truth_max_evals": 10240},
    }  # fmt: skip
    return cfg, {"user_model_train_s": model_s, "user_model_epochs": epochs}, model


def evals_per_second(model: nn.Module, images: torch.Tensor, batch: int = 640) -> float:
    """Game evaluations per second: the user's model (the surrogate's architecture) on a batch."""
    x = images[:batch].repeat(-(-batch // len(images[:batch])), 1, 1, 1)[:batch]
    with torch.no_grad():
        model(x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(3):
            model(x * 1.0)
    return 3 * batch / (time.perf_counter() - t0)


def plan_budget(cfg: dict, seconds_left: float, rate: float, players: int) -> dict:
    """Split ``seconds_left`` among the run's stages; set the surrogate's and explainers' budgets.

    Costs of the evaluation are game evaluations at ``rate`` per second, times 1.25 for what
    surrounds them (KernelSHAP's fits, batching): the ground truth at its cap (an upper bound),
    KernelSHAP at each budget, the validation targets (once), the curves both ways for 6
    methods, IG and DeepSHAP (forward and backward passes); plus 60 s for loading, export and
    the served heatmap, and a 5% margin. The surrogate gets a tenth of the rest (at least a
    minute), the explainers equal shares of what remains.

    Raises:
        SystemExit: the explainers would get under a minute each.
    """
    ev, ex = cfg["evaluation"], cfg["explainer"]
    n, over = ev["images"], 1.25
    plan = {
        "ground_truth_s": over * n * ev["truth_max_evals"] / rate,
        "kernelshap_s": over * n * sum(ev["budgets"]) / rate,
        "val_targets_s": over * ex["val_instances"] * ex["val_budget"] / rate,
        "curves_s": over * 2 * 6 * n * 2 * (players + 1) / rate,
        "ig_deepshap_s": over * n * 2 * 64 * 3 / rate,
        "load_export_serve_s": 60.0,
        "margin_s": 0.05 * seconds_left,
    }
    rest = seconds_left - sum(plan.values())
    plan["surrogate_s"] = max(60.0, 0.1 * rest)
    methods = ex.get("methods", ["simshap", "fastshap"])
    each = (rest - plan["surrogate_s"]) / len(methods)
    if each < 60.0:
        raise SystemExit(f"the budget leaves {each:.0f} s per explainer: raise --budget-minutes")
    for m in methods:
        plan[f"{m}_s"] = each
    cfg["surrogate"]["max_minutes"] = plan["surrogate_s"] / 60.0
    cfg["explainer"]["max_minutes"] = each / 60.0
    return {"seconds_left_at_plan": seconds_left, "evals_per_second": rate, **plan}


def heatmap_round_trip(run_dir: Path, image: np.ndarray) -> dict:
    """POST one PNG to the image server; check the answer and the heatmap's size."""
    from starlette.testclient import TestClient

    client = TestClient(build_image_app(str(run_dir / "simshap.onnx")))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    t0 = time.perf_counter()
    resp = client.post(
        "/explain?heatmap=1", content=buf.getvalue(), headers={"content-type": "image/png"}
    )
    body = resp.json()
    heat = Image.open(io.BytesIO(base64.b64decode(body["heatmap_png"])))
    return {
        "status": resp.status_code,
        "heatmap_size": list(heat.size),
        "values_shape": list(np.asarray(body["values"]).shape),
        "seconds": time.perf_counter() - t0,
    }


def main() -> None:
    """Run one proof and append its entry to the JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--which", choices=["fashion_mnist", "cifar_folder"], required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--budget-minutes", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=int(os.environ.get("SIMSHAP_THREADS", "2")))
    p.add_argument(
        "--train-images", type=int, default=None,
        help="training images for the surrogate and explainers (default: 20,000 for "
        "Fashion-MNIST, all 5,085 for the CIFAR subset)",
    )  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train_images = args.train_images or (20000 if args.which == "fashion_mnist" else None)
    cfg, facts, model = prepare(args.which, args.work, train_images)
    run = UserImageRun(args.work / "run", cfg, overwrite=True)
    rate = evals_per_second(model, run.data.x_train[:640])
    left = 60.0 * args.budget_minutes - (time.perf_counter() - t0)
    split = plan_budget(cfg, left, rate, run.players.num_players)
    run.config = merge_user_image_config(cfg)
    print(json.dumps({"budget_split": split}, indent=1), flush=True)
    t_run = time.perf_counter()
    results = run.run()
    run_s = time.perf_counter() - t_run
    print(user_image_table(results), flush=True)
    first = run.data.x_test[0]
    mean, std = torch.tensor(run.data.mean), torch.tensor(run.data.std)
    raw = (first * std.view(-1, 1, 1) + mean.view(-1, 1, 1)).clamp(0, 1).mul(255).round()
    raw = raw.byte().permute(1, 2, 0).numpy()
    served = heatmap_round_trip(args.work / "run", raw[..., 0] if raw.shape[-1] == 1 else raw)
    tm = results["timings"]
    trained = sum(v for k, v in tm.items() if k.endswith("_train_s"))
    split["actual"] = {
        "before_run_s": t_run - t0,  # data, user model, loading, the rate probe
        **{k: v for k, v in tm.items() if k != "total_s"},
        "evaluation_and_export_s": run_s - trained - tm.get("val_targets_s", 0.0),
        "wall_s": time.perf_counter() - t0,
    }
    tta = {
        name: {k: t.get(k) for k in ("time_to_best_s", "best_val", "epochs", "schedule_epochs",
                                    "stopped_by", "train_s", "train_rows")}
        for name, t in results["training"].items()
    }  # fmt: skip
    entry = {
        "dataset": args.which,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"CPU ({platform.processor() or platform.machine()}), "
        f"{torch.get_num_threads()} torch threads, load avg {os.getloadavg()[0]:.1f}",
        "command": f"python benchmarks/images_user_model.py --which {args.which} --work WORK "
        f"--budget-minutes {args.budget_minutes:g} --threads {args.threads}",
        "budget_minutes": args.budget_minutes,
        "budget_split": split,
        "time_to_accuracy": tta,
        "config": cfg,
        **facts,
        **{k: v for k, v in results.items() if k not in ("onnx", "dataset")},
        "data_path": results["dataset"],
        "served_heatmap": served,
        "wall_s": time.perf_counter() - t0,
    }
    old = json.loads(OUT.read_text()) if OUT.exists() else []
    old = [e for e in old if e.get("dataset") != args.which] + [entry]
    OUT.write_text(json.dumps(old, indent=2))
    print(json.dumps({k: entry[k] for k in ("wall_s", "served_heatmap", "time_to_accuracy")}))


if __name__ == "__main__":
    main()
