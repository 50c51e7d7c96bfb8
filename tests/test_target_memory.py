"""SimSHAP's per-row target means (``average_targets``): exact bookkeeping, unbiasedness, errors."""

from __future__ import annotations

import pytest
import torch
from test_input_noise import C, D, _spec, _surrogate  # the same tiny surrogate and network
from torch.utils.data import DataLoader, TensorDataset

from simshap.errors import UserError
from simshap.explainers import SimSHAP
from simshap.explainers.target_memory import TargetMemory
from simshap.games.estimators import exact_shapley
from simshap.training import EpochSampler, fit_module


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
    fit_module(explainer, train, val, monitor="val_l2", max_epochs=epochs, patience=1000,
               accelerator="cpu", progress_bar=False)
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
    # without averaging the rows go in alone, as before
    plain = SimSHAP(_spec(), surrogate, average_targets=False)
    assert len(plain.training_dataset(torch.randn(4, D)).tensors) == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"average_targets": "yes"}, "true, false or null"),
    ({"average_targets": True, "target": "paper"}, "needs explainer.target: default"),
])
def test_run_config_checks_average_targets(tmp_path, change, message):
    from simshap.config import TABULAR_DEFAULTS, merge_config
    from simshap.pipeline import TabularRun

    cfg = merge_config(TABULAR_DEFAULTS, {"dataset": "breast_cancer", "explainer": change})
    run = TabularRun(tmp_path / "run", cfg)
    with pytest.raises(UserError, match=message):
        run.build_explainer("simshap", _surrogate())


def test_run_config_resolves_average_targets(tmp_path):
    from simshap.config import TABULAR_DEFAULTS, merge_config
    from simshap.pipeline import TabularRun

    for extra, expected in [({}, True), ({"input_noise": 0.3}, False),
                            ({"input_noise": 0.3, "average_targets": True}, True),
                            ({"average_targets": False}, False)]:
        cfg = merge_config(TABULAR_DEFAULTS, {"dataset": "breast_cancer", "explainer": extra})
        run = TabularRun(tmp_path / "run", cfg)
        assert run.build_explainer("simshap", _surrogate()).averages_targets is expected
        assert not run.build_explainer("simshap_paper", _surrogate()).averages_targets
