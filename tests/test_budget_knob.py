"""Amortized + budget: ``explainer(x, budget=k)`` and ``kernel_shap_with_prior``.

Properties: ``budget = 2^d`` gives the exact Shapley values, ``budget = 2`` the prior made
efficient, every answer is efficient, the prior's weight comes from the validation error the
explainer records (and travels with the saved file), and a missing one is refused.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from simshap.errors import UserError
from simshap.explainers import FastSHAP, SimSHAP
from simshap.games.estimators import exact_shapley, kernel_shap
from simshap.games.prior import kernel_shap_with_prior, split_half_variance
from simshap.games.values import FunctionGame, TableGame, all_coalitions
from simshap.io import load_explainer, save_explainer
from simshap.surrogate import Surrogate

D, C = 6, 3


def _surrogate() -> Surrogate:
    torch.manual_seed(0)
    return Surrogate({"kind": "mlp", "in_features": D, "num_classes": C, "hidden": 32,
                      "layers": 2}, {"kind": "identity", "num_features": D}).eval()


def _spec() -> dict:
    return {"kind": "mlp", "in_features": D, "num_players": D, "num_classes": C, "hidden": 32,
            "layers": 2}


def _game(n: int = 10) -> tuple[TableGame, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    m = all_coalitions(n).double()
    w1, w2 = torch.randn(n, generator=gen, dtype=torch.float64), torch.randn(
        n, n, generator=gen, dtype=torch.float64)
    values = m @ w1 + torch.sin(torch.einsum("mi,ij,mj->m", m, w2, m))
    game = TableGame(values)
    return game, exact_shapley(game).values


@pytest.mark.parametrize("cls", [SimSHAP, FastSHAP])
def test_budget_2_to_the_d_is_exact_and_2_is_the_efficient_prior(cls: type) -> None:
    explainer = cls(_spec(), _surrogate())
    explainer.prior_var.fill_(0.01)
    x = torch.randn(4, D)
    exact = exact_shapley(explainer.game(x)).values
    full = explainer(x, budget=2**D)
    assert full.n_evals == 2**D and "kernel_shap@64" in full.method
    torch.testing.assert_close(full.values, exact, atol=1e-5, rtol=0)
    two = explainer(x, budget=2)
    total = (exact.sum(1))  # v(N) - v(∅) per class
    torch.testing.assert_close(two.values.sum(1), total, atol=1e-5, rtol=0)
    prior = explainer(x).values
    shift = (total - prior.sum(1)) / D
    torch.testing.assert_close(two.values, prior + shift[:, None], atol=1e-5, rtol=0)
    for k in (16, 40):
        mid = explainer(x, budget=k, generator=torch.Generator().manual_seed(0))
        assert mid.n_evals == k
        torch.testing.assert_close(mid.values.sum(1), total, atol=1e-5, rtol=0)


def test_prior_weight_moves_between_prior_and_kernel_shap() -> None:
    game, exact = _game()
    prior = exact + 0.2 * torch.randn(exact.shape, generator=torch.Generator().manual_seed(1),
                                      dtype=exact.dtype)
    budget = 400
    runs = {}
    for tau2 in (1e-12, 1e6):
        runs[tau2] = kernel_shap_with_prior(game, prior, tau2, budget,
                                            generator=torch.Generator().manual_seed(2)).values
    plain = kernel_shap(game, budget=budget, generator=torch.Generator().manual_seed(2)).values
    efficient_prior = prior + ((exact.sum(1) - prior.sum(1)) / prior.shape[1])[:, None]
    # a prior known to be perfect is kept; a worthless prior leaves KernelSHAP's answer
    torch.testing.assert_close(runs[1e-12], efficient_prior, atol=1e-6, rtol=0)
    torch.testing.assert_close(runs[1e6], plain, atol=1e-6, rtol=0)


def test_refinement_is_no_worse_than_either_source_on_average() -> None:
    """Mean over seeds, on a non-additive game: error <= max(prior's, KernelSHAP's) (and close
    to the better one), at budgets from below 4d (prior kept) to nearly all coalitions."""
    game, exact = _game()
    gen = torch.Generator().manual_seed(5)
    prior = exact + 0.15 * torch.randn(exact.shape, generator=gen, dtype=exact.dtype)
    prior_err = float((prior - exact).norm())
    for budget in (32, 64, 128, 512):
        ours, ks = [], []
        for seed in range(8):
            est = kernel_shap_with_prior(game, prior, 0.15**2, budget,
                                         generator=torch.Generator().manual_seed(seed))
            ours.append(float((est.values - exact).norm()))
            plain = kernel_shap(game, budget=budget, generator=torch.Generator().manual_seed(seed))
            ks.append(float((plain.values - exact).norm()))
        mean_ours, mean_ks = sum(ours) / len(ours), sum(ks) / len(ks)
        assert mean_ours <= 1.05 * min(max(prior_err, mean_ks), prior_err + mean_ks)
        assert mean_ours <= 1.25 * min(prior_err, mean_ks), (budget, mean_ours, prior_err, mean_ks)


def test_validation_records_the_prior_variance_and_it_is_saved(tmp_path: Path) -> None:
    surrogate = _surrogate()
    torch.manual_seed(0)
    explainer = SimSHAP(_spec(), surrogate, n_masks=8, val_budget=64)
    assert torch.isnan(explainer.prior_var).all()
    x = torch.randn(64, D)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(explainer, DataLoader(TensorDataset(x[:48]), batch_size=16),
                DataLoader(TensorDataset(x[48:]), batch_size=16))
    assert torch.isfinite(explainer.prior_var).all() and (explainer.prior_var > 0).all()
    # the recorded value is the per-player mean squared error to the validation targets
    explainer.eval()
    errs = []
    with torch.no_grad():
        for i, xb in enumerate(x[48:].split(16)):
            errs.append((explainer.attributions(xb) - explainer.validation_targets(xb, i)).pow(2))
    mse = torch.cat(errs).mean((0, 1))
    assert float(explainer._best_val) <= float(mse.mean()) + 1e-6
    path = tmp_path / "e.pt"
    save_explainer(explainer, path)
    loaded = load_explainer(path)
    assert torch.equal(loaded.prior_var, explainer.prior_var)
    gen = torch.Generator().manual_seed(0)
    a = loaded(x[:3], budget=20, generator=gen).values
    b = explainer(x[:3], budget=20, generator=torch.Generator().manual_seed(0)).values
    torch.testing.assert_close(a, b)


def test_budget_needs_a_recorded_validation_error_and_a_sane_budget() -> None:
    explainer = SimSHAP(_spec(), _surrogate())
    x = torch.randn(2, D)
    with pytest.raises(UserError, match="validation error"):
        explainer(x, budget=16)
    explainer.prior_var.fill_(0.1)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(UserError, match="budget"):
            explainer(x, budget=bad)
    game, exact = _game(4)
    with pytest.raises(UserError, match="prior must have shape"):
        kernel_shap_with_prior(game, exact[:, :3], 0.1, 8)
    with pytest.raises(UserError, match="prior_var"):
        kernel_shap_with_prior(game, exact, 0.0, 8)


def _synthetic_game(d: int) -> FunctionGame:
    gen = torch.Generator().manual_seed(3)
    w1 = torch.randn(d, generator=gen, dtype=torch.float64)
    w2 = torch.randn(d, d, generator=gen, dtype=torch.float64) / d

    def fn(m: torch.Tensor) -> torch.Tensor:
        m = m.double()
        return (m @ w1 + torch.sin(3 * torch.einsum("bmi,ij,bmj->bm", m, w2, m))).unsqueeze(-1)

    return FunctionGame(fn, d)


@pytest.mark.parametrize("budget", [160, 640])
def test_split_half_variance_matches_the_variance_over_seeds(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The noise estimate that weighs the prior is calibrated (d = 16, enumerated sizes 1, 15)."""
    import simshap.games.prior as prior_mod

    estimates: list[torch.Tensor] = []
    real = prior_mod.split_half_variance

    def spy(*args: object) -> torch.Tensor:
        out = real(*args)
        estimates.append(out)
        return out

    monkeypatch.setattr(prior_mod, "split_half_variance", spy)
    game, prior = _synthetic_game(16), torch.zeros(1, 16, 1, dtype=torch.float64)
    runs = [  # τ² huge: no shrinkage, the result is the prior plus the sampled correction
        kernel_shap_with_prior(game, prior, 1e12, budget,
                               generator=torch.Generator().manual_seed(s)).values
        for s in range(80)
    ]  # fmt: skip
    actual = torch.stack(runs).var(0).mean()
    ratio = float(torch.stack(estimates).mean() / actual)
    assert 0.75 < ratio < 1.4, ratio  # measured 1.10 (budget 160) and 1.04 (640), 100 seeds


def test_split_half_variance_factor() -> None:
    """ρ = Var_half / Var_full is 2 for many rows, 3 at n = 4p, and 2 once rows are enumerated."""
    a, b = torch.ones(1, 10, 1), torch.zeros(1, 10, 1)
    assert float(split_half_variance(a, b, 10**6, 10)) == pytest.approx(1 / 4, rel=1e-4)
    assert float(split_half_variance(a, b, 36, 10)) == pytest.approx(1 / 6)  # p = 9, n = 4p
    assert float(split_half_variance(a, b, 36, 10, n_fixed=20)) == pytest.approx(1 / 4)
