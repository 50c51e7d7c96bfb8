import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simshap.errors import UserError
from simshap.estimators import (
    appro_semivalue,
    exact_shapley,
    kernel_shap,
    permutation_shapley,
    sim_semivalue,
    sim_semivalue_target,
)
from simshap.games import BaselineGame, FunctionGame, MarginalGame, TableGame
from simshap.games.sampling import shapley_kernel_subset_prob, shapley_weight
from simshap.games.values import all_coalitions


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_game(d, b=2, c=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TableGame(torch.randn(b, 2**d, c, generator=g, dtype=torch.float64))


def linear_model(w):
    return lambda x: (x @ w).unsqueeze(-1)


# --------------------------------------------------------------------------- exact


def test_exact_linear_closed_form():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(7, dtype=torch.float64, generator=g)
    x = torch.randn(4, 7, dtype=torch.float64, generator=g)
    b = torch.randn(7, dtype=torch.float64, generator=g)
    res = exact_shapley(BaselineGame(linear_model(w), x, b))
    assert res.n_evals == 2**7 and res.std is None
    assert torch.allclose(res.values[..., 0], w * (x - b), atol=1e-12)


def test_exact_glove_game():
    # players 0, 1 hold left gloves, player 2 a right glove: v(S) = min(#left, #right)
    def glove(masks):
        left = masks[..., :2].sum(-1)
        right = masks[..., 2:].sum(-1)
        return torch.minimum(left, right).double()

    res = exact_shapley(FunctionGame(glove, num_players=3))
    assert torch.allclose(res.values[0, :, 0], torch.tensor([1 / 6, 1 / 6, 2 / 3]).double())


def test_exact_majority_game():
    # weighted voting [quota 3; weights 2, 1, 1]: known values 2/3, 1/6, 1/6
    weights = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)

    def vote(masks):
        return ((masks.double() * weights).sum(-1) >= 3).double()

    res = exact_shapley(FunctionGame(vote, num_players=3))
    assert torch.allclose(res.values[0, :, 0], torch.tensor([2 / 3, 1 / 6, 1 / 6]).double())


@pytest.fixture(scope="module")
def breast_cancer_logreg():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :10]  # 10 features: 2^10 coalitions keep shap's explainers quick
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return model, x


def test_exact_matches_shap_on_logistic_regression(breast_cancer_logreg):
    import shap

    from simshap.games import SklearnModel

    model, x = breast_cancer_logreg
    mean = x.mean(0)
    rows = x[:3]
    f = SklearnModel(model, dtype=torch.float64)
    ours = exact_shapley(BaselineGame(f, torch.tensor(rows), torch.tensor(mean))).values.numpy()
    background = mean[None]
    kernel = shap.KernelExplainer(model.predict_proba, background)
    theirs = np.asarray(kernel.shap_values(rows, nsamples=2**10, silent=True, l1_reg=False))
    theirs = theirs if theirs.shape == ours.shape else np.moveaxis(theirs, 0, -1)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    exact = shap.ExactExplainer(model.predict_proba, shap.maskers.Independent(background))
    np.testing.assert_allclose(ours, exact(rows).values, atol=1e-6)


def test_exact_refuses_too_many_players():
    game = FunctionGame(lambda m: m.double().sum(-1), num_players=21)
    with pytest.raises(ValueError, match="2\\^d coalitions.*kernel_shap"):
        exact_shapley(game)


def test_marginal_game_equals_mean_of_baseline_games():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 5, dtype=torch.float64, generator=g)

    def model(z):  # non-linear, so the marginal game is not a baseline game at the mean
        return torch.tanh(z @ w)

    x = torch.randn(2, 5, dtype=torch.float64, generator=g)
    bg = torch.randn(6, 5, dtype=torch.float64, generator=g)
    marg = exact_shapley(MarginalGame(model, x, bg, batch_size=7)).values
    each = torch.stack([exact_shapley(BaselineGame(model, x, r)).values for r in bg])
    assert torch.allclose(marg, each.mean(0), atol=1e-12)


# --------------------------------------------------------------------------- axioms


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_exact_axioms_on_random_games(d, seed):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(1, 2**d, 1, generator=g, dtype=torch.float64)
    allc = all_coalitions(d)
    # make player 0 a dummy: v(S ∪ {0}) = v(S) + 0.7
    base = table.clone()
    without0 = ~allc[:, 0]
    idx = torch.arange(2**d)
    table[0, idx[~without0], 0] = base[0, idx[without0], 0] + 0.7
    # make players d-2 and d-1 symmetric: v(S ∪ {a}) = v(S ∪ {b})
    a, b = d - 2, d - 1
    if a > 0:
        only_b = allc[:, b] & ~allc[:, a]
        table[0, idx[only_b] - (1 << b) + (1 << a), 0] = table[0, idx[only_b], 0]
    phi = exact_shapley(TableGame(table)).values[0, :, 0]
    assert phi.sum() == pytest.approx(float(table[0, -1, 0] - table[0, 0, 0]), abs=1e-10)
    assert phi[0] == pytest.approx(0.7, abs=1e-10)
    if a > 0:
        assert phi[a] == pytest.approx(float(phi[b]), abs=1e-10)


def test_exact_linearity():
    g1, g2 = random_game(5, seed=1), random_game(5, seed=2)
    combo = TableGame(2.0 * g1.table - 3.0 * g2.table)
    lhs = exact_shapley(combo).values
    rhs = 2.0 * exact_shapley(g1).values - 3.0 * exact_shapley(g2).values
    assert torch.allclose(lhs, rhs, atol=1e-12)


# --------------------------------------------------------------------------- unbiasedness


@pytest.mark.parametrize("d", [3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("mode", ["plain", "centered", "paired"])
def test_sim_semivalue_unbiased_by_enumeration(d, mode):
    game = random_game(d, b=2, c=3, seed=d)
    exact = exact_shapley(game).values
    v0, v1 = game.empty_and_full()
    allc = all_coalitions(d)[1:-1]  # non-empty proper subsets
    p = shapley_kernel_subset_prob(d, allc.sum(-1))
    n = allc.shape[0]
    if mode == "paired":
        masks = torch.stack([allc, ~allc], dim=1)  # (n, 2, d): each S with its complement
        values = game(masks.view(-1, d)).view(2, n, 2, -1)
        targets = sim_semivalue_target(
            masks.unsqueeze(0).expand(2, -1, -1, -1).reshape(2 * n, 2, d),
            values.reshape(2 * n, 2, -1),
            v0.repeat_interleave(n, 0),
            v1.repeat_interleave(n, 0),
        ).view(2, n, d, -1)
    else:
        values = game(allc)  # (B, n, C)
        b = values.shape[0]
        targets = sim_semivalue_target(
            allc.view(1, n, 1, d).expand(b, n, 1, d).reshape(b * n, 1, d),
            values.reshape(b * n, 1, -1),
            v0.repeat_interleave(n, 0),
            v1.repeat_interleave(n, 0),
            centered=(mode == "centered"),
        ).view(b, n, d, -1)
    expectation = torch.einsum("n,bndc->bdc", p, targets)
    assert torch.allclose(expectation, exact, atol=1e-10, rtol=0)
    # every single target is efficient: Σ_i target_i = v(N) - v(∅)
    assert torch.allclose(
        targets.sum(2), (v1 - v0).unsqueeze(1).expand_as(targets.sum(2)), atol=1e-10
    )


@pytest.mark.parametrize("d", [3, 5, 8])
def test_semivalue_mc_target_unbiased_by_enumeration(d):
    game = random_game(d, b=2, c=2, seed=10 + d)
    exact = exact_shapley(game).values
    allc = all_coalitions(d)
    values = game(allc)  # (B, 2^d, C)
    s = allc.sum(-1)
    for i in range(d):
        without = ~allc[:, i]
        idx = torch.arange(2**d)[without]
        w = shapley_weight(d, s[without])
        # per-sample target v(S ∪ {i}) - v(S), weighted by the sampling probability w(|S|)
        diff = values[:, idx + (1 << i)] - values[:, idx]
        assert torch.allclose(torch.einsum("n,bnc->bc", w, diff), exact[:, i], atol=1e-10)


def test_sim_semivalue_centering_reduces_variance():
    game = TableGame(5.0 + 0.1 * torch.randn(1, 2**10, 1, generator=gen(0), dtype=torch.float64))
    plain = sim_semivalue(game, 512, paired=False, centered=False, generator=gen(1))
    centered = sim_semivalue(game, 512, paired=False, centered=True, generator=gen(1))
    assert centered.std.mean() < 0.2 * plain.std.mean()


# --------------------------------------------------------------------------- KernelSHAP


@settings(max_examples=15, deadline=None)
@given(d=st.integers(3, 9), n=st.integers(1, 300), paired=st.booleans(), seed=st.integers(0, 99))
def test_kernel_shap_is_exactly_efficient(d, n, paired, seed):
    game = random_game(d, seed=seed)
    res = kernel_shap(game, budget=n + 2, paired=paired, generator=gen(seed))
    v0, v1 = game.empty_and_full()
    assert torch.allclose(res.values.sum(1), v1 - v0, atol=1e-9)


def test_kernel_shap_full_budget_is_exact():
    game = random_game(8, seed=3)
    res = kernel_shap(game, budget=2**8)
    assert res.n_evals == 2**8
    assert torch.allclose(res.values, exact_shapley(game).values, atol=1e-10)


def test_kernel_shap_default_budget_matches_shap_and_enumerates():
    from simshap.estimators.kernel import kernel_shap_budget_plan

    sizes, left = kernel_shap_budget_plan(12, 2 * 12 + 2048)
    assert sizes[:2] == [1, 2] and sizes[-2:] == [10, 11]
    assert left + sum(math.comb(12, s) for s in sizes) == 2 * 12 + 2048
    game = random_game(12, b=1, c=1, seed=4)
    res = kernel_shap(game, generator=gen(0))
    assert res.n_evals == 2 * 12 + 2048 + 2


@pytest.mark.parametrize("d", [10, 12, 14])
def test_kernel_shap_threshold_within_three_std(d):
    # a smooth non-quadratic game like a model's, on two instances and outputs (paired
    # KernelSHAP is exact on quadratic games, which would make the check vacuous)
    g = torch.Generator().manual_seed(d)
    w = torch.randn(2, d, 2, generator=g, dtype=torch.float64)
    inter = 0.3 * torch.randn(2, d, d, generator=g, dtype=torch.float64)

    def fn(masks):
        z = masks.double()
        pair = torch.einsum("bmi,bij,bmj->bm", z, inter, z).unsqueeze(-1)
        return torch.sigmoid(torch.einsum("bmd,bdc->bmc", z, w) + pair)

    game = FunctionGame(fn, num_players=d, num_instances=2)
    exact = exact_shapley(game).values
    spread = exact.amax((1, 2)) - exact.amin((1, 2))
    z = []
    for seed in range(4):
        res = kernel_shap(game, threshold=0.01, generator=gen(seed))
        assert res.std is not None and res.n_evals > 2
        assert (res.std.amax((1, 2)) / spread < 0.0105).all()  # converged as reported
        z.append(((res.values - exact).abs() / res.std).flatten())
    z = torch.cat(z)
    # honest standard errors: (almost) every entry within 3 reported std, none far outside
    assert (z < 3).double().mean() >= 0.97, z.max()
    assert z.max() < 5 and 0.5 < z.pow(2).mean().sqrt() < 1.5


# --------------------------------------------------------------------------- convergence


def _rmse(estimator, game, exact, budget, **kw):
    res = estimator(game, budget=budget, generator=gen(budget), **kw)
    assert res.n_evals <= budget
    return float(((res.values - exact) ** 2).mean().sqrt())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,estimator,kw",
    [
        ("sim_semivalue", sim_semivalue, {"paired": False}),
        ("sim_semivalue_paired", sim_semivalue, {"paired": True}),
        ("appro_semivalue", appro_semivalue, {}),
        ("permutation", permutation_shapley, {"antithetic": False}),
        ("permutation_anti", permutation_shapley, {"antithetic": True}),
        ("kernel", kernel_shap, {"paired": False, "enumerate_sizes": False}),
        ("kernel_paired", kernel_shap, {"paired": True, "enumerate_sizes": False}),
    ],
)
def test_error_falls_like_inverse_sqrt_budget(name, estimator, kw):
    d, reps = 12, 48
    # 48 copies of one 12-player game: each instance draws its own samples (independent runs)
    table = torch.randn(1, 2**d, 1, generator=gen(99), dtype=torch.float64)
    game = TableGame(table.expand(reps, -1, -1).contiguous())
    exact = exact_shapley(TableGame(table)).values
    budgets = [256, 512, 1024, 2048, 4096]
    errors = [_rmse(estimator, game, exact, e, **kw) for e in budgets]
    slope = np.polyfit(np.log(budgets), np.log(errors), 1)[0]
    assert -0.6 <= slope <= -0.4, (name, slope, errors)


# --------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize(
    "call",
    [
        lambda g, r: kernel_shap(g, budget=102, generator=r),
        lambda g, r: kernel_shap(g, budget=102, sampling="leverage", generator=r),
        lambda g, r: kernel_shap(g, threshold=0.05, generator=r),
        lambda g, r: permutation_shapley(g, budget=6 * 6 + 2, generator=r),
        lambda g, r: appro_semivalue(g, budget=5 * 14 + 2, generator=r),
        lambda g, r: sim_semivalue(g, budget=66, generator=r),
    ],
)
def test_same_seed_same_output(call):
    game = random_game(7, seed=5)
    a, b = call(game, gen(11)), call(game, gen(11))
    c = call(game, gen(12))
    assert torch.equal(a.values, b.values)
    assert not torch.equal(a.values, c.values)


def test_estimates_are_close_at_large_budget():
    game = random_game(6, b=2, c=2, seed=6)
    exact = exact_shapley(game).values
    for res in [
        permutation_shapley(game, budget=4000 * 5 + 2, generator=gen(1)),
        appro_semivalue(game, budget=4000 * 12 + 2, generator=gen(2)),
        sim_semivalue(game, budget=40002, generator=gen(3)),
    ]:
        assert ((res.values - exact).abs() < 5 * res.std + 1e-9).all()


# --------------------------------------------------------------------------- bad input


def test_bad_masks_give_clear_errors():
    game = random_game(4, b=2)
    with pytest.raises(TypeError, match="torch.bool"):
        game(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"\(B, M, d\) = \(2, M, 4\)"):
        game(torch.zeros(3, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        game(torch.zeros(2, 3, 5, dtype=torch.bool))


def test_nan_input_is_refused():
    x = torch.tensor([[1.0, float("nan"), 2.0]])
    with pytest.raises(ValueError, match="NaN"):
        BaselineGame(lambda z: z.sum(-1), x, torch.zeros(3))


def test_wrong_feature_count_is_refused():
    with pytest.raises(ValueError, match="baseline must have shape"):
        BaselineGame(lambda z: z.sum(-1), torch.zeros(2, 3), torch.zeros(4))


@pytest.mark.parametrize(
    "call",
    [
        lambda g: kernel_shap(g, budget=2),
        lambda g: kernel_shap(g, budget=100.5),
        lambda g: permutation_shapley(g, budget=4),
        lambda g: appro_semivalue(g, budget=-1),
        lambda g: sim_semivalue(g, budget=0),
        lambda g: sim_semivalue(g, budget=True),
        lambda g: permutation_shapley(g),
    ],
)
def test_malformed_budget_is_refused(call):
    with pytest.raises(UserError, match="budget|positive integer"):
        call(random_game(4))


def test_model_output_shape_is_checked():
    game_ok = BaselineGame(lambda z: z.sum(-1), torch.zeros(2, 3), torch.zeros(3))
    assert game_ok(torch.ones(4, 3, dtype=torch.bool)).shape == (2, 4, 1)
    game = BaselineGame(lambda z: z.unsqueeze(-1), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="shape \\(N, C\\)"):
        game(torch.ones(4, 3, dtype=torch.bool))


def test_kernel_shap_threshold_stops_evaluating_converged_instances():
    # instance 0 converges fast (additive game: exact after few rounds), instance 1 is noisy
    calls = []

    class CountingTable(TableGame):
        def value(self, masks):
            calls.append(masks.shape[0])
            return super().value(masks)

        def select(self, index):
            return CountingTable(self.table[index])

    d = 8
    allc = all_coalitions(d).double()
    additive = allc @ torch.arange(1.0, d + 1, dtype=torch.float64)
    noisy = torch.randn(2**d, generator=gen(3), dtype=torch.float64)
    game = CountingTable(torch.stack([additive, noisy]).unsqueeze(-1))
    res = kernel_shap(game, threshold=0.01, generator=gen(0), max_evals=200_000)
    assert 1 in calls  # later rounds evaluated only the instance still sampling
    exact = exact_shapley(TableGame(game.table)).values
    assert torch.allclose(res.values[0], exact[0], atol=1e-9)
    assert res.values.sum(1).sub(game.table[:, -1] - game.table[:, 0]).abs().max() < 1e-9


def test_kernel_shap_with_fewer_samples_than_players_stays_finite_and_efficient():
    game = random_game(10, seed=8)
    res = kernel_shap(game, budget=5, enumerate_sizes=False, generator=gen(1))
    v0, v1 = game.empty_and_full()
    assert torch.isfinite(res.values).all()
    assert torch.allclose(res.values.sum(1), v1 - v0, atol=1e-9)


@pytest.mark.parametrize("d", [3, 5, 7])
def test_residual_target_is_unbiased_for_any_control_variate(d):
    from simshap.amortized.simshap import residual_target

    game = random_game(d, b=2, c=2, seed=20 + d)
    exact = exact_shapley(game).values
    v0, v1 = game.empty_and_full()
    baseline = torch.randn(2, d, 2, generator=gen(d), dtype=torch.float64)
    allc = all_coalitions(d)[1:-1]
    n = allc.shape[0]
    p = shapley_kernel_subset_prob(d, allc.sum(-1))
    values = game(allc)  # (B, n, C)
    targets = residual_target(
        allc.view(1, n, 1, d).expand(2, n, 1, d).reshape(2 * n, 1, d),
        values.reshape(2 * n, 1, -1),
        v0.repeat_interleave(n, 0),
        v1.repeat_interleave(n, 0),
        baseline.repeat_interleave(n, 0),
    ).view(2, n, d, -1)
    assert torch.allclose(torch.einsum("n,bndc->bdc", p, targets), exact, atol=1e-10)
    # on an additive game, the exact control variate makes every single target exact
    phi = torch.randn(2, d, 2, generator=gen(d + 1), dtype=torch.float64)
    additive = TableGame(
        v0.unsqueeze(1) + torch.einsum("nd,bdc->bnc", all_coalitions(d).double(), phi)
    )
    a0, a1 = additive.empty_and_full()
    single = residual_target(
        allc.view(1, n, 1, d).expand(2, n, 1, d).reshape(2 * n, 1, d),
        additive(allc).reshape(2 * n, 1, -1),
        a0.repeat_interleave(n, 0),
        a1.repeat_interleave(n, 0),
        phi.repeat_interleave(n, 0),
    ).view(2, n, d, -1)
    assert torch.allclose(single, phi.unsqueeze(1).expand_as(single), atol=1e-10)


@pytest.mark.parametrize("budget", [4, 8, 12, 16])
def test_kernel_shap_below_d_coalitions_stays_bounded_and_efficient(budget):
    """Fewer sampled coalitions than players: the minimum-norm solution, not an explosion."""
    n = 8
    m = all_coalitions(n).double()
    g = torch.Generator().manual_seed(budget)
    values = m @ torch.randn(n, generator=g, dtype=torch.float64) + torch.sin(
        m @ torch.randn(n, generator=g, dtype=torch.float64)
    )
    game = TableGame(values)
    exact = exact_shapley(game).values
    for seed in range(4):
        est = kernel_shap(game, budget=budget, generator=torch.Generator().manual_seed(seed))
        assert torch.isfinite(est.values).all()
        assert float(est.values.norm()) < 10 * float(exact.norm())
        torch.testing.assert_close(est.values.sum(1), exact.sum(1), atol=1e-9, rtol=0)
