"""SimSHAP's per-row target means (``average_targets``): exact bookkeeping, unbiasedness, errors."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from test_input_noise import C, D, _spec, _surrogate  # the same tiny surrogate and network
from torch.utils.data import DataLoader, TensorDataset

from simshap.amortized import SimSHAP, efficient_normalization
from simshap.amortized.target_memory import TargetMemory
from simshap.amortized.training import EpochSampler, fit_module
from simshap.errors import UserError
from simshap.estimators.exact import exact_shapley


def test_memory_means_are_the_exact_means_of_the_updates_and_round_trip():
    gen = torch.Generator().manual_seed(0)
    memory = TargetMemory(4)
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(4)}
    for _ in range(6):
        index = torch.randint(0, 4, (5,), generator=gen)  # repeats within a batch too
        targets = torch.randn(5, D, C, generator=gen)
        memory.update(index, targets)
        for i, t in zip(index.tolist(), targets, strict=True):
            seen[i].append(t)
    rows = [i for i in range(4) if seen[i]]
    expected = torch.stack([torch.stack(seen[i]).mean(0) for i in rows])
    got = memory.mean(torch.tensor(rows))
    assert torch.allclose(got, expected, atol=1e-6)
    assert memory.counts.tolist() == [float(len(seen[i])) for i in range(4)]
    again = TargetMemory.from_state_dict(memory.state_dict())
    assert torch.equal(again.mean(torch.tensor(rows)), got)


def test_memory_refuses_bad_rows():
    memory = TargetMemory(3)
    with pytest.raises(UserError, match="out of range"):
        memory.update(torch.tensor([3]), torch.zeros(1, D, C))
    with pytest.raises(UserError, match="int64 row indices"):
        memory.update(torch.tensor([0.0]), torch.zeros(1, D, C))
    memory.update(torch.tensor([0]), torch.zeros(1, D, C))
    with pytest.raises(RuntimeError, match="before it got a target"):
        memory.mean(torch.tensor([1]))
    with pytest.raises(UserError, match="positive number of rows"):
        TargetMemory(0)


@pytest.mark.timeout(300)
def test_training_on_target_means_counts_every_row_once_per_epoch_and_the_means_converge():
    """Each epoch adds one unbiased target per row; the mean of E targets is closer to the
    exact Shapley values than one target is (its variance falls as 1/E)."""
    surrogate = _surrogate()
    torch.manual_seed(1)
    x = torch.randn(24, D)
    explainer = SimSHAP(_spec(), surrogate, n_masks=4, val_budget=32, seed=2)
    assert explainer.averages_targets and explainer.hparams.average_targets
    train = DataLoader(explainer.training_dataset(x), batch_size=8, sampler=EpochSampler(24, 0))
    val = DataLoader(TensorDataset(x[:8]), batch_size=8)
    firsts: dict[int, torch.Tensor] = {}
    real_update = explainer.target_memory.update

    def spy(index, targets):  # keep each row's first target
        for i, t in zip(index.tolist(), targets, strict=True):
            firsts.setdefault(i, t.detach().clone())
        real_update(index, targets)

    explainer.target_memory.update = spy
    epochs = 40
    fit_module(
        explainer,
        train,
        val,
        monitor="val_l2",
        max_epochs=epochs,
        patience=1000,
        accelerator="cpu",
        progress_bar=False,
    )
    memory = explainer.target_memory
    assert torch.equal(memory.counts, torch.full((24,), float(epochs)))
    exact = exact_shapley(explainer.game(x)).values.float()
    one = torch.stack([firsts[i] for i in range(24)])
    err_one = (one - exact).pow(2).sum((1, 2)).mean()
    err_mean = (memory.mean(torch.arange(24)) - exact).pow(2).sum((1, 2)).mean()
    # independent unbiased targets whose variance does not grow: the mean of E has at most
    # 1/E of the first one's squared error (measured: 0.021 at E = 40); 2x slack for the draw
    assert err_mean < 2.0 / epochs * err_one


def test_average_targets_needs_the_default_target_and_indexed_batches():
    surrogate = _surrogate()
    assert not SimSHAP(_spec(), surrogate, target="paper").averages_targets
    assert not SimSHAP(_spec(), surrogate, average_targets=False).averages_targets
    # a row's noisy copies are different inputs: input noise turns the default off
    assert not SimSHAP(_spec(), surrogate, input_noise=0.3).averages_targets
    assert SimSHAP(_spec(), surrogate, input_noise=0.3, average_targets=True).averages_targets
    with pytest.raises(UserError, match="Algorithm 1"):
        SimSHAP(_spec(), surrogate, target="paper", average_targets=True)
    with pytest.raises(UserError, match="true or false"):
        SimSHAP(_spec(), surrogate, average_targets="yes")
    explainer = SimSHAP(_spec(), surrogate, n_masks=4)
    explainer.init_mask_generator()
    with pytest.raises(UserError, match="training_dataset"):
        explainer.training_step((torch.randn(4, D),), 0)  # no row indices
    # without averaging the rows come with their indices too, but no memory is kept
    plain = SimSHAP(_spec(), surrogate, average_targets=False)
    assert len(plain.training_dataset(torch.randn(4, D)).tensors) == 2
    assert plain.target_memory is None


def _run(tmp_path, explainer: dict):
    """A breast_cancer run with its (quick) original model trained, for building explainers."""
    from simshap.runs.config import TABULAR_DEFAULTS
    from simshap.runs.config_files import merge_config
    from simshap.runs.tabular import TabularRun

    cfg = merge_config(
        TABULAR_DEFAULTS,
        {"dataset": "breast_cancer", "explainer": explainer, "model": {"max_rounds": 20}},
    )
    run = TabularRun(tmp_path / "run", cfg)
    run.start(overwrite=True)
    run.fit_model()
    return run


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"average_targets": "yes"}, "average_targets' should be a valid boolean"),
        ({"memory_epochs": -1}, "memory_epochs' should be greater than or equal to 0"),
        ({"memory_epochs": 1.5}, "memory_epochs' should be a valid integer"),
    ],
)
def test_run_config_values_are_typed(tmp_path, change, message):
    from simshap.runs.config import TABULAR_DEFAULTS
    from simshap.runs.config_files import merge_config
    from simshap.runs.tabular import TabularRun

    cfg = merge_config(TABULAR_DEFAULTS, {"dataset": "breast_cancer", "explainer": change})
    with pytest.raises(UserError, match=message):
        TabularRun(tmp_path / "run", cfg)  # before any work


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"average_targets": True, "target": "paper"}, "needs explainer.target: default"),
        ({"memory_epochs": 5, "average_targets": False}, "needs averaged targets"),
        ({"memory_epochs": 5, "input_noise": 0.3}, "needs averaged targets"),
    ],
)
def test_run_config_checks_averaging_options(tmp_path, change, message):
    run = _run(tmp_path, change)
    with pytest.raises(UserError, match=message):
        run.build_explainer("simshap", run.build_surrogate())


def test_run_config_resolves_average_targets(tmp_path):
    # breast_cancer is a small table: its profile trains on noised inputs, without averaging
    for extra, expected in [
        ({}, False),
        ({"input_noise": 0.0}, True),
        ({"input_noise": 0.3}, False),
        ({"input_noise": 0.3, "average_targets": True}, True),
        ({"average_targets": False}, False),
    ]:
        run = _run(tmp_path, extra)
        assert run.build_explainer("simshap", run.build_surrogate()).averages_targets is expected
        assert not run.build_explainer("simshap_paper", run.build_surrogate()).averages_targets


@pytest.mark.timeout(300)
def test_memory_epochs_fit_the_means_without_calling_the_surrogate():
    """After ``sampling_epochs`` the steps draw nothing and call no surrogate; the memory
    stays as the sampling epochs left it; and the loss is L2 to those means."""
    surrogate = _surrogate()
    torch.manual_seed(1)
    x = torch.randn(24, D)
    explainer = SimSHAP(
        _spec(), surrogate, n_masks=4, val_budget=32, seed=2, sampling_epochs=3, max_epochs_hint=7
    )
    train = DataLoader(explainer.training_dataset(x), batch_size=8, sampler=EpochSampler(24, 0))
    val = DataLoader(TensorDataset(x[:8]), batch_size=8)
    calls: list[int] = []
    real_sample = explainer.sample_values

    def counting(xb, raw=None):
        calls.append(explainer.current_epoch)
        return real_sample(xb, raw)

    explainer.sample_values = counting
    seen: dict[str, Any] = {}

    class Snapshot(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            if module.current_epoch == 3:  # the memory and weights the fitting starts from
                seen["sums"] = module.target_memory.sums.clone()
                seen["net"] = {k: v.clone() for k, v in module.net.state_dict().items()}

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if module.current_epoch >= 3:
                seen["memory_steps"] = seen.get("memory_steps", 0) + 1

    fit_module(
        explainer,
        train,
        val,
        monitor="val_l2",
        max_epochs=7,
        patience=1000,
        accelerator="cpu",
        progress_bar=False,
        callbacks=[Snapshot()],
    )
    assert sorted(set(calls)) == [0, 1, 2] and len(calls) == 3 * 3  # 3 batches per epoch
    memory = explainer.target_memory
    assert torch.equal(memory.counts, torch.full((24,), 3.0))
    assert torch.equal(memory.sums, seen["sums"])
    assert seen["memory_steps"] == 4 * 3
    after = explainer.net.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in seen["net"].items())  # it still trains
    # one memory step is exactly an L2 step to the rows' means, from g(x) made efficient as
    # served (normalize, the default): the means sum to v(N) - v(∅), the total it is made to
    explainer.trainer.fit_loop.epoch_progress.current.completed = 5  # any memory epoch
    explainer.log = lambda *args, **kwargs: None  # outside the fit loop
    rows = torch.arange(8)
    loss = explainer.training_step((x[:8], rows), 0)
    means = memory.mean(rows)
    served = efficient_normalization(explainer.net(x[:8]), means.sum(1))
    assert torch.allclose(loss, torch.nn.functional.mse_loss(served, means))
    explainer.hparams["normalize"] = False  # raw: g(x) itself
    loss = explainer.training_step((x[:8], rows), 0)
    assert torch.allclose(loss, torch.nn.functional.mse_loss(explainer.net(x[:8]), means))


def test_sampling_epochs_is_checked():
    surrogate = _surrogate()
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(UserError, match="sampling_epochs must be a positive integer"):
            SimSHAP(_spec(), surrogate, sampling_epochs=bad)
    for kwargs in ({"average_targets": False}, {"input_noise": 0.3}):
        with pytest.raises(UserError, match="needs average_targets=True"):
            SimSHAP(_spec(), surrogate, sampling_epochs=3, **kwargs)
    explainer = SimSHAP(_spec(), surrogate, n_masks=4, val_budget=32, sampling_epochs=3)
    x = torch.randn(8, D)
    train = DataLoader(explainer.training_dataset(x), batch_size=8)
    with pytest.raises(UserError, match="leaves no epoch to fit"):
        fit_module(
            explainer,
            train,
            DataLoader(TensorDataset(x), batch_size=8),
            monitor="val_l2",
            max_epochs=3,
            accelerator="cpu",
            progress_bar=False,
        )


def test_run_config_memory_epochs_follow_the_sampling_epochs(tmp_path):
    run = _run(tmp_path, {"max_epochs": 30, "memory_epochs": 20, "input_noise": 0.0})
    sim = run.build_explainer("simshap", run.build_surrogate())
    assert run.explainer_epochs("simshap") == 50
    assert sim.hparams.sampling_epochs == 30 and sim.hparams.max_epochs_hint == 50
    # the other explainers keep max_epochs (the paper target and FastSHAP draw every epoch)
    for name in ("simshap_paper", "fastshap"):
        assert run.explainer_epochs(name) == 30
        assert run.build_explainer(name, run.build_surrogate()).hparams.max_epochs_hint == 30
    assert (
        run.build_explainer("simshap_paper", run.build_surrogate()).hparams.get("sampling_epochs")
        is None
    )
