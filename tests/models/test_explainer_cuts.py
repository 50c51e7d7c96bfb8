"""Thermometer inputs of the tabular explainer: cut points from the training rows, the inputs
``x_j > c`` inside the network (so export, serving and loading need nothing else)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simshap.models.explainer_nets import MLPExplainerNet, build_explainer_net, cut_points
from simshap.runs.config import TabularExplainerSection
from simshap.runs.profiles import resolve_profile


def test_a_column_with_few_values_is_cut_between_every_two_neighbours():
    x = np.array([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0], [1.0, 5.0]])
    cuts = cut_points(x, bins=8)
    assert cuts == [[0.5, 2.0], []]  # the constant column gets none


def test_a_column_with_many_values_is_cut_at_its_quantiles():
    x = np.random.default_rng(0).normal(size=(10_000, 1))
    (cuts,) = cut_points(x, bins=16)
    assert len(cuts) == 15 and np.all(np.diff(cuts) > 0)
    share = np.histogram(x[:, 0], bins=[-np.inf, *cuts, np.inf])[0] / len(x)
    np.testing.assert_allclose(share, 1 / 16, atol=0.002)  # equal-mass intervals


def test_every_cut_lies_midway_between_two_neighbouring_values():
    x = np.random.default_rng(1).integers(0, 300, size=(1_000, 1)).astype(float) / 7
    (cuts,) = cut_points(x, bins=64)
    values = np.unique(x)
    k = np.searchsorted(values, cuts)  # the neighbour above each cut
    np.testing.assert_allclose(cuts, (values[k - 1] + values[k]) / 2)
    assert not np.isin(cuts, values).any()


def test_values_a_float32_rounding_apart_are_never_cut_between():
    x = np.array([[0.7905203], [0.7905203 + 6e-8], [2.0], [3.0]], dtype=np.float32)
    assert cut_points(x, bins=8) == [[pytest.approx(1.3952601), 2.5]]


def test_ties_never_make_empty_intervals():
    x = np.r_[np.zeros(900), np.arange(1, 101)].reshape(-1, 1).astype(float)  # 90% zeros
    (cuts,) = cut_points(x, bins=32)
    share = np.histogram(x[:, 0], bins=[-np.inf, *cuts, np.inf])[0]
    assert share.min() > 0 and cuts[0] > 0 and len(cuts) < 31


@pytest.mark.parametrize("bins", [1, 0, 2.5, True])
def test_bins_must_be_an_integer_of_at_least_two(bins):
    with pytest.raises(ValueError, match="bins"):
        cut_points(np.zeros((3, 1)), bins)


def test_the_network_sees_its_inputs_and_their_thermometer_code():
    torch.manual_seed(0)
    cuts = [[-0.5, 0.5], [], [0.0]]
    net = MLPExplainerNet(4, 3, 2, hidden=8, layers=2, cuts=cuts)
    assert net.mlp.net[0].in_features == 4 + 3
    x = torch.tensor([[-1.0, 2.0, 0.0, 1.0], [0.7, -3.0, 0.1, 0.0]])
    code = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # x0 > -0.5, x0 > 0.5, x2 > 0
    want = net.mlp(torch.cat([x, code], 1)).view(-1, 3, 2)
    torch.testing.assert_close(net(x), want, rtol=0, atol=0)


def test_the_cuts_travel_in_the_spec_and_rebuild_the_same_network():
    torch.manual_seed(1)
    net = MLPExplainerNet(3, 3, 1, hidden=8, layers=2, cuts=[[0.0, 1.0], [2.0], [-1.0]])
    again = build_explainer_net(net.spec)
    again.load_state_dict(net.state_dict())
    x = torch.randn(16, 3) * 2
    assert torch.equal(again(x), net(x))
    assert set(net.state_dict()) == set(MLPExplainerNet(3, 3, 1, 8, 2).state_dict())


@pytest.mark.parametrize(
    "cuts", [[[1.0, 0.0]], [[float("nan")]], [[0.0], [0.0], [0.0], [0.0]], [[0.0, 0.0]]]
)
def test_bad_cuts_are_refused(cuts):
    with pytest.raises(ValueError, match="cuts"):
        MLPExplainerNet(3, 3, 1, hidden=8, layers=2, cuts=cuts)


def test_the_marginal_game_takes_them_by_default_and_a_set_key_wins():
    from simshap.runs.config import TABULAR_DEFAULTS, validate_config
    from simshap.runs.config_files import merge_config

    def bins(game, explainer=None):
        user = {"game": game, "explainer": explainer or {}}
        cfg = validate_config(merge_config(TABULAR_DEFAULTS, user))
        return resolve_profile(cfg, train_rows=10_000)["explainer"]["input_bins"]

    assert bins("marginal") == 128
    assert bins("surrogate") == 0 and bins("baseline") == 0
    assert bins("marginal", {"input_bins": 0}) == 0
    assert bins("surrogate", {"input_bins": 16}) == 16
    with pytest.raises(ValueError, match="input_bins"):
        TabularExplainerSection(input_bins=1)
