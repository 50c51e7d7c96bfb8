import itertools
import math

import numpy as np
import pytest
import torch

from simshap.games.sampling import shapley_kernel_subset_prob
from simshap.games.values import FunctionGame, TableGame, all_coalitions, coalition_index
from simshap.interactions.exact import (
    ExactInteractionComputer,
    InteractionValues,
    exact_interactions,
    faithfulness_r2,
    moebius_transform,
    superset_transform,
    zeta_transform,
)
from simshap.interactions.fsii import approx_fsii

shapiq = pytest.importorskip("shapiq")


def random_table(n: int, seed: int, b: int = 1, c: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2**n, c, generator=g, dtype=torch.float64)


def shapiq_reference(table_1d: torch.Tensor, n: int):
    def fn(cm):
        return table_1d[coalition_index(torch.as_tensor(np.asarray(cm, dtype=bool)))].numpy()

    return shapiq.ExactComputer(fn, n_players=n)


def max_diff(ours: InteractionValues, ref, instance: int = 0, output: int = 0) -> float:
    return max(abs(float(ours[t][instance, output]) - float(ref[t])) for t in ours.interactions)


@pytest.mark.parametrize("n", [3, 5, 8])
@pytest.mark.parametrize("index", ["Moebius", "SII", "k-SII", "STII"])
def test_indices_match_shapiq(n, index):
    table = random_table(n, seed=n)
    ref = shapiq_reference(table[0, :, 0], n)
    comp = ExactInteractionComputer(TableGame(table))
    for order in range(1, n + 1):
        ours = comp(index, order)
        assert len(ours) == sum(math.comb(n, k) for k in range(order + 1))
        assert max_diff(ours, ref(index, order)) < 1e-8, (index, order)


@pytest.mark.parametrize("n", [3, 6])
def test_sv_and_fsii_all_orders_match_shapiq(n):
    table = random_table(n, seed=10 + n)
    ref = shapiq_reference(table[0, :, 0], n)
    comp = ExactInteractionComputer(TableGame(table))
    assert max_diff(comp("SV"), ref("SV", 1)) < 1e-8
    for order in range(1, n + 1):
        assert max_diff(comp("FSII", order), ref("FSII", order)) < 1e-8, order


def test_fsii_low_orders_match_shapiq_n8():
    # shapiq solves FSII with a finite penalty (1e8) on v(∅) and v(N) and a dense lstsq; its own
    # error grows past 1e-8 above order 4 at n = 8, so higher orders are checked against a KKT
    # solve below instead.
    n = 8
    table = random_table(n, seed=3)
    ref = shapiq_reference(table[0, :, 0], n)
    comp = ExactInteractionComputer(table)
    for order in (1, 2, 3):
        assert max_diff(comp("FSII", order), ref("FSII", order)) < 1e-8


def dense_fsii(values: np.ndarray, n: int, order: int) -> dict:
    """Reference: equality-constrained weighted least squares via its KKT system."""
    basis = [t for k in range(1, order + 1) for t in itertools.combinations(range(n), k)]
    masks = all_coalitions(n).numpy()
    x = np.array([[m[list(t)].all() for t in basis] for m in masks], dtype=float)
    sizes = masks.sum(1)
    w = np.array([shapley_kernel_subset_prob(n, int(s)) for s in sizes])
    y = values - values[0]
    p = len(basis)
    kkt = np.zeros((p + 1, p + 1))
    kkt[:p, :p] = x.T @ (w[:, None] * x)
    kkt[:p, p] = kkt[p, :p] = 1.0
    rhs = np.concatenate([x.T @ (w * y), [values[-1] - values[0]]])
    sol = np.linalg.solve(kkt, rhs)
    return dict(zip(basis, sol[:p], strict=True))


@pytest.mark.parametrize("order", [1, 2, 4, 7])
def test_fsii_equals_constrained_least_squares(order):
    n = 8
    table = random_table(n, seed=21)
    ours = exact_interactions(table, "FSII", order)
    ref = dense_fsii(table[0, :, 0].numpy(), n, order)
    assert max(abs(float(ours[t][0, 0]) - v) for t, v in ref.items()) < 1e-9
    assert float(ours[()][0, 0]) == pytest.approx(float(table[0, 0, 0]))


def test_batched_instances_and_outputs():
    n, b, c = 5, 3, 2
    table = random_table(n, seed=4, b=b, c=c)
    comp = ExactInteractionComputer(TableGame(table))
    for index in ("SII", "k-SII", "STII", "FSII"):
        iv = comp(index, 2)
        assert iv.values.shape == (b, len(iv), c)
        for i in range(b):
            for j in range(c):
                ref = shapiq_reference(table[i, :, j], n)(index, 2)
                assert max_diff(iv, ref, i, j) < 1e-8


@pytest.mark.parametrize("index", ["k-SII", "FSII"])
def test_efficiency(index):
    n = 7
    table = random_table(n, seed=5, b=2, c=3)
    for order in range(1, n + 1):
        iv = exact_interactions(table, index, order)
        nonempty = iv.values[:, 1:].sum(1)
        torch.testing.assert_close(nonempty, table[:, -1] - table[:, 0], atol=1e-9, rtol=0)
        torch.testing.assert_close(iv[()], table[:, 0])


def test_sv_is_exact_shapley_and_order_one_indices_agree():
    from simshap.estimators.exact import exact_shapley

    n = 6
    table = random_table(n, seed=6, b=2, c=2)
    game = TableGame(table)
    sv = exact_interactions(game, "SV").values[:, 1:]
    torch.testing.assert_close(sv, exact_shapley(game).values)
    for index in ("SII", "k-SII", "STII", "FSII"):
        # all order-1 indices are the Shapley value (FSII of order 1 = SV)
        torch.testing.assert_close(exact_interactions(game, index, 1).values[:, 1:], sv)


def test_moebius_round_trip_and_transforms():
    n = 7
    table = random_table(n, seed=7, b=2, c=2)
    m = moebius_transform(table)
    torch.testing.assert_close(zeta_transform(m), table)
    # Möbius of an additive game is supported on singletons
    weights = torch.arange(1.0, n + 1, dtype=torch.float64)
    additive = (all_coalitions(n).double() @ weights)[None, :, None]
    ma = moebius_transform(additive)[0, :, 0]
    sizes = all_coalitions(n).sum(-1)
    assert torch.all(ma[sizes != 1].abs() < 1e-12)
    torch.testing.assert_close(ma[sizes == 1], weights)
    # superset sums against a brute-force check on a few coalitions
    sup = superset_transform(table)[0, :, 0]
    masks = all_coalitions(n)
    for t in (0, 5, 2**n - 1, 0b1010):
        inside = (masks | masks[t]).eq(masks).all(-1)
        assert float(sup[t]) == pytest.approx(float(table[0, inside, 0].sum()))
    # the Möbius index reconstructs the game through zeta
    iv = exact_interactions(table, "Moebius")
    coef = torch.zeros_like(table)
    coef[:, coalition_index(torch.stack([_mask(t, n) for t in iv.interactions]))] = iv.values
    torch.testing.assert_close(zeta_transform(coef), table)


def _mask(players, n):
    m = torch.zeros(n, dtype=torch.bool)
    m[list(players)] = True
    return m


def test_r2_curve_monotone_and_exact_at_n():
    n = 7
    table = random_table(n, seed=8, b=2, c=2)
    comp = ExactInteractionComputer(table)
    curve = comp.r2_curve()
    assert curve.shape == (n, 2, 2)
    assert torch.all(curve[1:] - curve[:-1] >= -1e-10)
    torch.testing.assert_close(curve[-1], torch.ones(2, 2, dtype=torch.float64))
    # a k-additive game has R²(k) = 1 exactly
    masks = all_coalitions(n).double()
    pair = masks[:, 0] * masks[:, 1] * 2.0 + masks @ torch.linspace(0, 1, n, dtype=torch.float64)
    r2 = faithfulness_r2(pair[None, :, None], orders=[1, 2])
    assert float(r2[1]) < 0.999
    assert float(r2[2]) == pytest.approx(1.0, abs=1e-10)


def test_r2_matches_definition():
    n = 5
    table = random_table(n, seed=9)
    iv = exact_interactions(table, "FSII", 2)
    masks = all_coalitions(n)
    recon = torch.tensor(
        [sum(float(iv[t][0, 0]) for t in iv.interactions if bool(m[list(t)].all())) for m in masks],
        dtype=torch.float64,
    )
    v = table[0, :, 0]
    w = torch.tensor([shapley_kernel_subset_prob(n, int(s)) for s in masks.sum(-1)])
    mean = (w * v).sum() / w.sum()
    expected = 1 - (w * (v - recon) ** 2).sum() / (w * (v - mean) ** 2).sum()
    assert float(faithfulness_r2(table, [2])[2]) == pytest.approx(float(expected), abs=1e-12)


def test_game_evaluated_once_and_dtype():
    n = 6
    calls = []
    table = random_table(n, seed=11).float()

    def fn(masks):
        calls.append(masks.shape[1])
        return table[0, coalition_index(masks[0])][None]

    game = FunctionGame(fn, n)
    comp = ExactInteractionComputer(game, batch_size=16)
    comp("FSII", 2)
    comp("k-SII", 3)
    comp.r2_curve(3)
    assert sum(calls) == 2**n
    assert comp("STII", 2).values.dtype == torch.float32


def test_inputs_are_not_modified():
    table = random_table(5, seed=14)
    saved = table.clone()
    comp = ExactInteractionComputer(table)
    first = comp("FSII", 2).values.clone()
    comp("SV"), comp("Moebius"), comp("SII", 3), comp.r2_curve()
    moebius_transform(table), zeta_transform(table), superset_transform(table)
    torch.testing.assert_close(table, saved, rtol=0, atol=0)
    comp._fsii_cache.clear()
    torch.testing.assert_close(comp("FSII", 2).values, first, rtol=0, atol=0)


def test_interaction_values_api():
    n = 4
    table = random_table(n, seed=12, b=2, c=1)
    iv = exact_interactions(table, "k-SII", 2)
    torch.testing.assert_close(iv[(2, 0)], iv[(0, 2)])
    assert iv[(0, 2)].shape == (2, 1)
    with pytest.raises(KeyError, match="not in these"):
        iv[(0, 1, 2)]
    second = iv.get_order(2)
    assert second.interactions == list(itertools.combinations(range(n), 2))
    assert second.min_order == second.order == 2
    top = iv.top_k(3, instance=1)
    assert len(top) == 3 and all(t for t, _ in top)
    assert abs(top[0][1]) >= abs(top[1][1]) >= abs(top[2][1])
    ref = iv.to_shapiq(instance=1)
    assert isinstance(ref, shapiq.InteractionValues)
    back = InteractionValues.from_shapiq(ref)
    for t in iv.interactions:
        assert float(back[t][0, 0]) == pytest.approx(float(iv[t][1, 0]))
    with pytest.raises(ValueError, match="order must be"):
        iv.get_order(3)


def test_bad_inputs():
    table = random_table(4, seed=13)
    with pytest.raises(ValueError, match="unknown interaction index"):
        exact_interactions(table, "Banzhaf", 2)
    with pytest.raises(ValueError, match="order must be an integer in 1..4"):
        exact_interactions(table, "FSII", 5)
    with pytest.raises(ValueError, match="order must be an integer"):
        exact_interactions(table, "SII", 0)
    with pytest.raises(ValueError, match="order-1"):
        exact_interactions(table, "SV", 2)
    with pytest.raises(ValueError, match="2\\^n"):
        exact_interactions(torch.zeros(1, 6, 1), "SII", 1)
    big = FunctionGame(lambda m: m.float().sum(-1, keepdim=True), 21)
    with pytest.raises(ValueError, match="approx_fsii"):
        exact_interactions(big, "FSII", 2)
    with pytest.raises(ValueError, match="budget"):
        approx_fsii(TableGame(table), 2, budget=3)


def test_approx_fsii_full_budget_is_exact_and_small_budget_close():
    n = 8
    torch.manual_seed(0)
    w1 = torch.randn(n, dtype=torch.float64)
    w2 = torch.randn(n, n, dtype=torch.float64).triu(1)
    masks = all_coalitions(n).double()
    values = masks @ w1 + torch.einsum("mi,ij,mj->m", masks, w2, masks)
    values = values + 0.05 * torch.randn(2**n, dtype=torch.float64)
    game = TableGame(values)
    exact = exact_interactions(game, "FSII", 2)
    full = approx_fsii(game, 2, budget=2**n)
    assert full.estimated and full.n_evals == 2**n
    torch.testing.assert_close(full.values, exact.values, atol=1e-9, rtol=0)
    gen = torch.Generator().manual_seed(1)
    approx = approx_fsii(game, 2, budget=150, generator=gen)
    assert approx.n_evals == 150
    torch.testing.assert_close(
        approx.values[:, 1:].sum(1), (values[-1:] - values[:1])[:, None], atol=1e-9, rtol=0
    )
    err = (approx.values - exact.values).abs().max()
    assert float(err) < 0.1 * float(exact.values[:, 1:].abs().max())
