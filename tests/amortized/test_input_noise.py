"""explainer.input_noise: Gaussian noise on the training inputs, drawn from the step generator."""

from __future__ import annotations

import pytest
import torch
from tiny import mlp_spec, tiny_surrogate

from simshap.amortized import FastSHAP, SimSHAP
from simshap.amortized.surrogate import Surrogate
from simshap.runs.config import TABULAR_DEFAULTS

D, C = 6, 2


def _surrogate() -> Surrogate:
    return tiny_surrogate(D, C, hidden=16)


def _spec() -> dict:
    return mlp_spec(D, C, hidden=16)


class _Seen(Exception):
    pass


def _step_input(module, x: torch.Tensor) -> torch.Tensor:
    """The inputs one training step hands to the game (the step stops right there)."""
    seen = {}

    def capture(inputs, raw=None):
        seen["x"] = inputs.clone()
        raise _Seen

    module.sample_values = capture
    with pytest.raises(_Seen):  # the batch as the module's own dataset gives it
        module.training_step(module.training_dataset(x).tensors, 0)
    return seen["x"]


@pytest.mark.parametrize("cls", [SimSHAP, FastSHAP])
def test_training_inputs_get_the_configured_noise_reproducibly(cls):
    x = torch.randn(512, D)
    clean = cls(_spec(), _surrogate(), n_masks=4, seed=3)
    clean.init_mask_generator()
    assert torch.equal(_step_input(clean, x), x)  # off by default: the rows as they are
    noisy = [cls(_spec(), _surrogate(), n_masks=4, seed=3, input_noise=0.3) for _ in range(2)]
    for m in noisy:
        m.init_mask_generator()
    a, b = (_step_input(m, x) for m in noisy)
    assert torch.equal(a, b)  # same seed, same noise
    eps = a - x
    assert abs(eps.mean().item()) < 0.02 and abs(eps.std().item() - 0.3) < 0.02
    assert not torch.equal(_step_input(noisy[0], x), a)  # a fresh draw at every step


def test_bad_input_noise_is_refused():
    for bad in (-0.1, float("nan"), float("inf"), True, "0.3"):
        with pytest.raises(ValueError, match="input_noise"):
            SimSHAP(_spec(), _surrogate(), input_noise=bad)
    # the default is the profile's: none on large tables, 0.3 on small ones (the main job's)
    assert TABULAR_DEFAULTS["explainer"]["input_noise"] is None
    from simshap.runs.profiles import resolve_profile

    assert resolve_profile(TABULAR_DEFAULTS, 20_000)["explainer"]["input_noise"] == 0.0
    assert resolve_profile(TABULAR_DEFAULTS, 400)["explainer"]["input_noise"] == 0.3
    # the marginal game's validation targets cost val_instances x val_budget x K model rows
    marginal = resolve_profile({**TABULAR_DEFAULTS, "game": "marginal"}, 20_000)["explainer"]
    assert (marginal["val_instances"], marginal["val_budget"]) == (32, 1024)
    chosen = {**TABULAR_DEFAULTS, "game": "marginal", "explainer": {"val_budget": 512}}
    assert resolve_profile(chosen, 400)["explainer"]["val_budget"] == 512
