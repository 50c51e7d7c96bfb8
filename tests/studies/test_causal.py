"""The causal explanation-vs-prediction study: estimands, bucketing, zoo storage, configs, CLI."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from simshap.errors import UserError
from simshap.studies.causal.chunks import load_zoo, train_zoo
from simshap.studies.causal.data import load_study_data
from simshap.studies.causal.effects import (
    DEFAULT_BUCKETS,
    PAPER_BUCKETS,
    accuracy_buckets,
    analyze,
    correlations,
    kernel_ite,
    mean_difference_ite,
    mmd2,
    rbf_gram,
    treatment_design,
)
from simshap.studies.causal.study import validate_config
from simshap.studies.causal.zoo import GRID, SmallCNN, check_grid


def _factorial_codes(sizes: list[int], reps: int = 1) -> torch.Tensor:
    rows = list(itertools.product(*[range(k) for k in sizes])) * reps
    return torch.tensor(rows, dtype=torch.long)


# --------------------------------------------------------------------------- estimands


def test_identity_correlation_is_one() -> None:
    gen = torch.Generator().manual_seed(0)
    n, b = 40, 12
    probs = torch.softmax(torch.randn(n, b, 10, generator=gen) * 2, -1)
    codes = torch.randint(3, (n, 2), generator=gen)
    noise = torch.rand(n, b, 8, 8, generator=gen)
    expl = {
        "total": {"identity": probs, "noise": noise},
        "direct": {"identity": probs.flip(0), "noise": noise},
    }
    res = analyze(
        probs,
        expl,
        codes,
        [3, 3],
        torch.rand(n, generator=gen),
        [[0, 100], [0, 50], [50, 100]],
        n_bootstrap=20,
        seed=1,
    )
    for bucket in res["buckets"]:
        ident = bucket["corr"]["identity"]
        assert ident["total_pearson"]["value"] == pytest.approx(1.0, abs=1e-9)
        assert ident["total_spearman"]["value"] == pytest.approx(1.0, abs=1e-9)
        assert ident["total_pearson"]["ci"] == pytest.approx([1.0, 1.0], abs=1e-9)
        # unrelated noise maps do not track the predictions
        assert abs(bucket["corr"]["noise"]["total_pearson"]["value"]) < 0.9


def test_planted_zoo_recovers_known_effects() -> None:
    # h0 (2 values) shifts Y by delta and E by eps; h1 (3 values) shifts only Y by a per-value
    # offset that E_{h∖i} must average out; h2 (2 values) does nothing.
    sizes = [2, 3, 2]
    codes = _factorial_codes(sizes, reps=2)
    b = 5
    gen = torch.Generator().manual_seed(3)
    base_y, base_e = torch.randn(b, 4, generator=gen), torch.randn(b, 6, generator=gen)
    delta, eps = torch.randn(b, 4, generator=gen), torch.randn(b, 6, generator=gen)
    offsets = torch.randn(3, b, 4, generator=gen)
    y = base_y + delta * (codes[:, 0] == 1).double()[:, None, None] + offsets[codes[:, 1]]
    e = base_e + eps * (codes[:, 0] == 1).double()[:, None, None]
    a, labels = treatment_design(codes, sizes)
    assert labels == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    ite_y, ite_e = mean_difference_ite(y, a), mean_difference_ite(e, a)
    torch.testing.assert_close(ite_y[1], delta.double())
    torch.testing.assert_close(ite_y[0], -delta.double())
    torch.testing.assert_close(ite_e[1], eps.double())
    # h1 = v against the other values, each weighted equally (E_{m≠n})
    for v in range(3):
        others = [m for m in range(3) if m != v]
        want = offsets[v] - offsets[others].mean(0)
        torch.testing.assert_close(ite_y[2 + v], want.double())
        assert ite_e[2 + v].abs().max() < 1e-12
    assert ite_y[5:].abs().max() < 1e-12 and ite_e[5:].abs().max() < 1e-12
    # kernelized: E's treated and control groups are point masses, so with a fixed bandwidth
    # MMD² = 2 − 2 exp(−γ ‖eps‖²) exactly
    gamma = torch.full((b,), 0.1, dtype=torch.float64)
    k, _ = rbf_gram(e, gamma)
    kite = kernel_ite(k, a)
    want = 2 - 2 * torch.exp(-0.1 * (eps.double() ** 2).sum(-1))
    torch.testing.assert_close(kite[1], want)
    torch.testing.assert_close(kite[0], want)
    assert kite[2:].abs().max() < 1e-12


def test_linear_kernel_mmd_is_squared_mean_difference() -> None:
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(7, 3, generator=gen), torch.randn(9, 3, generator=gen) + 1
    z = torch.cat([x, y]).double()
    a = torch.cat(
        [
            torch.full((7,), 1 / 7, dtype=torch.float64),
            torch.full((9,), -1 / 9, dtype=torch.float64),
        ]
    )[None]
    lin = (z @ z.T)[None]  # linear kernel on one "instance"
    want = ((x.double().mean(0) - y.double().mean(0)) ** 2).sum()
    assert float(kernel_ite(lin, a)[0, 0]) == pytest.approx(float(want), rel=1e-10)


def test_mmd2_zero_for_identical_sets_positive_otherwise() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 5, generator=gen)
    assert mmd2(x, x) == pytest.approx(0.0, abs=1e-12)
    assert mmd2(x, x.flip(0), gamma=0.3) == pytest.approx(0.0, abs=1e-12)
    assert mmd2(x, x + 2.0) > 0.1


def test_correlations_match_definitions() -> None:
    u = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    p, s = correlations(u, u**3)
    assert s == pytest.approx(1.0) and 0.9 < p < 1.0
    p, s = correlations(u, -u)
    assert p == pytest.approx(-1.0) and s == pytest.approx(-1.0)
    assert all(math.isnan(c) for c in correlations(u, torch.ones(5)))


# --------------------------------------------------------------------------- bucketing


def test_buckets_partition_by_accuracy_and_never_mix() -> None:
    gen = torch.Generator().manual_seed(2)
    acc = torch.rand(53, generator=gen)
    bounds = [[0, 20], [20, 40], [40, 60], [60, 80], [80, 100]]
    members = accuracy_buckets(acc, bounds)
    allm = torch.cat(members)
    assert sorted(allm.tolist()) == list(range(53))  # a partition
    for lower, upper in itertools.pairwise(members):
        assert acc[lower].max() <= acc[upper].min()
    top = accuracy_buckets(acc, [[90, 100]])[0]
    assert set(top.tolist()) <= set(members[-1].tolist())
    assert acc[top].min() >= acc[members[-1]].median()


def test_bucket_effects_ignore_models_outside_the_bucket() -> None:
    gen = torch.Generator().manual_seed(4)
    n, b = 30, 6
    probs = torch.softmax(torch.randn(n, b, 10, generator=gen), -1)
    maps = torch.rand(n, b, 4, 4, generator=gen)
    codes = torch.randint(2, (n, 2), generator=gen)
    acc = torch.rand(n, generator=gen)
    bounds = [[0, 50], [50, 100]]
    low = accuracy_buckets(acc, bounds)[0]
    outside = torch.ones(n, dtype=torch.bool)
    outside[low] = False
    res1 = analyze(
        probs,
        {"total": {"m": maps}, "direct": {"m": maps}},
        codes,
        [2, 2],
        acc,
        bounds,
        n_bootstrap=0,
    )
    probs2, maps2 = probs.clone(), maps.clone()
    probs2[outside] = torch.softmax(torch.randn(int(outside.sum()), b, 10, generator=gen), -1)
    maps2[outside] = 0.0
    res2 = analyze(
        probs2,
        {"total": {"m": maps2}, "direct": {"m": maps2}},
        codes,
        [2, 2],
        acc,
        bounds,
        n_bootstrap=0,
    )
    first1, first2 = res1["buckets"][0], res2["buckets"][0]
    assert first1["members"] == first2["members"] == low.tolist()
    for key in first1["ite"]:
        torch.testing.assert_close(first1["ite"][key], first2["ite"][key])
    assert not torch.allclose(res1["buckets"][1]["ite"]["Y"], res2["buckets"][1]["ite"]["Y"])


def test_buckets_follow_the_papers_percentiles() -> None:
    # Karimi et al., Sec. 3.2 / Table 2: 0-20, 20-40, 40-60, 60-80, 80-90, 90-95, 95-99, 99-100
    assert PAPER_BUCKETS == (
        (0, 20),
        (20, 40),
        (40, 60),
        (60, 80),
        (80, 90),
        (90, 95),
        (95, 99),
        (99, 100),
    )
    assert DEFAULT_BUCKETS == ((0, 100), *PAPER_BUCKETS)
    gen = torch.Generator().manual_seed(7)
    acc = torch.rand(1000, generator=gen)
    members = accuracy_buckets(acc, PAPER_BUCKETS)
    assert [len(m) for m in members] == [200, 200, 200, 200, 100, 50, 40, 10]
    assert sorted(torch.cat(members).tolist()) == list(range(1000))
    ranks = torch.argsort(torch.argsort(acc))  # 0 = least accurate
    for (lo, hi), m in zip(PAPER_BUCKETS, members, strict=True):
        assert ranks[m].min() == lo * 10 and ranks[m].max() == hi * 10 - 1
    top = members[-1]
    assert set(top.tolist()) == set(torch.topk(acc, 10).indices.tolist())


def test_empty_bucket_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="holds no models.*train more models"):
        accuracy_buckets(torch.rand(5), [[0, 5]])
    with pytest.raises(UserError, match="percentiles"):
        accuracy_buckets(torch.rand(5), [[50, 20]])


def test_bucket_without_contrast_is_a_clear_error() -> None:
    probs = torch.softmax(torch.randn(4, 3, 10), -1)
    codes = torch.zeros(4, 1, dtype=torch.long)  # every model has the same value
    with pytest.raises(UserError, match="no hyperparameter value with both treated and control"):
        analyze(
            probs, {"total": {}, "direct": {}}, codes, [2], torch.rand(4), [[0, 100]], n_bootstrap=0
        )


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("raw", "pattern"),
    [
        ({"grid": {"optimizer": []}}, "grid.optimizer is empty"),
        ({"grid": {"momentum": [0.9]}}, "unknown hyperparameter 'momentum'"),
        ({"grid": {"activation": ["swish"]}}, "unknown values"),
        ({"grid": {"dropout": [0.2, 1.5]}}, "must lie in"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"colour": "red"}, "unknown config key 'colour'"),
        ({"explanations": {"methods": ["lime"]}}, "explanations.methods"),
        ({"analysis": {"buckets": []}}, "analysis.buckets is empty"),
        ({"dataset": "cifar10"}, "not supported"),
        ({"n_models": 26, "chunk_size": 25}, "last chunk of one model"),
        ({"model_seeds": "random"}, "model_seeds must be one of shared, per_model"),
        ({"val_curve": True}, "val_curve needs a validation split"),
        ({"n_val": -1}, "n_val must be a non-negative integer"),
        ({"workers": 0}, "workers must be a positive integer"),
    ],
)
def test_bad_configs_get_clear_errors(raw: dict, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern):
        validate_config(raw)


def test_default_grid_is_the_papers() -> None:
    grid = check_grid({})
    assert [len(v) for v in grid.values()] == [3, 3, 4, 4, 2, 3, 4, 4, 4]
    assert grid == GRID
    assert sum(p.numel() for p in SmallCNN().parameters()) == 4970


def test_missing_fashion_mnist_is_a_user_error(tmp_path, monkeypatch) -> None:
    import simshap.data.images as images

    monkeypatch.setattr(images, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "none")
    with pytest.raises(UserError, match="dataset-fashion-mnist"):
        load_study_data("fashion_mnist", data_dir=str(tmp_path))


def test_fashion_mnist_subset_when_installed() -> None:
    try:
        data = load_study_data("fashion_mnist", n_train=300, n_test=200, n_explain=100)
    except UserError:
        pytest.skip("Fashion-MNIST idx files not installed (apt-get install dataset-fashion-mnist)")
    assert data.x_train.shape == (300, 1, 28, 28) and data.x_explain.shape == (100, 1, 28, 28)
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0


# --------------------------------------------------------------------------- the zoo


def _tiny_cfg(n_models: int = 4, **extra: object) -> dict:
    cfg = validate_config(
        {
            "dataset": "digits",
            "n_train": 120,
            "n_test": 100,
            "n_explain": 8,
            "n_models": n_models,
            "chunk_size": 2,
            "epochs": 1,
            "stride": 1,
            **extra,
        }
    )
    return cfg


@pytest.mark.timeout(120)
def test_tiny_zoo_trains_stores_and_resumes(tmp_path) -> None:
    cfg = _tiny_cfg()
    data = load_study_data("digits", 120, 100, 8)
    zoo_dir = tmp_path / "zoo"
    assert train_zoo(cfg, data, zoo_dir, log=lambda s: None) == 4
    first = load_zoo(zoo_dir, cfg["grid"], 1)
    assert train_zoo(cfg, data, zoo_dir, log=lambda s: None) == 0  # nothing new
    again = load_zoo(zoo_dir, cfg["grid"], 1)
    assert len(first) == len(again) == 4
    for key in first.params:
        assert torch.equal(first.params[key], again.params[key])
    # chunks hold tensors and plain values only: they load without unpickling objects
    part = torch.load(zoo_dir / "chunk_0000.pt", weights_only=True)
    assert part["index"] == [0, 1] and part["params"]["conv1.weight"].shape == (2, 16, 1, 3, 3)
    # a lost chunk is retrained identically (per-model seeds: deterministic potential outcomes)
    (zoo_dir / "chunk_0001.pt").unlink()
    assert train_zoo(cfg, data, zoo_dir, log=lambda s: None) == 2
    redone = load_zoo(zoo_dir, cfg["grid"], 1)
    for key in first.params:
        assert torch.equal(first.params[key], redone.params[key])
    assert torch.equal(first.accuracy, redone.accuracy)
    # a model loads as a SmallCNN that reproduces the stored accuracy
    net = redone.model(3)
    with torch.no_grad():
        acc = float((net(data.x_test).argmax(-1) == data.y_test).double().mean())
    assert acc == pytest.approx(float(redone.accuracy[3]))
    # growing the zoo keeps the first models and trains only the new ones
    assert train_zoo(_tiny_cfg(6), data, zoo_dir, log=lambda s: None) == 2
    other = dict(cfg, epochs=2)
    with pytest.raises(UserError, match="another config"):
        train_zoo(other, data, zoo_dir, log=lambda s: None)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_worker_processes_train_the_same_zoo(tmp_path) -> None:
    data = load_study_data("digits", 120, 100, 8)
    serial = _tiny_cfg()
    train_zoo(serial, data, tmp_path / "serial", log=lambda s: None)
    parallel = _tiny_cfg(workers=2)
    assert train_zoo(parallel, None, tmp_path / "parallel", log=lambda s: None) == 4
    a = load_zoo(tmp_path / "serial", serial["grid"], 1)
    b = load_zoo(tmp_path / "parallel", parallel["grid"], 1)
    assert torch.equal(a.accuracy, b.accuracy)
    for key in a.params:
        assert torch.equal(a.params[key], b.params[key])


def test_time_budget_stops_between_chunks(tmp_path) -> None:
    cfg = _tiny_cfg()
    data = load_study_data("digits", 120, 100, 8)
    logs: list[str] = []
    assert train_zoo(cfg, data, tmp_path / "zoo", max_seconds=0, log=logs.append) == 0
    assert "rerun to resume" in logs[-1]
    with pytest.raises(UserError, match="no trained models"):
        load_zoo(tmp_path / "zoo", cfg["grid"], 1)


@pytest.mark.slow
def test_cli_runs_and_resumes(tmp_path, capsys) -> None:
    from simshap.cli import main

    config = tmp_path / "tiny.yaml"
    config.write_text(
        "dataset: digits\nn_train: 150\nn_test: 100\nn_explain: 10\nn_models: 8\nchunk_size: 4\n"
        "epochs: 1\nstride: 1\nexplanations: {shapley_samples: 30, smoothgrad_samples: 2, "
        "ig_steps: 4}\nanalysis: {buckets: [[0, 100], [0, 50], [50, 100]], n_bootstrap: 5}\n"
    )
    out = tmp_path / "run"
    assert main(["study", "causal", str(config), "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_models_trained"] == res["n_models_trained_this_call"] == 8
    for bucket in res["buckets"]:
        assert bucket["corr"]["identity"]["total_pearson"]["value"] == pytest.approx(1.0)
    for fig in (
        "fig2_optimizer_ite.png",
        "fig3_ite_scatter.png",
        "fig3_correlations.png",
        "fig4_direct_total.png",
    ):
        assert (out / fig).stat().st_size > 1000
    stamp = (out / "zoo" / "chunk_0000.pt").stat().st_mtime_ns
    assert main(["study", "causal", str(config), "--out", str(out)]) == 0  # resume
    assert (out / "zoo" / "chunk_0000.pt").stat().st_mtime_ns == stamp
    resumed = json.loads((out / "results.json").read_text())
    assert (resumed["n_models_trained"], resumed["n_models_trained_this_call"]) == (8, 0)
    other = tmp_path / "other"
    other.mkdir()
    capsys.readouterr()
    assert main(["study", "causal", str(config), "--out", str(other)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    config.write_text("dataset: digits\ngrid: {optimizer: []}\n")
    assert main(["study", "causal", str(config), "--out", str(tmp_path / "x")]) == 2
    assert "grid.optimizer is empty" in capsys.readouterr().err
