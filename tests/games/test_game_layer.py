"""The one result type, the one budget unit, the game protocol and Players (issue 10)."""

import math
import pickle

import pytest
import torch

import simshap
from simshap.errors import UserError
from simshap.estimators import (
    appro_semivalue,
    exact_shapley,
    kernel_shap,
    permutation_shapley,
    sim_semivalue,
)
from simshap.games import BaselineGame, FunctionGame, GameProtocol, MaskedModelGame, TableGame
from simshap.players import Players
from simshap.results import ShapleyValues


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_table(d, b=2, c=2, seed=0):
    return torch.randn(b, 2**d, c, generator=gen(seed), dtype=torch.float64)


class DuckGame:
    """Honors the contract without subclassing Game: no device, select or empty_and_full."""

    def __init__(self, table):
        self.table = table
        self.num_instances, n, _ = table.shape
        self.num_players = int(math.log2(n))
        self.evals = torch.zeros(self.num_instances, dtype=torch.long)

    def __call__(self, masks):
        assert masks.dtype == torch.bool and masks.ndim == 3
        self.evals += masks.shape[1]
        bits = 1 << torch.arange(self.num_players)
        idx = (masks.long() * bits).sum(-1)
        return torch.gather(self.table, 1, idx.unsqueeze(-1).expand(-1, -1, self.table.shape[-1]))


ESTIMATORS = {
    "kernel_shap": lambda g, b: kernel_shap(g, budget=b, generator=gen(1)),
    "kernel_shap_unpaired": lambda g, b: kernel_shap(g, budget=b, paired=False, generator=gen(1)),
    "kernel_shap_leverage": lambda g, b: kernel_shap(
        g, budget=b, sampling="leverage", generator=gen(1)
    ),
    "permutation": lambda g, b: permutation_shapley(g, budget=b, generator=gen(2)),
    "permutation_plain": lambda g, b: permutation_shapley(
        g, budget=b, antithetic=False, generator=gen(2)
    ),
    "appro_semivalue": lambda g, b: appro_semivalue(g, budget=b, generator=gen(3)),
    "sim_semivalue": lambda g, b: sim_semivalue(g, budget=b, generator=gen(4)),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("budget", [37, 100, 255])
def test_every_estimator_returns_shapley_values_and_counts_its_budget(name, budget):
    # a duck-typed game that counts the coalitions it answers, per instance
    game = DuckGame(random_table(7, b=3, c=2, seed=budget))
    res = ESTIMATORS[name](game, budget)
    assert isinstance(res, ShapleyValues) and isinstance(res, simshap.ShapleyValues)
    assert res.values.shape == (3, 7, 2) and res.base_values.shape == (3, 2)
    assert res.method
    # n_evals is exactly what the game was asked, and never more than the budget
    assert (game.evals == res.n_evals).all(), (game.evals, res.n_evals)
    assert res.n_evals <= budget
    assert torch.equal(res.base_values, game.table[:, 0])  # base value = v(∅)


def test_duck_typed_game_is_a_game_and_gives_exact_values():
    table = random_table(5, b=2, c=3, seed=1)
    duck = DuckGame(table)
    assert isinstance(duck, GameProtocol)
    res = exact_shapley(duck)
    ref = exact_shapley(TableGame(table))
    assert res.method == "exact" and res.n_evals == 32
    assert torch.allclose(res.values, ref.values)
    assert res.check_efficiency(table[:, -1], atol=1e-10)
    conv = kernel_shap(DuckGame(table), threshold=0.05, generator=gen(0))
    assert conv.std is not None and torch.allclose(conv.values.sum(1), table[:, -1] - table[:, 0])


def test_not_a_game_is_refused_clearly():
    with pytest.raises(UserError, match="num_players, num_instances and __call__"):
        exact_shapley(lambda m: m)


def test_full_budget_is_exact_for_both_samplings():
    table = random_table(8, seed=3)
    exact = exact_shapley(TableGame(table)).values
    for sampling in ("kernel", "leverage"):
        res = kernel_shap(TableGame(table), budget=2**8, sampling=sampling, generator=gen(0))
        assert res.n_evals == 2**8
        assert torch.allclose(res.values, exact, atol=1e-10), sampling


def test_the_one_budget_keyword_is_refused_in_its_old_forms():
    game = TableGame(random_table(6, seed=4))
    for call in (
        lambda: kernel_shap(game, n_samples=40),
        lambda: permutation_shapley(game, n_permutations=4),
        lambda: appro_semivalue(game, n_samples=3),
    ):
        with pytest.raises(TypeError):
            call()


# --------------------------------------------------------------------------- ShapleyValues


def test_select_to_shap_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    import shap

    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    x = torch.randn(6, 4, generator=gen(0))
    game = BaselineGame(lambda z: torch.stack([z @ w, -(z @ w)], -1), x, torch.zeros(4))
    game.groups.names = ["a", "b", "c", "d"]
    res = exact_shapley(game)
    res.class_names = ["up", "down"]
    assert res.player_names == ["a", "b", "c", "d"]
    assert torch.allclose(res.select(0), x * w, atol=1e-5)
    assert torch.allclose(res.select(torch.tensor([1] * 6)), -x * w, atol=1e-5)
    with pytest.raises(UserError, match="class"):
        res.select()
    e = res.to_shap(target=0, data=x)
    assert e.values.shape == (6, 4) and e.feature_names == ["a", "b", "c", "d"]
    # additivity as shap reads it: base + sum(values) = model output
    assert abs(float(e.base_values[0] + e.values[0].sum()) - float(x[0] @ w)) < 1e-5
    shap.plots.bar(e, show=False)
    shap.plots.beeswarm(e, show=False)
    matplotlib.pyplot.close("all")


def test_as_image_and_image_plot():
    import matplotlib

    matplotlib.use("Agg")
    import shap

    images = torch.randn(2, 3, 8, 8, generator=gen(1))
    model = lambda z: torch.stack([z.mean((1, 2, 3)), z[:, 0].sum((1, 2))], -1)  # noqa: E731
    game = BaselineGame(model, images, torch.zeros(3, 8, 8), groups=Players.superpixels((8, 8), 2))
    res = kernel_shap(game, budget=200, generator=gen(0))
    assert res.grid == (4, 4)
    img = res.as_image()
    assert img.shape == (2, 2, 4, 4)
    assert torch.equal(img[1, 0].flatten(), res.values[1, :, 0])  # row-major superpixels
    e = res.to_shap(target=torch.tensor([0, 1]), data=images.permute(0, 2, 3, 1)[:, ::2, ::2])
    assert e.values.shape == (2, 4, 4, 1)
    shap.plots.image(e, show=False)
    matplotlib.pyplot.close("all")
    with pytest.raises(UserError, match="grid"):
        exact_shapley(TableGame(random_table(3))).as_image()


# --------------------------------------------------------------------------- baselines broadcast


@pytest.mark.parametrize("shape", [(4,), (1, 4), (3, 4)])
def test_baseline_broadcasts(shape):
    x = torch.randn(3, 4, generator=gen(2))
    base = torch.randn(shape, generator=gen(3))
    game = BaselineGame(lambda z: z.sum(-1), x, base)
    v0, v1 = game.empty_and_full()
    assert torch.allclose(v0[:, 0], base.expand(3, 4).sum(-1))
    assert torch.allclose(v1[:, 0], x.sum(-1))


def test_bad_baseline_and_masks_raise_user_errors():
    x = torch.randn(3, 4)
    with pytest.raises(UserError, match=r"\(4,\), \(1, 4\) or \(3, 4\)"):
        BaselineGame(lambda z: z.sum(-1), x, torch.zeros(2, 4))
    with pytest.raises(UserError, match="NaN"):
        BaselineGame(lambda z: z.sum(-1), x, torch.full((4,), float("nan")))
    with pytest.raises(UserError, match=r"\(B, M, d\)"):
        BaselineGame(lambda z: z.sum(-1), x, torch.zeros(4))(torch.zeros(2, 5, 4, dtype=bool))
    with pytest.raises(UserError, match="kernel_shap"):
        exact_shapley(FunctionGame(lambda m: m.sum(-1).double(), num_players=21))


# --------------------------------------------------------------------------- Players


@pytest.mark.parametrize(
    "players",
    [
        Players.identity(5, names=list("abcde")),
        Players.groups([[0, 3], [1], [2, 4]], names=["x", "y", "z"]),
        Players.superpixels((8, 6), 2),
        Players(torch.tensor([[0, 0, 1], [2, 2, 1]])),
    ],
)
def test_players_round_trip(players):
    import json

    back = Players.from_dict(json.loads(json.dumps(players.to_dict())))
    assert back == players and back.num_players == players.num_players
    assert pickle.loads(pickle.dumps(players)) == players
    masks = torch.rand(7, players.num_players, generator=gen(0)) < 0.5
    assert torch.equal(back.feature_mask(masks), players.feature_mask(masks))


def test_players_owner_map():
    p = Players.groups([[0, 2], [1]])
    assert isinstance(p, Players) and p.owner.tolist() == [0, 1, 0]
    fm = p.feature_mask(torch.tensor([[True, False]]))
    assert fm.tolist() == [[True, False, True]]
    sp = Players.superpixels((4, 4), 2)
    generic = Players(sp.owner)  # the same map, through the generic path
    masks = torch.rand(5, 4, generator=gen(1)) < 0.5
    assert torch.equal(sp.feature_mask(masks), generic.feature_mask(masks))
    assert sp.feature_mask(masks).shape == (5, 1, 4, 4) and sp.grid == (2, 2)
    # the surrogate's older saved specs still load
    from simshap.amortized.surrogate import _grouping_spec, build_grouping

    assert build_grouping({"kind": "identity", "num_features": 3}) == Players.identity(3)
    old = {"kind": "superpixels", "image_size": [32, 32], "superpixel_size": 2}
    assert build_grouping(old) == Players.superpixels((32, 32), 2)
    assert build_grouping(_grouping_spec(p)) == p
    with pytest.raises(UserError, match="partition"):
        Players.groups([[0, 1], [1]])
    with pytest.raises(UserError, match="every player"):
        Players(torch.tensor([0, 2]))


def test_grouped_game_equals_game_on_group_sums():
    # a linear model: the Shapley value of a group is the sum over its columns
    w = torch.tensor([1.0, 2.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    x = torch.randn(2, 5, generator=gen(4), dtype=torch.float64)
    players = Players.groups([[0, 3], [1], [2, 4]])
    game = MaskedModelGame(lambda z, m: (z * m) @ w, x, groups=players)
    res = exact_shapley(game)
    per_col = x * w
    want = torch.stack([per_col[:, [0, 3]].sum(1), per_col[:, 1], per_col[:, [2, 4]].sum(1)], 1)
    assert torch.allclose(res.values[..., 0], want)
