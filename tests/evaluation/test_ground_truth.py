"""Ground truth (issue 11 item 1) and Leverage SHAP sampling (issue 11 item 4)."""

import math

import pytest
import torch

from simshap.errors import UserError
from simshap.estimators import convergence_ratio, exact_shapley, kernel_shap
from simshap.estimators.leverage import leverage_allocation, leverage_designs
from simshap.estimators.regression import gram
from simshap.estimators.tree_adjusted import tree_adjusted_values
from simshap.evaluation import ground_truth
from simshap.games import FunctionGame, TableGame
from simshap.games.sampling import shapley_kernel_subset_prob
from simshap.games.values import all_coalitions


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def binary_probability_game(d=10, b=2, seed=0):
    """p(S) and 1 - p(S): class 1's values are minus class 0's, all of one sign."""
    g = gen(seed)
    w = 0.3 + 0.05 * torch.rand(b, d, generator=g, dtype=torch.float64)
    inter = 0.05 * torch.randn(b, d, d, generator=g, dtype=torch.float64)

    def fn(masks):
        z = masks.double()
        logit = torch.einsum("bmd,bd->bm", z, w) + torch.einsum("bmi,bij,bmj->bm", z, inter, z)
        p = torch.sigmoid(logit - 1.5)
        return torch.stack([p, 1 - p], -1)

    return FunctionGame(fn, num_players=d, num_instances=b)


def pooled_ratio(values, std):
    spread = values.amax((1, 2)) - values.amin((1, 2))
    return std.amax((1, 2)) / spread


def test_per_class_and_pooled_criteria_disagree_on_a_binary_game():
    values = torch.tensor([[[0.50, -0.50], [0.60, -0.60], [0.55, -0.55]]])  # (1, 3, 2)
    std = torch.full_like(values, 0.004)
    # per class: 0.004 / 0.1 = 0.04; pooled: 0.004 / 1.2 = 0.0033
    assert torch.allclose(convergence_ratio(values, std), torch.tensor([0.04]))
    assert float(pooled_ratio(values, std)[0]) < 0.01 < float(convergence_ratio(values, std)[0])


def test_kernel_shap_threshold_uses_the_per_class_criterion():
    game = binary_probability_game()
    res = kernel_shap(game, threshold=0.02, generator=gen(1))
    per_class = convergence_ratio(res.values, res.std)
    assert (per_class < 0.02).all(), per_class  # the pooled test would have stopped far earlier
    assert (pooled_ratio(res.values, res.std) < 0.02 / 3).all()
    exact = exact_shapley(game).values
    assert ((res.values - exact).abs() < 5 * res.std + 1e-12).all()


def test_ground_truth_auto_is_exact_up_to_16_players():
    table = torch.randn(2, 2**6, 2, generator=gen(2), dtype=torch.float64)
    gt = ground_truth(TableGame(table))
    assert gt.method == "exact" and gt.std is None and gt.n_evals == 2**6
    assert torch.allclose(gt.values, exact_shapley(TableGame(table)).values)
    assert torch.equal(gt.base_values, table[:, 0])
    with pytest.raises(UserError, match="method"):
        ground_truth(TableGame(table), method="shap")
    with pytest.raises(UserError, match="kernel_shap"):
        ground_truth(FunctionGame(lambda m: m.sum(-1).double(), 24), method="exact")


def test_ground_truth_auto_converges_kernel_shap_above_16_players():
    d = 17
    w = torch.linspace(0.1, 1.0, d, dtype=torch.float64)

    def fn(masks):
        z = masks.double()
        return torch.tanh(z @ w / 3).unsqueeze(-1) + 0.1 * (z[..., 0] * z[..., 1]).unsqueeze(-1)

    gt = ground_truth(FunctionGame(fn, d), threshold=0.05)
    assert gt.method == "kernel_shap" and gt.std is not None
    assert (convergence_ratio(gt.values, gt.std) < 0.05).all()


# --------------------------------------------------------------------------- Leverage SHAP


def test_leverage_allocation_is_uniform_over_sizes_and_enumerates_small_sizes():
    d = 20
    alloc = leverage_allocation(d, 1000)
    assert sum(k for _, k, _, _ in alloc) == 1000
    per_size = {}
    for s, k, cap, _ in alloc:
        assert k <= cap
        per_size[s] = k / (2 if 2 * s < d else 1)
    enumerated = [s for s, k, cap, _ in alloc if k == cap]
    assert 1 in enumerated  # 20 pairs of size 1 are cheaper than the uniform share
    shares = [v for s, v in per_size.items() if s not in enumerated]
    assert max(shares) - min(shares) <= 1  # the rest: equal share per size
    masses = sum(m for *_, m in leverage_allocation(d, 10**9))
    assert math.isclose(masses, 1.0)


def test_leverage_draws_distinct_complementary_pairs():
    d, bsz = 12, 3
    for masks, _w in leverage_designs(d, 500, bsz, gen(0), torch.device("cpu")):
        if masks.ndim == 2:
            continue
        assert torch.equal(masks[:, 1::2], ~masks[:, 0::2])
        bits = 1 << torch.arange(d)
        codes = (masks.long() * bits).sum(-1)
        for row in codes:
            assert row.unique().numel() == row.numel()  # without replacement


def test_leverage_design_is_unbiased_for_the_kernel_objective():
    # E[Σ w z zᵀ] equals the Shapley-kernel Gram matrix Σ_S p(S) z zᵀ (weights reweight the law)
    d, budget, reps = 8, 60, 4000
    allc = all_coalitions(d)[1:-1]
    p = shapley_kernel_subset_prob(d, allc.sum(-1))
    truth = gram(allc, p)
    total = torch.zeros(d, d, dtype=torch.float64)
    for masks, w in leverage_designs(d, budget - 2, reps, gen(5), torch.device("cpu")):
        a = gram(masks, w)
        total += a.mean(0) if a.ndim == 3 else a
    assert torch.allclose(total, truth, atol=3e-3), (total - truth).abs().max()


@pytest.mark.parametrize("sampling", ["kernel", "leverage"])
def test_kernel_shap_error_shrinks_with_budget(sampling):
    d = 10
    table = torch.randn(1, 2**d, 1, generator=gen(7), dtype=torch.float64)
    game = TableGame(table.expand(32, -1, -1).contiguous())  # 32 independent runs
    exact = exact_shapley(TableGame(table)).values
    errs = []
    for budget in (64, 256, 1000):
        res = kernel_shap(game, budget=budget, sampling=sampling, generator=gen(budget))
        assert res.n_evals <= budget
        errs.append(float((res.values - exact).pow(2).mean().sqrt()))
    assert errs[0] > errs[1] > errs[2], errs


# --------------------------------------------------------------------------- regression adjustment


def _and_game(d=8, b=3):
    """Higher-order structure (3- and 4-way ANDs) that paired KernelSHAP only samples."""

    def fn(masks):
        z = masks.double()
        return (z[..., :3].prod(-1) + 0.5 * z[..., 3:7].prod(-1) + 0.1 * z[..., 7]).unsqueeze(-1)

    return FunctionGame(fn, num_players=d, num_instances=b)


def test_tree_adjusted_kernel_shap_is_efficient_counts_and_converges():
    # its accuracy gain is measured on real models in benchmarks/estimators.py; here: the
    # properties that must hold on any game
    game = _and_game()
    exact = exact_shapley(game).values
    v0, v1 = game.empty_and_full()
    errors = {}
    for budget in (60, 200):
        runs = [kernel_shap(game, budget=budget, adjust="tree", generator=gen(s)) for s in range(3)]
        for r in runs:
            assert r.method == "kernel_shap_tree_adjusted" and r.n_evals == budget
            assert torch.allclose(r.values.sum(1), v1 - v0, atol=1e-9)  # still efficient
        errors[budget] = sum(float((r.values - exact).norm()) for r in runs) / 3
    assert errors[200] < 0.7 * errors[60], errors
    full = kernel_shap(game, budget=2**8, adjust="tree")  # a full budget stays exact
    assert torch.allclose(full.values, exact, atol=1e-10)
    with pytest.raises(UserError, match="threshold"):
        kernel_shap(game, threshold=0.1, adjust="tree")


def test_tree_adjustment_beats_plain_kernel_shap_on_higher_order_structure():
    # the 3- and 4-way ANDs are what paired KernelSHAP only samples and the trees can model
    game = _and_game(d=10, b=4)
    exact = exact_shapley(game).values

    def mean_error(**opts):
        runs = [
            kernel_shap(game, budget=120, sampling="leverage", generator=gen(s), **opts)
            for s in range(5)
        ]
        return sum(float((r.values - exact).norm()) for r in runs) / len(runs)

    plain, adjusted = mean_error(), mean_error(adjust="tree")
    assert adjusted < 0.75 * plain, (adjusted, plain)


def test_tree_adjustment_is_reproducible_exact_on_additive_games_and_checks_inputs():
    a = _and_game(d=8, b=2)
    one, two = (kernel_shap(a, budget=40, adjust="tree", generator=gen(3)) for _ in range(2))
    assert torch.equal(one.values, two.values)
    coef = torch.linspace(-1.0, 1.0, 9)[:8].double()
    additive = FunctionGame(
        lambda m: (m.double() * coef).sum(-1, keepdim=True), num_players=8, num_instances=2
    )
    est = kernel_shap(additive, budget=30, adjust="tree", sampling="leverage", generator=gen())
    assert torch.allclose(est.values[..., 0], coef.expand(2, -1), atol=1e-9)
    with pytest.raises(UserError, match="budget to at least 6"):
        kernel_shap(a, budget=5, adjust="tree", sampling="leverage", generator=gen())
    m, w = torch.ones(1, 6, 8, dtype=torch.bool), torch.ones(1, 6, dtype=torch.float64)
    with pytest.raises(UserError, match="folds"):
        tree_adjusted_values(
            m, w, torch.zeros(1, 6, 1), torch.zeros(1, 1), torch.ones(1, 1), folds=1
        )


def test_estimators_at_budgets_skip_permutations_below_one_permutation():
    """A budget below d + 1 buys no permutation: those rows are left out, the rest run."""
    from simshap.estimators.exact import exact_shapley
    from simshap.evaluation.tabular import estimators_at_budgets
    from simshap.games.values import TableGame, all_coalitions

    d = 6
    m = all_coalitions(d).double()
    game = TableGame((m @ torch.arange(1.0, d + 1, dtype=torch.float64))[None, :, None])
    truth = exact_shapley(game).values
    out = estimators_at_budgets(game, truth, torch.zeros(1, dtype=torch.long), [5, 16])
    assert "permutation@5" not in out and "permutation_antithetic@5" not in out
    assert {"kernelshap@5", "kernelshap_paired@5", "permutation@16"} <= set(out)
