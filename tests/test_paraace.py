"""ParaACE: finite differences, the UCB detector, ground truth of F1–F10, the ParaACE model."""

import itertools

import numpy as np
import pytest
import torch

from simshap.errors import UserError
from simshap.interactions import (
    all_pairs,
    detect_interactions,
    interaction_strength,
    mixed_difference,
    naive_interactions,
    ucb_best_k_arms,
)
from simshap.interactions.finite_differences import as_batch_function
from simshap.interactions.synthetic import (
    FUNCTIONS,
    INTERACTION_SETS,
    input_bounds,
    pair_labels,
    pair_roc_auc,
    synthetic_dataset,
)

pytestmark = pytest.mark.timeout(60)


def _poly(x: torch.Tensor) -> torch.Tensor:
    # cubic polynomial: ∂²/∂x0∂x1 = 3 + 2 x2,  ∂²/∂x1∂x2 = 2 x0,  ∂³/∂x0∂x1∂x2 = 2
    return 3 * x[:, 0] * x[:, 1] + 2 * x[:, 0] * x[:, 1] * x[:, 2] + x[:, 3] ** 3 - 5 * x[:, 2]


def test_four_point_difference_is_exact_on_polynomials():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(50, 4, generator=gen, dtype=torch.float64) * 2 - 1
    steps = torch.tensor([0.7, 0.3, 0.9, 0.5], dtype=torch.float64)
    d01 = mixed_difference(_poly, x, torch.tensor([[0, 1]]).expand(50, 2), steps)
    d12 = mixed_difference(_poly, x, torch.tensor([[1, 2]]).expand(50, 2), steps)
    d03 = mixed_difference(_poly, x, torch.tensor([[0, 3]]).expand(50, 2), steps)
    torch.testing.assert_close(d01, 3 + 2 * x[:, 2], rtol=0, atol=1e-12)
    torch.testing.assert_close(d12, 2 * x[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(d03, torch.zeros(50, dtype=torch.float64), rtol=0, atol=1e-12)


def test_eight_point_difference_is_exact_on_polynomials():
    x = torch.randn(20, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    steps = torch.full((4,), 0.8, dtype=torch.float64)
    d = mixed_difference(_poly, x, torch.tensor([[0, 1, 2]]).expand(20, 3), steps)
    torch.testing.assert_close(d, torch.full((20,), 2.0, dtype=torch.float64), rtol=0, atol=1e-11)
    # Eq. (8) written out for one point
    h, x0 = 0.8, x[:1]
    e = torch.eye(4, dtype=torch.float64)[:3]
    plus = [(1, 1, 1), (-1, -1, 1), (1, -1, -1), (-1, 1, -1)]
    minus = [(-1, 1, 1), (1, -1, 1), (1, 1, -1), (-1, -1, -1)]
    total = sum(_poly(x0 + h * (torch.tensor(s, dtype=torch.float64) @ e)) for s in plus)
    total = total - sum(_poly(x0 + h * (torch.tensor(s, dtype=torch.float64) @ e)) for s in minus)
    torch.testing.assert_close(d[:1], total / (8 * h**3), rtol=1e-12, atol=1e-12)


def test_zero_strength_for_additive_functions():
    def additive(x):
        return torch.sin(3 * x[:, 0]) + x[:, 1] ** 4 + torch.exp(x[:, 2]) + torch.abs(x[:, 3])

    X = np.random.default_rng(0).normal(size=(300, 4))
    s = interaction_strength(additive, X, all_pairs(4), h=0.8)
    assert np.all(s < 1e-20)
    det = naive_interactions(additive, X, k=3, m=20)
    assert np.max(det.scores) < 1e-20


def test_standardized_step_gives_derivative_of_standardized_features():
    # F = x0 x1 with std(x0) = 2, std(x1) = 3: the standardized mixed partial is 6
    rng = np.random.default_rng(0)
    X = np.column_stack([2 * rng.standard_normal(5000), 3 * rng.standard_normal(5000)])
    X = (X - X.mean(0)) / X.std(0, ddof=1) * np.array([2.0, 3.0])
    s = interaction_strength(lambda x: x[:, 0] * x[:, 1], X, [(0, 1)], h=0.8)
    assert s[0] == pytest.approx(36.0, rel=1e-9)


def test_ucb_finds_planted_top_k_with_far_fewer_pulls():
    n, k, m = 45, 5, 100
    means = np.linspace(0.0, 0.3, n)
    best = np.arange(n - k, n)
    means[best] = np.linspace(1.0, 1.4, k)
    rng = np.random.default_rng(0)

    def pull(arms):
        return means[arms] + rng.uniform(-0.2, 0.2, size=len(arms))

    res = ucb_best_k_arms(pull, n, k, m=m, n_init=3)
    assert set(res.accepted) == set(best.tolist())
    assert res.accepted[0] == n - 1  # the strongest arm comes out first
    assert res.total_pulls <= res.naive_pulls / 4
    assert res.naive_pulls == n * m
    assert res.pulls.max() <= m


def test_ucb_width_is_zero_after_m_pulls_and_follows_the_formula():
    from simshap.interactions.ucb import confidence_width, default_delta

    delta = default_delta(45, 100)
    assert delta == pytest.approx(2 / (45**3 * 100))
    w = confidence_width(0.5, np.array([3, 50, 99, 100, 120]), 100, delta)
    expected = np.sqrt(2 * 0.25 * np.log(2 / delta) / np.array([3, 50, 99]))
    np.testing.assert_allclose(w[:3], expected)
    assert w[3] == 0 and w[4] == 0


def test_detect_reaches_auc_one_on_well_separated_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(2000, 6))

    def f(x):
        return 4 * x[:, 0] * x[:, 1] + 3 * x[:, 2] * x[:, 3] + x[:, 4] ** 2 + x[:, 5]

    det = detect_interactions(f, X, k=2, h=0.8, m=100, seed=0)
    truth = np.array([1 if p in {(0, 1), (2, 3)} else 0 for p in det.pairs])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(truth, det.scores) == 1.0
    assert set(det.top_k) == {(0, 1), (2, 3)}
    assert det.pulls < det.naive_pulls / 2
    assert det.evaluations == 4 * det.pulls


def test_detect_accepts_torch_modules_and_sklearn_estimators():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    lin = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]))
    det = detect_interactions(lin, X, k=1, m=10, seed=0)
    assert np.max(det.scores) < 1e-20  # linear: no interaction
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    det = detect_interactions(net, X, k=3, m=10, seed=0)
    assert len(det.top_k) == 3 and det.scores.shape == (3,)
    F = as_batch_function(net)
    assert F(torch.zeros(5, 3, dtype=torch.float64)).shape == (5,)


def test_bad_inputs_raise_user_errors():
    X = np.random.default_rng(0).normal(size=(50, 4))
    f = lambda x: x[:, 0] * x[:, 1]  # noqa: E731
    with pytest.raises(UserError, match="k=7 .*6 feature pairs"):
        detect_interactions(f, X, k=7)
    for h in (0, -0.5, float("nan")):
        with pytest.raises(UserError, match="step h must be a positive"):
            detect_interactions(f, X, k=2, h=h)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(UserError, match=r"NaN or infinite values in 1 row.*\[3\]"):
        detect_interactions(f, X_nan, k=2)
    with pytest.raises(UserError, match="at least 2 features"):
        detect_interactions(f, X[:, :1], k=1)
    with pytest.raises(ValueError):  # UserError is a ValueError
        naive_interactions(f, X, k=0)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_ground_truth_sets_follow_from_the_formulas(name):
    # exact finite differences of the noiseless function on interior points (float64)
    h = 0.05
    lo, hi = input_bounds(name)
    X = np.random.default_rng(0).uniform(lo + h, hi - h, size=(3000, 10))
    pairs = all_pairs(10)
    s = interaction_strength(FUNCTIONS[name], X, pairs, h=h, standardize=False)
    derived = {p for p, v in zip(pairs, s, strict=True) if v > 1e-12}
    assert derived == {p for p, lab in zip(pairs, pair_labels(name, pairs), strict=True) if lab}
    assert pair_roc_auc(name, pairs, s) == 1.0


def test_interaction_sets_cover_the_issue_table():
    assert INTERACTION_SETS["F4"] == (*INTERACTION_SETS["F3"], (1, 4))
    assert sum(len(list(itertools.combinations(g, 2))) for g in INTERACTION_SETS["F1"]) == 11
    X, y = synthetic_dataset("F1", 1000, 0)
    assert X[:, [3, 4, 7, 9]].min() >= 0.6 and X.min() >= 0 and X.max() <= 1
    X, y = synthetic_dataset("F2", 1000, 0)
    assert np.isfinite(y).all() and X.min() < -0.9
