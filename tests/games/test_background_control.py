"""The background rows' control variate of a model's marginal game: unbiased by enumeration,
exact for an additive model, and what SimSHAP's default target uses."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

import simshap
from simshap.amortized.simshap import residual_target
from simshap.estimators.exact import exact_shapley
from simshap.games.rows import RowsGame
from simshap.games.sampling import shapley_kernel_subset_prob

D, K = 3, 4


def _game(additive: bool):
    rng = np.random.default_rng(0)
    x, background = rng.normal(size=(2, D)), rng.normal(size=(K, D))
    w = rng.normal(size=(D, 2))

    def f(rows):
        z = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        out = np.tanh(z) @ w  # additive: a sum of one function per feature
        if not additive:
            out = out + np.prod(z[:, :2], axis=1, keepdims=True)
        return out

    return RowsGame(f, x, background), f, x, background


def _terms(h: torch.Tensor, s: torch.Tensor, row: int) -> torch.Tensor:
    """T(S, z^row) = Σ_{i∉S} (h_i(z^row) - mean_k h_i(z^k)), ``(C,)``."""
    centred = h - h.mean(0, keepdim=True)
    return centred[row][~s].sum(0)


def test_the_controlled_target_is_unbiased_by_enumeration() -> None:
    """E over S ~ p(S) and the row k of the default target, with any control h and any
    coefficient c on both parts, equals the exact Shapley values of the marginal game."""
    game, f, x, background = _game(additive=False)
    truth = exact_shapley(game).values
    v0, v1 = game.empty_and_full()
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(K, D, 2, generator=gen, dtype=torch.float64)  # any per-row values
    prior = torch.randn(2, D, 2, generator=gen, dtype=torch.float64)
    for c in (0.0, 0.6, 1.0):
        expected = torch.zeros_like(truth)
        for bits in itertools.product([False, True], repeat=D):
            s = torch.tensor(bits)
            if not 0 < int(s.sum()) < D:
                continue
            p = float(shapley_kernel_subset_prob(D, s.sum()))
            for row in range(K):
                v = torch.from_numpy(f(np.where(s.numpy(), x, background[row]))).unsqueeze(1)
                drawn = v - c * _terms(h, s, row)
                target = residual_target(s.expand(2, 1, D), drawn, v0, v1, c * prior)
                expected += p / K * target
        torch.testing.assert_close(expected, truth, atol=1e-12, rtol=0)


def test_draw_controlled_returns_each_draws_own_term() -> None:
    game, f, x, background = _game(additive=False)
    h = torch.randn(K, D, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    masks = torch.rand(2, 64, D, generator=torch.Generator().manual_seed(2)) < 0.5
    values, terms = game.draw_controlled(masks, h, torch.Generator().manual_seed(3))
    for b, m in itertools.product(range(2), range(64)):
        s = masks[b, m]
        rows = [torch.from_numpy(f(np.where(s.numpy(), x[b], background[j])))[0] for j in range(K)]
        row = next(j for j in range(K) if (values[b, m] - rows[j]).abs().max() < 1e-12)
        torch.testing.assert_close(terms[b, m], _terms(h, s, row), atol=1e-12, rtol=0)
    # the same generator draws the same rows as draw()
    again = game.draw(masks, torch.Generator().manual_seed(3))
    torch.testing.assert_close(values, again, atol=0, rtol=0)
    with pytest.raises(simshap.UserError, match="control must be"):
        game.draw_controlled(masks, h[:, :2], torch.Generator().manual_seed(3))


def test_the_rows_shapley_values_remove_the_background_noise_of_an_additive_model() -> None:
    """For f(y) = Σ_i a_i(y_i), with h the background rows' own Shapley values, every draw
    minus its term is the exact mean value v_x(S): the row no longer adds any variance."""
    game, f, x, background = _game(additive=True)
    h = exact_shapley(RowsGame(f, background, background)).values  # (K, d, C)
    masks = torch.rand(2, 50, D, generator=torch.Generator().manual_seed(0)) < 0.5
    values, terms = game.draw_controlled(masks, h, torch.Generator().manual_seed(1))
    torch.testing.assert_close(values - terms, game.value(masks), atol=1e-12, rtol=0)
    assert float((values - game.value(masks)).abs().max()) > 0.1  # without it: noisy


@pytest.mark.timeout(300)
def test_simshap_on_the_marginal_game_controls_the_background_rows() -> None:
    """SimSHAP's default target draws with ĝ on the background rows as the control; the paper
    target and ``control_background=False`` draw plainly."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=list("abcd"))
    y = (frame["a"] + frame["b"] * frame["c"] > 0).astype(int)
    model = LogisticRegression().fit(frame, y)
    tiny = {
        "explainer": {"hidden": 16, "layers": 2, "max_epochs": 1, "val_instances": 4,
                      "val_budget": 16},
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        e = simshap.fit(model, frame, y, game="marginal", background_size=8, **tiny)
    assert e.hparams["control_background"] and e.hparams["target"] == "default"
    x, raw = e._inputs(frame.iloc[:5])
    torch.manual_seed(0)
    e._generator = torch.Generator().manual_seed(0)
    masks, values, v0, v1 = e.sample_values(x, raw)
    terms = e._step_terms
    assert terms is not None and terms.shape == values.shape
    with torch.no_grad():  # ĝ on the background rows, made efficient: the terms' source
        h = e.background_control()
    assert h is not None and h.shape == (8, 4, 2)
    bg_v = e.source.v_background()
    torch.testing.assert_close(h.sum(1).double(), bg_v - bg_v.mean(0), atol=1e-5, rtol=0)
    # the loss scales the terms by the coefficient c of ĝ: v - c·T, as in the enumeration
    e.hparams["average_targets"], e._step_rows = False, None
    e.cv_coef.fill_(0.6)
    with torch.no_grad():
        controlled = e.loss(x, masks, values, v0, v1)
        e._step_terms = None
        e.cv_coef.fill_(0.6)  # the loss moves it; the same start for both
        shifted = e.loss(x, masks, values - 0.6 * terms, v0, v1)
    torch.testing.assert_close(controlled, shifted, atol=1e-6, rtol=1e-6)
    e.hparams["control_background"] = False
    assert e.background_control() is None
    e.sample_values(x, raw)
    assert e._step_terms is None
