"""The model zoo: the paper's small CNN, its hyperparameter grid, Lightning training, storage.

Each model's hyperparameters are drawn independently from the grid with a generator seeded by
(zoo seed, model index), so model ``k`` is the same whatever the zoo size. Training uses one fixed
seed for every model (weight init, dropout, mini-batch order), so a model is a deterministic
function of its hyperparameters: the potential outcomes Y_h(x), E_h(x) are well defined.

The zoo is stored in chunks (``chunk_0000.pt``, ...), each written atomically once it is
complete; :func:`train_zoo` only trains the chunks that are missing, so an interrupted run resumes
where it stopped and a finished one trains nothing.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized.training import quiet_cpu_trainer
from simshap.errors import UserError
from simshap.studies.causal.data import StudyData

__all__ = [
    "GRID",
    "SmallCNN",
    "Zoo",
    "ZooModule",
    "build_model",
    "check_grid",
    "load_zoo",
    "sample_hyperparameters",
    "train_model",
    "train_zoo",
]

# the zoo's grid (Unterthiner et al. 2020, as used by Karimi et al.); continuous values are the
# paper's binning markers
GRID: dict[str, list[Any]] = {
    "optimizer": ["adam", "rmsprop", "sgd"],
    "activation": ["relu", "tanh", "elu"],
    "w_init": ["he_normal", "glorot_uniform", "orthogonal", "normal"],
    "init_std": [1e-3, 1e-2, 1e-1, 0.5],
    "b_init": ["zeros", "ones"],
    "learning_rate": [5e-4, 5e-3, 5e-2],
    "l2": [1e-8, 1e-6, 1e-4, 1e-2],
    "dropout": [0.0, 0.2, 0.45, 0.7],
    "train_fraction": [0.1, 0.25, 0.5, 1.0],
}
_ALLOWED_CATEGORIES = {k: set(v) for k, v in GRID.items() if isinstance(v[0], str)}
_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


def check_grid(grid: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    """Validate a hyperparameter grid (a subset of :data:`GRID`'s keys, non-empty value lists).

    Args:
        grid: hyperparameter name -> list of values.

    Returns:
        The grid with every key of :data:`GRID` (missing keys take the default values).

    Raises:
        UserError: unknown hyperparameter, empty list, unknown categorical value, bad number.
    """
    out = {k: list(v) for k, v in GRID.items()}
    for key, values in grid.items():
        if key not in GRID:
            raise UserError(f"unknown hyperparameter {key!r} in grid; allowed: {', '.join(GRID)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise UserError(f"grid.{key} must be a list of values, e.g. {GRID[key]}")
        if len(values) == 0:
            raise UserError(
                f"grid.{key} is empty: give at least one value (e.g. {GRID[key]}) or drop the key"
            )
        if key in _ALLOWED_CATEGORIES:
            bad = [v for v in values if v not in _ALLOWED_CATEGORIES[key]]
            if bad:
                allowed = sorted(_ALLOWED_CATEGORIES[key])
                raise UserError(f"grid.{key} has unknown values {bad}; allowed: {allowed}")
        else:
            try:
                values = [float(v) for v in values]
            except (TypeError, ValueError):
                raise UserError(f"grid.{key} must hold numbers, got {list(values)}") from None
            lo = 0.0 if key in ("dropout", "l2") else 1e-12
            hi = 1.0 if key == "train_fraction" else (0.99 if key == "dropout" else math.inf)
            if any(not lo <= v <= hi for v in values):
                raise UserError(f"grid.{key} values must lie in [{lo}, {hi}], got {values}")
        if len(set(values)) != len(values):
            raise UserError(f"grid.{key} repeats a value: {list(values)}")
        out[key] = list(values)
    return out


def sample_hyperparameters(
    grid: Mapping[str, Sequence[Any]], index: int, seed: int
) -> dict[str, int]:
    """Grid positions of model ``index``'s hyperparameters, each drawn uniformly and independently.

    Args:
        grid: validated grid.
        index: model index in the zoo.
        seed: zoo seed.

    Returns:
        hyperparameter name -> index into ``grid[name]``.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return {k: int(torch.randint(len(v), (1,), generator=gen)) for k, v in grid.items()}


class SmallCNN(nn.Module):
    """3 convolutions of 16 3x3 filters, global average pooling, a dense layer to the classes.

    With one input channel and 10 classes it has 4,970 parameters, as the paper's zoo.

    Args:
        activation: ``"relu"``, ``"tanh"`` or ``"elu"``.
        dropout: dropout rate after each convolution block.
        stride: stride of the convolutions (2 as in the zoo for 28x28; 1 for 8x8 digits).
        in_channels: image channels.
        num_classes: outputs.
    """

    def __init__(
        self,
        activation: str = "relu",
        dropout: float = 0.0,
        stride: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, stride=stride, padding=1)
        self.act = _ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``(N, C, H, W)``."""
        h = self.drop(self.act(self.conv1(x)))
        h = self.drop(self.act(self.conv2(h)))
        h = self.drop(self.act(self.conv3(h)))
        return self.fc(h.mean(dim=(2, 3)))


def _init_weights(model: nn.Module, hp: Mapping[str, Any], gen: torch.Generator) -> None:
    """Weight and bias initialization; ``init_std`` scales the ``normal`` initializer only.

    As in the original zoo (Keras initializers), he_normal, glorot_uniform and orthogonal carry
    their own scale, so the std hyperparameter only acts through ``w_init = normal``.
    """
    for mod in model.modules():
        if not isinstance(mod, (nn.Conv2d, nn.Linear)):
            continue
        w = mod.weight
        kind = hp["w_init"]
        if kind == "he_normal":
            nn.init.kaiming_normal_(w, nonlinearity="relu", generator=gen)
        elif kind == "glorot_uniform":
            nn.init.xavier_uniform_(w, generator=gen)
        elif kind == "orthogonal":
            nn.init.orthogonal_(w, generator=gen)
        else:
            nn.init.normal_(w, 0.0, float(hp["init_std"]), generator=gen)
        nn.init.constant_(mod.bias, 1.0 if hp["b_init"] == "ones" else 0.0)


def build_model(hp: Mapping[str, Any], stride: int, seed: int) -> SmallCNN:
    """The CNN of hyperparameters ``hp`` (values, not positions), initialized from ``seed``."""
    model = SmallCNN(hp["activation"], float(hp["dropout"]), stride)
    _init_weights(model, hp, torch.Generator().manual_seed(seed))
    return model


class ZooModule(pl.LightningModule):
    """Lightning module that trains one zoo member with cross-entropy plus an L2 penalty.

    Args:
        model: the CNN.
        hp: hyperparameter values (optimizer, learning_rate, l2).
    """

    def __init__(self, model: SmallCNN, hp: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.hp = dict(hp)

    def training_step(  # noqa: D102
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        penalty = sum((p**2).sum() for n, p in self.model.named_parameters() if "weight" in n)
        return loss + float(self.hp["l2"]) * penalty

    def configure_optimizers(self) -> torch.optim.Optimizer:  # noqa: D102
        lr = float(self.hp["learning_rate"])
        cls = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
        return cls[self.hp["optimizer"]](self.model.parameters(), lr=lr)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> float:
    """Top-1 accuracy of ``model`` in eval mode (NaN outputs count as wrong)."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def train_model(
    hp: Mapping[str, Any], data: StudyData, epochs: int, batch_size: int, stride: int, seed: int
) -> tuple[SmallCNN, float]:
    """Train one model with Lightning; returns the model (eval mode) and its test accuracy.

    The training subset is the first ``train_fraction`` of ``data.x_train``; init, dropout and
    batch order all come from ``seed``.
    """
    torch.manual_seed(seed)  # dropout masks draw from the global generator
    model = build_model(hp, stride, seed)
    n = max(1, int(round(float(hp["train_fraction"]) * len(data.x_train))))
    loader = DataLoader(
        TensorDataset(data.x_train[:n], data.y_train[:n]),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    trainer = quiet_cpu_trainer(epochs)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    trainer.fit(ZooModule(model, hp), loader)
    model.eval()
    return model, accuracy(model, data.x_test, data.y_test)


class Zoo:
    """A loaded zoo.

    Attributes:
        grid: the hyperparameter grid.
        codes: ``(n_models, n_hparams)`` grid positions (columns in ``grid`` order).
        accuracy: ``(n_models,)`` test accuracies.
        seconds: ``(n_models,)`` training seconds.
        state_dicts: one state dict per model.
        stride: convolution stride.
    """

    def __init__(
        self,
        grid: dict[str, list[Any]],
        codes: torch.Tensor,
        accuracy: torch.Tensor,
        seconds: torch.Tensor,
        state_dicts: list[dict[str, torch.Tensor]],
        stride: int,
    ) -> None:
        self.grid, self.codes, self.accuracy = grid, codes, accuracy
        self.seconds, self.state_dicts, self.stride = seconds, state_dicts, stride

    def __len__(self) -> int:
        return len(self.state_dicts)

    def hparams(self, k: int) -> dict[str, Any]:
        """Hyperparameter values of model ``k``."""
        pairs = zip(self.grid, self.codes[k], strict=True)
        return {name: self.grid[name][int(c)] for name, c in pairs}

    def model(self, k: int) -> SmallCNN:
        """Model ``k`` in eval mode."""
        hp = self.hparams(k)
        net = SmallCNN(hp["activation"], float(hp["dropout"]), self.stride)
        net.load_state_dict(self.state_dicts[k])
        return net.eval()


def _manifest(cfg: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "n_train", "n_test", "epochs", "batch_size", "seed", "stride", "grid")
    return {k: cfg[k] for k in keys}


def train_zoo(
    cfg: Mapping[str, Any],
    data: StudyData,
    zoo_dir: Path,
    max_seconds: float | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Train the missing chunks of a zoo of ``cfg["n_models"]`` models into ``zoo_dir``.

    Args:
        cfg: study config (dataset, n_train, n_test, epochs, batch_size, seed, stride, grid,
            n_models, chunk_size).
        data: the data set.
        zoo_dir: folder of the chunks; its ``zoo.json`` must match ``cfg`` when it exists.
        max_seconds: start no new chunk once this much training time has passed (0: train
            nothing, use the stored chunks).
        log: progress printer.

    Returns:
        Number of models trained by this call.

    Raises:
        UserError: ``zoo_dir`` holds a zoo trained with a different config.
    """
    zoo_dir.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(cfg)
    path = zoo_dir / "zoo.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(manifest)):
            raise UserError(
                f"{zoo_dir} holds a zoo trained with another config ({old}); use the same config "
                "to resume, or another --out (or --overwrite) to start afresh"
            )
    else:
        path.write_text(json.dumps(manifest, indent=1))
    n_models, size = int(cfg["n_models"]), int(cfg["chunk_size"])
    start, trained = time.perf_counter(), 0
    for c in range(math.ceil(n_models / size)):
        target = zoo_dir / f"chunk_{c:04d}.pt"
        indices = list(range(c * size, min((c + 1) * size, n_models)))
        if target.is_file():
            if len(torch.load(target, weights_only=True)["index"]) == len(indices):
                continue  # complete chunk: nothing to do
        if max_seconds is not None and time.perf_counter() - start >= max_seconds:
            log(f"time budget reached after {trained} new models; rerun to resume")
            break
        chunk: dict[str, list[Any]] = {
            "index": [],
            "codes": [],
            "accuracy": [],
            "seconds": [],
            "state_dicts": [],
        }
        for k in indices:
            codes = sample_hyperparameters(cfg["grid"], k, int(cfg["seed"]))
            hp = {name: cfg["grid"][name][i] for name, i in codes.items()}
            t0 = time.perf_counter()
            net, acc = train_model(
                hp,
                data,
                int(cfg["epochs"]),
                int(cfg["batch_size"]),
                int(cfg["stride"]),
                int(cfg["seed"]),
            )
            chunk["index"].append(k)
            chunk["codes"].append(list(codes.values()))
            chunk["accuracy"].append(acc)
            chunk["seconds"].append(time.perf_counter() - t0)
            chunk["state_dicts"].append({n: t.clone() for n, t in net.state_dict().items()})
            trained += 1
        tmp = target.with_suffix(".tmp")
        torch.save(chunk, tmp)
        tmp.replace(target)
        log(
            f"zoo chunk {c}: models {indices[0]}-{indices[-1]}, mean acc "
            f"{sum(chunk['accuracy']) / len(indices):.3f}, "
            f"{sum(chunk['seconds']) / len(indices):.2f} s/model"
        )
    return trained


def load_zoo(
    zoo_dir: Path, grid: dict[str, list[Any]], stride: int, n_models: int | None = None
) -> Zoo:
    """Load the complete chunks of a zoo, in model order (at most ``n_models`` models).

    Raises:
        UserError: the folder holds no trained models.
    """
    chunks = sorted(zoo_dir.glob("chunk_*.pt"))
    parts = [torch.load(p, weights_only=True) for p in chunks]
    if not parts:
        raise UserError(f"{zoo_dir} holds no trained models; train the zoo first")
    cat = {k: [v for p in parts for v in p[k]] for k in parts[0]}
    keep = len(cat["index"]) if n_models is None else min(n_models, len(cat["index"]))
    if cat["index"][:keep] != list(range(keep)):
        raise UserError(f"{zoo_dir}: chunks are not contiguous; rerun the study to fill the gaps")
    return Zoo(
        grid,
        torch.tensor(cat["codes"][:keep], dtype=torch.long),
        torch.tensor(cat["accuracy"][:keep], dtype=torch.float64),
        torch.tensor(cat["seconds"][:keep], dtype=torch.float64),
        cat["state_dicts"][:keep],
        stride,
    )
