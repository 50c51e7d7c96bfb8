import numpy as np
import pytest
import torch

from simshap.games.values import all_coalitions
from simshap.interactions.exact import ExactInteractionComputer, exact_interactions
from simshap.studies.hpo.games import (
    AblationGame,
    MultiDataTunabilityGame,
    OneAtATimeSearch,
    OptimizerBiasGame,
    RandomSearch,
    SubsetSearch,
    TunabilityGame,
    aggregate,
)
from simshap.studies.hpo.objectives import LightGBMObjective, SurrogateObjective
from simshap.studies.hpo.space import Categorical, ConfigSpace, Float, Integer


def make_space() -> ConfigSpace:
    return ConfigSpace(
        [
            Float("lr", 1e-3, 1.0, log=True, default=0.01),
            Integer("leaves", 2, 64, log=True, default=8),
            Float("frac", 0.0, 1.0, default=0.5),
            Categorical("kind", ("a", "b", "c"), default="a"),
        ]
    )


def objective(configs: np.ndarray) -> np.ndarray:
    """Known optimum near lr=0.1, leaves=32, kind='b'; lr and leaves interact."""
    lr, leaves, frac, kind = configs.T
    a = -((np.log10(lr) + 1) ** 2)
    b = -((np.log2(leaves) - 5) ** 2) / 10
    return a + b + 0.3 * (kind == 1) + 0.2 * a * b + 0.01 * frac


def test_space_sampling_encoding_and_errors():
    space = make_space()
    rng = np.random.default_rng(0)
    x = space.sample(5000, rng)
    assert x.shape == (5000, 4)
    assert x[:, 0].min() >= 1e-3 and x[:, 0].max() <= 1.0
    assert np.all(x[:, 1] == np.round(x[:, 1])) and set(np.unique(x[:, 1])) == set(range(2, 65))
    assert set(np.unique(x[:, 3])) == {0.0, 1.0, 2.0}
    # log scale: about half the learning rates below the geometric midpoint
    assert 0.45 < np.mean(x[:, 0] < np.sqrt(1e-3)) < 0.55
    u = space.to_unit(x)
    assert u.min() >= 0 and u.max() <= 1
    d = space.decode(space.default())
    assert d == {"lr": 0.01, "leaves": 8, "frac": 0.5, "kind": "a"}
    np.testing.assert_array_equal(space.encode({"kind": "c"})[3], 2.0)
    with pytest.raises(ValueError, match="not one of"):
        space.encode({"kind": "z"})
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        space.encode({"depth": 3})
    with pytest.raises(ValueError, match="log-scale range needs low > 0"):
        Float("x", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="unknown keys"):
        ConfigSpace.from_dict({"lr": {"type": "float", "low": 0.1, "high": 1, "logg": True}})
    with pytest.raises(ValueError, match="unknown type"):
        ConfigSpace.from_dict({"lr": {"type": "real"}})
    built = ConfigSpace.from_dict(
        {
            "lr": {"type": "float", "low": 0.001, "high": 1, "log": True, "default": 0.1},
            "k": {"type": "categorical", "choices": ["x", "y"]},
        }
    )
    assert built.names == ["lr", "k"] and built.decode(built.default()) == {"lr": 0.1, "k": "x"}


def test_ablation_game_endpoints_and_values():
    space = make_space()
    ref, target = space.default(), space.encode({"lr": 0.1, "leaves": 32, "kind": "b"})
    game = AblationGame(space, objective, ref, target)
    v0, v1 = game.empty_and_full()
    assert float(v0) == pytest.approx(objective(ref[None])[0])
    assert float(v1) == pytest.approx(objective(target[None])[0])
    masks = all_coalitions(4)
    vals = game(masks)[0, :, 0].numpy()
    expected = objective(np.where(masks.numpy(), target, ref))
    np.testing.assert_allclose(vals, expected)
    # interactions: FSII efficient, the lr x leaves interaction is the top pair
    iv = exact_interactions(game, "FSII", 2)
    assert float(iv.values[0, 1:, 0].sum()) == pytest.approx(float(v1 - v0))
    assert iv.get_order(2).top_k(1)[0][0] == (0, 1)


def test_tunability_game_endpoints():
    space = make_space()
    ref = space.default()
    game = TunabilityGame(space, objective, ref, n_samples=2000, seed=1)
    v0, v1 = game.empty_and_full()
    assert float(v0) == pytest.approx(objective(ref[None])[0])
    best = max(objective(game.search.candidates))
    assert float(v1) == pytest.approx(best)
    assert game.search.candidates.shape == (2001, 4)
    vals = game(all_coalitions(4))[0, :, 0]
    assert torch.all(vals >= v0[0, 0] - 1e-12)
    # monotone: adding a tunable hyperparameter never hurts (same shared candidates)
    comp = ExactInteractionComputer(game)
    m = comp.moebius()[0, :, 0]
    assert float(m[0]) == pytest.approx(float(v0))
    # same seed, same game
    again = TunabilityGame(space, objective, ref, n_samples=2000, seed=1)
    torch.testing.assert_close(again(all_coalitions(4)), game(all_coalitions(4)))


def test_one_vectorised_objective_call_per_chunk():
    space = make_space()
    calls = []

    def counted(configs):
        calls.append(len(configs))
        return objective(configs)

    game = TunabilityGame(space, counted, space.default(), n_samples=999, batch_rows=8000)
    game(all_coalitions(4))
    assert calls == [8000, 8000]  # 16 coalitions x 1000 candidates in two calls


def test_multi_data_tunability_aggregates():
    space = make_space()
    shifted = [lambda c, s=s: objective(c) + s * c[:, 2] for s in (0.0, 1.0, 3.0)]
    masks = all_coalitions(4)
    single = np.stack(
        [
            TunabilityGame(space, f, space.default(), n_samples=500, seed=2)(masks)[0, :, 0]
            for f in shifted
        ]
    )
    for how, ref in [
        ("mean", single.mean(0)),
        ("median", np.median(single, 0)),
        (0.25, np.quantile(single, 0.25, 0)),
    ]:
        game = MultiDataTunabilityGame(space, shifted, space.default(), how, 500, seed=2)
        np.testing.assert_allclose(game(masks)[0, :, 0].numpy(), ref)
    with pytest.raises(ValueError, match="aggregate must be"):
        MultiDataTunabilityGame(space, shifted, space.default(), "max")
    assert aggregate(np.array([[1.0], [3.0]]), "quantile:0.5")[0] == 2.0


def test_optimizer_bias_game():
    space = make_space()
    search = RandomSearch(space, objective, space.default(), n_samples=1000, seed=3)
    oat = OneAtATimeSearch(search)
    masks = all_coalitions(4).numpy()
    single = oat.single_best()
    # one-at-a-time on a singleton equals random search on that singleton
    for i in range(4):
        m = np.zeros((1, 4), bool)
        m[0, i] = True
        assert oat.best(m)[0] == pytest.approx(search.best(m)[0])
    assert oat.best(masks[:1])[0] == pytest.approx(single[0])
    game = OptimizerBiasGame(space, oat, [search])
    v0, v1 = game.empty_and_full()
    assert float(v0) == 0.0
    assert float(v1) == pytest.approx(
        max(search.best(masks[-1:])[0], oat.best(masks[-1:])[0]) - oat.best(masks[-1:])[0]
    )
    vals = game(all_coalitions(4))[0, :, 0]
    assert torch.all(vals >= 0)
    # lr and leaves interact, so tuning them jointly beats tuning each alone
    both = np.zeros((1, 4), bool)
    both[0, :2] = True
    assert float(game(torch.as_tensor(both))[0, 0, 0]) > 0
    subset = SubsetSearch(search, ["lr", "frac"])
    sub_game = OptimizerBiasGame(space, subset, [search])
    # the subset optimizer loses exactly what tuning 'kind' and 'leaves' would add
    only_sub = np.zeros((1, 4), bool)
    only_sub[0, [0, 2]] = True
    assert float(sub_game(torch.as_tensor(only_sub))[0, 0, 0]) == 0.0
    assert float(sub_game.empty_and_full()[1]) > 0
    with pytest.raises(ValueError, match="outside"):
        SubsetSearch(search, [7])


def test_game_errors():
    space = make_space()
    with pytest.raises(ValueError, match="4 entries"):
        AblationGame(space, objective, np.zeros(3), space.default())
    game = AblationGame(space, lambda c: np.zeros(len(c) + 1), space.default(), space.default())
    with pytest.raises(ValueError, match="one value per configuration"):
        game.empty_and_full()
    nan_game = AblationGame(
        space, lambda c: np.full(len(c), np.nan), space.default(), space.default()
    )
    with pytest.raises(ValueError, match="NaN"):
        nan_game.empty_and_full()


def test_surrogate_and_lightgbm_objective():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    space = ConfigSpace(
        [
            Float("learning_rate", 0.01, 0.3, log=True, default=0.1),
            Integer("num_leaves", 2, 16, default=8),
            Integer("n_estimators", 5, 30, default=10),
        ]
    )
    x, y = load_breast_cancer(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    obj = LightGBMObjective(space, xt, yt, xv, yv, metric="roc_auc")
    configs = space.sample(8, np.random.default_rng(0))
    scores = obj(configs)
    assert obj.n_fits == 8 and np.all((scores > 0.8) & (scores <= 1.0))
    cv_obj = LightGBMObjective(space, xt, yt, cv=3, metric="accuracy")
    assert 0.8 < cv_obj(space.default()[None])[0] <= 1.0 and cv_obj.n_fits == 3
    for model in ("random_forest", "lightgbm"):
        sur = SurrogateObjective(space, configs, scores, model=model)
        assert sur(configs).shape == (8,)
    with pytest.raises(ValueError, match="unknown surrogate"):
        SurrogateObjective(space, configs, scores, model="gp")
    with pytest.raises(ValueError, match="x_val and y_val"):
        LightGBMObjective(space, xt, yt)
    with pytest.raises(ValueError, match="unknown metric"):
        LightGBMObjective(space, xt, yt, xv, yv, metric="f1")


def tiny_config(tmp_path, datasets=("breast_cancer", "iris"), **extra):
    import yaml

    cfg = {
        "datasets": list(datasets),
        "n_configs": 8,
        "n_candidates": 200,
        "max_train_rows": 300,
        "metric": "neg_log_loss",
        "orders": [1, 2],
        "downstream": {"n_trials": 10, "seeds": 2},
        "space": {
            "learning_rate": {"type": "float", "low": 0.05, "high": 0.3, "log": True},
            "num_leaves": {"type": "int", "low": 2, "high": 8},
            "n_estimators": {"type": "int", "low": 5, "high": 15, "default": 10},
        },
        **extra,
    }
    path = tmp_path / "hpi.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    import json

    from simshap.cli import main

    cfg = tiny_config(tmp_path)
    out = tmp_path / "run"
    assert main(["hpi", str(cfg), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    for name in ("breast_cancer", "iris"):
        entry = res["datasets"][name]
        tun = entry["tunability"]
        assert tun["v_empty"] == pytest.approx(entry["default_score"], abs=0.05)
        assert tun["v_full"] >= tun["v_empty"]
        assert sum(tun["fsii"]["2"].values()) == pytest.approx(tun["v_full"] - tun["v_empty"])
        assert tun["r2"][-1] == pytest.approx(1.0)
        assert np.all(np.diff(tun["r2"]) >= -1e-10)
        assert entry["optimizer_bias"]["one_at_a_time"]["v_empty"] == 0.0
        assert len(entry["downstream"]["all_mean"]) == 10
    assert "multi_data_tunability" in res
    for f in ("r2_curves.png", "anytime.png", "interactions_breast_cancer.png"):
        assert (out / f).stat().st_size > 1000


def test_cli_refuses_existing_out_and_bad_keys(tmp_path, capsys):
    from simshap.cli import main

    cfg = tiny_config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    assert main(["hpi", str(cfg), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [iris]\nn_confgs: 3\n")
    assert main(["hpi", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "unknown config key 'n_confgs'" in capsys.readouterr().err
    bad.write_text("downstream: {trials: 3}\n")
    assert main(["hpi", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "unknown config key 'downstream.trials'" in capsys.readouterr().err


@pytest.mark.slow
def test_census_ablation_endpoints(data_dir):
    if not (data_dir / "adult.data").exists():
        pytest.skip(f"census needs adult.data in {data_dir} (set SIMSHAP_DATA)")
    from simshap.studies.hpo.study import LIGHTGBM_SPACE, load_study_data

    space = ConfigSpace.from_dict(LIGHTGBM_SPACE)
    xt, yt, xv, yv = load_study_data("census", str(data_dir), 0, 1000)
    obj = LightGBMObjective(space, xt, yt, xv, yv, metric="roc_auc")
    target = space.encode({"learning_rate": 0.05, "n_estimators": 50, "num_leaves": 8})
    game = AblationGame(space, obj, space.default(), target)
    v0, v1 = game.empty_and_full()
    assert float(v0) == pytest.approx(obj(space.default()[None])[0])
    assert float(v1) == pytest.approx(obj(target[None])[0])
    assert 0.8 < float(v0) < 1.0
