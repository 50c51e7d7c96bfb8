"""Image explainers' schedule and gradient rows: the time budget, the best weights restored,
time to accuracy, fixed augmented rows, and IG / DeepSHAP rescaled to efficiency."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized.schedule import budget_callbacks, max_time
from simshap.amortized.training import adamw_cosine, fit_module
from simshap.data.image_folder import augment_images
from simshap.errors import UserError
from simshap.evaluation.baselines.rescaled import (
    deeplift_supported,
    efficient_gradient_attributions,
)
from simshap.games.values import MaskedModelGame
from simshap.models.user_image import ImputedInput, MaskChannelInput, load_image_model
from simshap.players import Players


class _Sleepy(pl.LightningModule):
    """One parameter walking up by 0.5 per epoch; validation is (w - 1)^2: best at epoch 1.

    Each training step sleeps, so an epoch takes wall time but (almost) no CPU.
    """

    def __init__(self, sleep_s: float = 0.0, cosine_epochs: int = 0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.sleep_s = sleep_s
        self.cosine_epochs = cosine_epochs

    def training_step(self, batch, batch_idx):
        time.sleep(self.sleep_s)
        return -self.w * (1.0 / self.trainer.num_training_batches)

    def validation_step(self, batch, batch_idx):
        self.log("val_l2", (self.w.detach() - 1.0) ** 2)

    def configure_optimizers(self):
        if self.cosine_epochs:
            return adamw_cosine([self.w], 0.5, 0.0, self.cosine_epochs)
        return torch.optim.SGD([self.w], lr=0.5)


def _loaders(n: int = 4):
    data = TensorDataset(torch.zeros(n, 1))
    return DataLoader(data, batch_size=1), DataLoader(TensorDataset(torch.zeros(1, 1)))


@pytest.mark.timeout(60)
def test_best_validation_weights_are_restored_and_time_to_best_recorded(tmp_path):
    module = _Sleepy()
    curve, budget = budget_callbacks(None, "val_l2")
    assert budget is None
    train, val = _loaders(1)
    fit = fit_module(
        module, train, val, "val_l2", max_epochs=20, patience=2, out_dir=tmp_path,
        accelerator="cpu", progress_bar=False, resume=False, callbacks=[curve],
    )  # fmt: skip
    s = curve.summary()
    assert s["stopped_by"] == "early_stopping" and fit.epochs < 20
    assert s["best_epoch"] == 1 and s["best_val"] == pytest.approx(0.0)
    assert float(module.w.detach()) == pytest.approx(1.0)  # the best epoch, not the last
    assert len(s["val_curve"]) == s["validations"] >= 3
    seconds = [p[0] for p in s["val_curve"]]
    assert seconds == sorted(seconds) and s["time_to_best_s"] == seconds[1]
    assert 0 < s["time_to_best_s"] <= s["train_s"]


@pytest.mark.timeout(60)
def test_time_budget_stops_training_and_sizes_the_schedule(tmp_path):
    module = _Sleepy(sleep_s=0.05, cosine_epochs=1000)  # about 0.2 s per epoch, little CPU
    curve, budget = budget_callbacks(0.02, "val_l2")  # 1.2 seconds
    train, val = _loaders(4)
    t0 = time.perf_counter()
    fit = fit_module(
        module, train, val, "val_l2", max_epochs=1000, patience=1000, out_dir=tmp_path,
        accelerator="cpu", progress_bar=False, resume=False, max_time=max_time(0.02),
        callbacks=[curve, budget],
    )  # fmt: skip
    assert time.perf_counter() - t0 < 20
    b, s = budget.summary(), curve.summary()
    assert b["budget_s"] == pytest.approx(1.2)
    assert 1 <= b["schedule_epochs"] < 20  # sized from the first epoch, not max_epochs
    assert fit.epochs <= b["schedule_epochs"] and s["stopped_by"] in ("max_epochs", "max_time")
    sched = module.trainer.lr_scheduler_configs[0].scheduler
    assert sched.T_max == b["schedule_epochs"]  # the cosine decay ends with the budget
    assert s["validations"] >= 1 and s["time_to_best_s"] <= s["train_s"] < 10
    with pytest.raises(ValueError, match="positive number of minutes"):
        max_time(0)


@pytest.mark.timeout(60)
def test_augmented_rows_are_fixed_flips_and_shifts():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    a = augment_images(x, flips=True, crops=2, pad=2, seed=3)
    assert a.shape == (2 * 2 * 3, 1, 8, 8)
    assert torch.equal(a[:2], x) and torch.equal(a[2:4], x.flip(-1))
    assert torch.equal(a, augment_images(x, flips=True, crops=2, pad=2, seed=3))  # seeded
    assert not torch.equal(a[4:8], a[:4])  # shifted copies differ from their sources
    assert augment_images(x, flips=False, crops=0).shape == x.shape


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1, stride=2),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4),
    )  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize("method", ["ig", "deepshap"])
@pytest.mark.parametrize("rescale", ["additive", "multiplicative"])
def test_rescaled_gradients_are_efficient_on_the_game(method, rescale):
    net = ImputedInput(_tiny_net()).eval()
    players = Players.superpixels((8, 8), 4)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))

    def value(z, mask):
        with torch.no_grad():
            return torch.softmax(net(z, mask), -1)

    game = MaskedModelGame(value, x, groups=players)
    ends = torch.zeros(3, 2, 4, dtype=torch.bool)
    ends[:, 1] = True
    v = game(ends).double()
    target = torch.tensor([0, 2, 3])
    rows = torch.arange(3)
    delta = v[rows, 1, target] - v[rows, 0, target]
    phi, info = efficient_gradient_attributions(
        method, net, x, target, players, delta, rescale=rescale, steps=32
    )
    assert phi.shape == (3, 4)
    torch.testing.assert_close(phi.sum(1), delta, atol=1e-10, rtol=0)  # efficiency
    assert rescale in info["rescaled"]
    if method == "ig":  # completeness from the zero input: only the integration error moved
        assert info["efficiency_gap_before"] < 0.05
    else:
        assert "DeepLiftShap" in info["used"]


@pytest.mark.timeout(60)
def test_deeplift_needs_eager_nonlinearities_else_gradientshap(tmp_path):
    net = _tiny_net().eval()
    assert deeplift_supported(net)
    path = tmp_path / "m.pt2"
    batch = {0: torch.export.Dim("batch", min=1)}
    x = torch.randn(2, 3, 8, 8)
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=(batch,)), str(path))
    graph = ImputedInput(load_image_model(str(path)))  # what a .pt2 model.path gives
    assert not deeplift_supported(graph)
    delta = torch.tensor([0.1, -0.2], dtype=torch.float64)
    phi, info = efficient_gradient_attributions(
        "deepshap", graph, x, torch.tensor([1, 2]), Players.superpixels((8, 8), 4), delta, steps=8
    )
    assert "GradientShap" in info["used"]
    torch.testing.assert_close(phi.sum(1), delta, atol=1e-10, rtol=0)


@pytest.mark.timeout(60)
def test_mask_channel_surrogate_starts_as_the_user_model(tmp_path):
    from simshap.amortized.surrogate import build_surrogate_net

    net = _tiny_net().eval()
    x = torch.randn(2, 3, 8, 8)
    path = tmp_path / "m.pt2"
    batch = {0: torch.export.Dim("batch", min=1)}
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=(batch,)), str(path))
    mask = torch.rand(2, 1, 8, 8) > 0.5
    for ref in (str(path), net):  # an exported graph, and an eager model traced by torch.fx
        model = load_image_model(ref) if isinstance(ref, str) else _tiny_net().eval()
        masked = MaskChannelInput(model)
        torch.testing.assert_close(masked(x, mask), net(x * mask))  # new weights start at 0
        conv_w = [p for p in masked.parameters() if p.ndim == 4][0]
        assert conv_w.shape[1] == 4  # 3 image channels and the mask
        masked(x, mask).sum().backward()
        assert conv_w.grad[:, 3].abs().sum() > 0  # the mask channel learns
    spec = {"kind": "user", "model": str(path), "num_classes": 4, "mask_channel": True}
    a, b = build_surrogate_net(spec), build_surrogate_net(spec)
    b.load_state_dict(a.state_dict())  # a saved surrogate rebuilds from its spec
    with pytest.raises(UserError, match="TorchScript"):
        MaskChannelInput(torch.jit.script(_tiny_net()))
