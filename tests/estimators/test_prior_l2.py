"""The budget knob's point estimate under the l2 loss: the posterior's geometric median.

``mixture_weight(..., loss="l2")`` returns the a that minimizes E||a δ̂ - δ|| under the posterior
(a scale mixture of Gaussians centred on the line through 0 and δ̂). Checked against the closed
form where there is one (one Gaussian component: the median is the mean) and against a Monte
Carlo of the posterior where there is not.
"""

from __future__ import annotations

import pytest
import torch

from simshap.amortized import SimSHAP
from simshap.amortized.surrogate import Surrogate
from simshap.errors import UserError
from simshap.estimators.posterior import VAR_GRID, _mean_distance, chi2_quantiles, mixture_weight
from simshap.estimators.refine import kernel_shap_with_prior
from simshap.games.values import FunctionGame

F64 = torch.float64


@pytest.mark.timeout(60)
@pytest.mark.parametrize("k", [1, 11, 400])
def test_mean_distance_matches_monte_carlo(k: int) -> None:
    """E||μ + s Z|| from the table (or its large-k approximation) agrees with sampling."""
    gen = torch.Generator().manual_seed(k)
    z = torch.randn(200_000, k, generator=gen, dtype=F64)
    for m, s in [(0.0, 1.0), (0.7, 0.5), (3.0, 1.0), (40.0, 1.0), (2.0, 0.0)]:
        shifted = z * s
        shifted[:, 0] += m
        mc = float(shifted.norm(dim=1).mean())
        got = float(_mean_distance(torch.tensor([m], dtype=F64), torch.tensor([s], dtype=F64), k))
        assert got == pytest.approx(mc, rel=2e-3, abs=1e-9)


@pytest.mark.timeout(60)
def test_one_gaussian_component_gives_the_posterior_mean() -> None:
    """One τ² and an exact σ²: the posterior is one spherical Gaussian, median = mean."""
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(5, 12, 2, generator=gen, dtype=F64)
    var = torch.rand(5, 2, generator=gen, dtype=F64) + 0.1
    tau2 = torch.tensor([[0.3, 2.0]], dtype=F64)
    l2 = mixture_weight(delta, var, tau2, loss="l2")
    mean = mixture_weight(delta, var, tau2, loss="squared")
    torch.testing.assert_close(mean, (tau2 / (tau2 + var)).expand(5, 2))
    torch.testing.assert_close(l2, mean, atol=1e-7, rtol=0)


@pytest.mark.timeout(120)
def test_l2_weight_minimizes_the_posterior_expected_distance() -> None:
    """Against a Monte Carlo of the posterior (its components drawn with their weights)."""
    d = 12
    gen = torch.Generator().manual_seed(1)
    tau2 = torch.tensor([[0.01], [0.05], [0.2], [1.5]], dtype=F64)
    delta = 0.8 * torch.randn(3, d, 1, generator=gen, dtype=F64)
    delta -= delta.mean(1, keepdim=True)
    var, nu = torch.full((3, 1), 0.4, dtype=F64), 8.0
    a_l2 = mixture_weight(delta, var, tau2, var_dof=nu, loss="l2")
    a_mean = mixture_weight(delta, var, tau2, var_dof=nu, loss="squared")
    # the posterior's components, as mixture_weight weighs them
    sigma2 = var.view(1, -1) * nu / chi2_quantiles(nu, VAR_GRID).view(-1, 1)  # (G, B)
    total = tau2.view(-1, 1, 1) + sigma2.unsqueeze(0)  # (K, G, B)
    k = d - 1
    loglik = -0.5 * k * total.log() - 0.5 * delta.pow(2).sum((1, 2)) / total
    post = torch.softmax(loglik.flatten(0, 1), 0).view_as(total)
    w, v = tau2.view(-1, 1, 1) / total, tau2.view(-1, 1, 1) * sigma2.unsqueeze(0) / total
    n = 100_000
    grid = torch.linspace(0, 1, 401, dtype=F64)
    for b in range(3):
        comp = torch.multinomial(post[..., b].flatten(), n, replacement=True, generator=gen)
        wb, vb = w[..., b].flatten()[comp], v[..., b].flatten()[comp]
        # δ on the k dimensions orthogonal to 1, in a basis whose first axis is δ̂'s direction
        e = torch.randn(n, k, generator=gen, dtype=F64) * vb.sqrt().unsqueeze(1)
        e[:, 0] += wb * delta[b].norm()
        dist = (
            ((grid.view(-1, 1) * delta[b].norm() - e[:, 0]).pow(2) + e[:, 1:].pow(2).sum(1))
            .sqrt()
            .mean(1)
        )
        best = float(grid[dist.argmin()])
        assert float(a_l2[b]) == pytest.approx(best, abs=0.01)

        def at(a: float, dist: torch.Tensor = dist) -> float:
            return float(dist[int(round(a * 400))])

        assert at(float(a_l2[b])) <= at(float(a_mean[b])) + 1e-9
    assert float((a_l2 - a_mean).abs().max()) > 0.01  # the mixture case differs from the mean


@pytest.mark.timeout(60)
def test_the_loss_is_checked() -> None:
    """A wrong loss name is refused, naming the choices."""
    delta = torch.zeros(1, 4, 1, dtype=F64)
    with pytest.raises(UserError, match="loss must be one of"):
        mixture_weight(delta, torch.ones(1, 1, dtype=F64), torch.ones(1, 1, dtype=F64), loss="l1")
    game = FunctionGame(lambda m: m.to(F64).sum(-1, keepdim=True), num_players=4, num_instances=1)
    with pytest.raises(UserError, match="loss must be one of"):
        kernel_shap_with_prior(game, torch.zeros(1, 4, 1), 0.1, 8, loss="median")


@pytest.mark.timeout(120)
def test_the_explainer_passes_its_loss_to_the_refinement(monkeypatch: pytest.MonkeyPatch) -> None:
    """``explainer(x, budget=k, loss=...)`` refines with that loss (``"l2"`` by default)."""
    import simshap.amortized.inference as base_mod

    d, c = 12, 2
    torch.manual_seed(0)
    surrogate = Surrogate(
        {"kind": "mlp", "in_features": d, "num_classes": c, "hidden": 32, "layers": 2},
        {"kind": "identity", "num_features": d},
    ).eval()
    spec = {
        "kind": "mlp",
        "in_features": d,
        "num_players": d,
        "num_classes": c,
        "hidden": 32,
        "layers": 2,
    }
    explainer = SimSHAP(spec, surrogate)
    explainer.prior_var.fill_(1e-3)
    x = torch.randn(8, d)
    seen = []
    real = base_mod.kernel_shap_with_prior

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("loss"))
        return real(*args, **kwargs)

    monkeypatch.setattr(base_mod, "kernel_shap_with_prior", spy)
    for loss in (None, "l2", "squared"):
        extra = {} if loss is None else {"loss": loss}
        got = explainer(x, budget=64, generator=torch.Generator().manual_seed(0), **extra)
        ref = real(
            explainer.game(x),
            explainer(x).values,
            explainer.prior_variances(),
            64,
            generator=torch.Generator().manual_seed(0),
            loss=loss or "l2",
        )
        torch.testing.assert_close(got.values, ref.values.double())  # values are float64
    assert seen == ["l2", "l2", "squared"]
    with pytest.raises(UserError, match="loss must be one of"):
        explainer(x, budget=64, loss="l1")
