"""Your own image classifier, CPU proof: a user-defined CNN trained here, then `simshap run`.

Two runs (``--which fashion_mnist`` or ``cifar_folder``):

* ``fashion_mnist``: a small CNN (defined below, not simshap's ResNet) trained on the complete
  Fashion-MNIST (the system package ``dataset-fashion-mnist``), saved as a ``torch.export``
  ``.pt2`` file; the images as a ``.npz``; 4x4 superpixels (7x7 players).
* ``cifar_folder``: the 6,102-image CIFAR-10 subset written to disk as PNGs in ImageFolder
  layout (``train/`` and ``test/``), a small CNN trained on its 5,085 training images and saved
  as ``.pt2``; 4x4 superpixels (8x8 players).

Each run appends one entry to ``benchmarks/results/images_user_model.json`` (data set, device,
per method ``l2_game``, insertion / deletion AUCs both ways, seconds per image) and round-trips
one served heatmap through the image server. Usage::

    OMP_NUM_THREADS=1 python benchmarks/images_user_model.py --which fashion_mnist --work /tmp/w
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

from simshap.runs.user_image import UserImageRun, user_image_table
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


def prepare(which: str, work: Path) -> tuple[dict, dict]:
    """Write the user's model and data; return the run config and facts about the data."""
    work.mkdir(parents=True, exist_ok=True)
    if which == "fashion_mnist":
        x_tr, y_tr = _idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz")
        x_te, y_te = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
        data = work / "fashion_mnist.npz"
        np.savez(data, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        mean, std, channels, epochs = [0.286], [0.353], 1, 1
    else:
        z = np.load(Path(os.environ.get("SIMSHAP_DATA", "../shared/data")) / "cifar10-subset.npz")
        x_tr, y_tr, x_te, y_te = z["x_train"], z["y_train"], z["x_test"], z["y_test"]
        data = work / "cifar_folder"
        for split, xs, ys in (("train", x_tr, y_tr), ("test", x_te, y_te)):
            for i, (img, label) in enumerate(zip(xs, ys, strict=True)):
                folder = data / split / f"class_{int(label)}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(img).transpose(1, 2, 0)).save(folder / f"{i}.png")
        mean, std, channels, epochs = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26], 3, 8
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
        "surrogate": {"max_epochs": 2, "batch_size": 128, "train_size": 5000, "lr": 3e-4},
        "explainer": {"max_epochs": 3, "batch_size": 64, "n_masks": 8, "train_size": 2000,
                      "val_instances": 16, "val_budget": 512, "lr": 1e-3},
        "evaluation": {"images": 50, "budgets": [512, 2048], "truth_threshold": 0.02,
                       "truth_max_evals": 10240},
    }  # fmt: skip
    return cfg, {"user_model_train_s": model_s, "user_model_epochs": epochs}


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
    args = p.parse_args()
    t0 = time.perf_counter()
    cfg, facts = prepare(args.which, args.work)
    run = UserImageRun(args.work / "run", cfg, overwrite=True)
    results = run.run()
    print(user_image_table(results), flush=True)
    first = run.data.x_test[0]
    mean, std = torch.tensor(run.data.mean), torch.tensor(run.data.std)
    raw = (first * std.view(-1, 1, 1) + mean.view(-1, 1, 1)).clamp(0, 1).mul(255).round()
    raw = raw.byte().permute(1, 2, 0).numpy()
    served = heatmap_round_trip(args.work / "run", raw[..., 0] if raw.shape[-1] == 1 else raw)
    entry = {
        "dataset": args.which,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": f"CPU ({platform.processor() or platform.machine()}), "
        f"{torch.get_num_threads()} torch threads, load avg {os.getloadavg()[0]:.1f}",
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python "
        f"benchmarks/images_user_model.py --which {args.which} --work WORK",
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
    print(json.dumps({k: entry[k] for k in ("wall_s", "served_heatmap")}), flush=True)


if __name__ == "__main__":
    main()
