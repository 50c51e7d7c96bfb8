"""Explainers take a user network: SimSHAP(net=my_module), trained, saved and loaded with net=."""

from __future__ import annotations

import pytest
import torch
from test_input_noise import C, D, _spec, _surrogate  # the same tiny surrogate and network
from torch import nn
from torch.utils.data import DataLoader

import simshap
from simshap.amortized import FastSHAP, SimSHAP
from simshap.amortized.training import quiet_cpu_trainer
from simshap.errors import UserError


class MyNet(nn.Module):
    """A user's own network: two layers, flat output of d * C values."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(D, 24), nn.Tanh(), nn.Linear(24, D * C))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _train(module, x):
    loader = DataLoader(module.training_dataset(x), batch_size=64, shuffle=False)
    quiet_cpu_trainer(max_epochs=2).fit(module, loader)
    return module.eval()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cls", [SimSHAP, FastSHAP])
def test_a_user_network_trains_saves_and_loads(cls, tmp_path):
    torch.manual_seed(0)
    x = torch.randn(256, D)
    explainer = _train(cls(net=MyNet(), surrogate=_surrogate(), n_masks=4, seed=0), x)
    assert isinstance(explainer.net.module, MyNet)
    assert explainer.net.spec["module"].endswith("MyNet")
    sv = explainer(x[:16])
    assert sv.values.shape == (16, D, C)
    # additive: base + sum = the surrogate's v(N)
    torch.testing.assert_close(sv.base_values + sv.values.sum(1), sv.prediction, atol=1e-5, rtol=0)

    path = tmp_path / "mine.pt"
    simshap.save(explainer, path)
    with pytest.raises(UserError, match="net="):  # the file holds weights, not code
        simshap.load(path)
    again = simshap.load(path, net=MyNet())
    assert torch.equal(again(x[:16]).values, sv.values)

    wrong = nn.Sequential(nn.Linear(D, 5), nn.Linear(5, D * C))
    with pytest.raises(UserError, match="does not fit the saved weights"):
        simshap.load(path, net=wrong)


def test_a_user_network_gets_its_shape_from_the_surrogate_and_is_checked():
    explainer = SimSHAP(net=MyNet(), surrogate=_surrogate())
    assert {k: explainer.net.spec[k] for k in ("num_players", "num_classes", "in_features")} == {
        "num_players": D,
        "num_classes": C,
        "in_features": D,
    }
    bad = SimSHAP(net=nn.Linear(D, 3), surrogate=_surrogate())
    with pytest.raises(ValueError, match=r"one value per player and class"):
        bad(torch.randn(2, D))
    with pytest.raises(UserError, match="net_spec"):  # neither a net nor a spec
        SimSHAP(surrogate=_surrogate())
    with pytest.raises(UserError, match="its shape"):  # no surrogate to read the shape from
        SimSHAP(net=MyNet())
    # simshap's own network from its spec keeps working, and refuses net= at load
    assert SimSHAP(_spec(), _surrogate()).net.spec["kind"] == "mlp"
