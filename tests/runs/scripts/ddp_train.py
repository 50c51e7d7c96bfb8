"""Two-process DDP (gloo, CPU) training of a tiny surrogate and a tiny SimSHAP explainer.

Run as ``python ddp_train.py OUT``; Lightning's DDP launcher starts rank 1 with the same command.
Each rank records its first training masks, its local validation metric and the logged
(all-reduced) one in ``OUT/rank<r>_<stage>.json``; rank 0 saves the trained modules.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized import SimSHAP
from simshap.amortized.io import save_explainer, save_surrogate
from simshap.amortized.surrogate import Surrogate
from simshap.amortized.training import EpochSampler, fit_module, is_rank_zero
from simshap.games.sampling import ShapleyKernelSampler


class Record(pl.Callback):
    def __init__(self, out: Path, stage: str, metric: str) -> None:
        self.out, self.stage, self.metric = out, stage, metric
        self.local: list[float] = []
        self.first_masks: list | None = None

    def on_train_start(self, trainer, module) -> None:
        g = torch.Generator(device=module.device)
        g.set_state(module._generator.get_state())
        d = module.num_players if self.stage == "surrogate" else module.surrogate.num_players
        masks = ShapleyKernelSampler(d).sample(4, generator=g, batch_shape=(2,))
        self.first_masks = masks.int().tolist()

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dl_idx=0):
        with torch.no_grad():
            fn = module.validation_loss if self.stage == "surrogate" else module.validation_l2
            self.local.append(float(fn(batch, batch_idx)))

    def on_validation_end(self, trainer, module) -> None:
        rec = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "masks": self.first_masks,
            "local": sum(self.local) / len(self.local),
            "logged": float(trainer.callback_metrics[self.metric]),
        }
        path = self.out / f"rank{trainer.global_rank}_{self.stage}.json"
        path.write_text(json.dumps(rec))
        self.local = []


def main(out: Path) -> None:
    torch.manual_seed(0)
    d, n = 6, 64
    x = torch.randn(n, d)
    p = torch.softmax(torch.stack([x[:, 0] * x[:, 1] + x[:, 2], -x[:, 3]], 1), 1)
    y = p.argmax(1)
    train = DataLoader(TensorDataset(x, p, y), batch_size=16, sampler=EpochSampler(n, 0))
    val = DataLoader(TensorDataset(x[:32], p[:32], y[:32]), batch_size=16)
    trainer = {
        "accelerator": "cpu",
        "devices": 2,
        "strategy": "ddp",
        "progress_bar": False,
        "max_epochs": 2,
        "patience": 5,
    }
    surrogate = Surrogate(
        {"kind": "mlp", "in_features": d, "num_classes": 2, "hidden": 16, "layers": 2},
        {"kind": "identity", "num_features": d},
        seed=3,
    )
    pl.seed_everything(0)
    fit_module(
        surrogate,
        train,
        val,
        monitor="val_kl",
        out_dir=out / "surrogate_logs",
        **trainer,
        callbacks=[Record(out, "surrogate", "val_kl")],
    )
    if is_rank_zero():
        save_surrogate(surrogate, out / "surrogate.pt")
    explainer = SimSHAP(
        {
            "kind": "mlp",
            "in_features": d,
            "num_players": d,
            "num_classes": 2,
            "hidden": 16,
            "layers": 2,
        },
        surrogate.eval(),
        n_masks=4,
        val_budget=64,
        seed=5,
        sampling_epochs=2,
    )
    # (x, row index) batches: the default target regresses on each row's mean target
    xtrain = DataLoader(explainer.training_dataset(x), batch_size=16, sampler=EpochSampler(n, 0))
    xval = DataLoader(TensorDataset(x[:32]), batch_size=16)
    # two sampling epochs, then one on the mean targets
    fit_module(
        explainer,
        xtrain,
        xval,
        monitor="val_l2",
        out_dir=out / "simshap_logs",
        **{**trainer, "max_epochs": 3},
        callbacks=[Record(out, "simshap", "val_l2")],
    )
    memory = explainer.target_memory  # every rank keeps the means of all rows
    torch.save(memory.state_dict(), out / f"rank{dist.get_rank()}_memory.bin")
    if is_rank_zero():
        save_explainer(explainer, out / "simshap.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
