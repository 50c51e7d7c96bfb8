"""Gradient attributions on the image game's players, rescaled to be efficient.

IG and DeepSHAP explain a differentiable function, not a game; to score them as Shapley
estimates of the image game v(S) = s(x ⊙ m_S)[c] (the surrogate's masking, probabilities)
they explain the surrogate at the full mask, f(x) = softmax(s(x, 1))[c], from the all-zero
input (the game's own v(∅) input: x ⊙ 0). Pixel attributions are **summed** over channels and
over each player's pixels (captum's ``feature_mask`` convention), then rescaled so that they
add up to the game's v(N) − v(∅):

* ``"additive"`` (default): φ_i ← φ_i + (Δ − Σφ) / d, the orthogonal projection onto the
  efficient vectors (the normalization the amortized explainers use);
* ``"multiplicative"``: φ ← φ · Δ / Σφ (undefined when Σφ is near 0: those images fall back to
  the additive rule, and are counted).

For IG from the zero input, Σφ ≈ f(x) − f(0) = v(N) − v(∅) already (completeness), so the
rescaling only removes the integration error. DeepSHAP is captum's ``DeepLiftShap`` from the
same zero input when the surrogate's nonlinearities are ``nn`` modules that DeepLift can
override; otherwise (a ``torch.export`` or TorchScript graph, whose ReLUs are functional calls)
``GradientShap`` (expected gradients), and the row says which ran.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from captum.attr import DeepLiftShap, GradientShap, IntegratedGradients
from torch import nn

from simshap.errors import UserError
from simshap.players import Players

__all__ = ["RESCALINGS", "deeplift_supported", "efficient_gradient_attributions"]

RESCALINGS = {
    "additive": "phi_i += (v(N) - v(empty) - sum(phi)) / d (orthogonal projection)",
    "multiplicative": "phi *= (v(N) - v(empty)) / sum(phi) (additive where |sum(phi)| < 1e-8)",
}

_DEEPLIFT_LAYERS = (nn.ReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softmax, nn.MaxPool2d)


class _FullMaskProbability(nn.Module):
    """``x -> softmax(s(x, 1))``: the surrogate at the full mask, in the game's units."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x, torch.ones_like(x[:, :1])), dim=-1)


def deeplift_supported(net: nn.Module) -> bool:
    """Whether captum's DeepLift can run its rules on ``net``: eager ``nn`` nonlinearities.

    Graphs (``torch.export``'s ``GraphModule``, TorchScript) call their nonlinearities as
    functions, which DeepLift would pass through as plain gradients.
    """
    graphs = (torch.fx.GraphModule, torch.jit.ScriptModule)
    if any(isinstance(m, graphs) for m in net.modules()):
        return False
    return any(isinstance(m, _DEEPLIFT_LAYERS) for m in net.modules())


def _per_player(pixel_attr: torch.Tensor, players: Players) -> torch.Tensor:
    """``(N, C, H, W)`` pixel attributions -> ``(N, d)`` sums over each player's pixels."""
    flat = pixel_attr.sum(1).flatten(1)  # channels summed
    owner = players.owner.flatten().to(flat.device)
    out = torch.zeros(flat.shape[0], players.num_players, dtype=flat.dtype, device=flat.device)
    return out.index_add_(1, owner, flat)


def _rescale(phi: torch.Tensor, delta: torch.Tensor, how: str) -> tuple[torch.Tensor, int]:
    gap = delta - phi.sum(1)
    additive = phi + (gap / phi.shape[1]).unsqueeze(1)
    if how == "additive":
        return additive, 0
    total = phi.sum(1)
    ok = total.abs() >= 1e-8
    scaled = phi * (delta / torch.where(ok, total, torch.ones_like(total))).unsqueeze(1)
    return torch.where(ok.unsqueeze(1), scaled, additive), int((~ok).sum())


def efficient_gradient_attributions(
    method: str,
    surrogate_net: nn.Module,
    images: torch.Tensor,
    target: torch.Tensor,
    players: Players,
    delta: torch.Tensor,
    rescale: str = "additive",
    steps: int = 64,
    internal_batch_size: int = 256,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """IG or DeepSHAP per player of the explained class, rescaled to add up to ``delta``.

    Args:
        method: ``"ig"`` or ``"deepshap"``.
        surrogate_net: the surrogate's network ``net(x, mask) -> logits``.
        images: ``(N, C, H, W)`` normalized images.
        target: ``(N,)`` explained classes.
        players: the superpixels (an ``(H, W)`` owner map).
        delta: ``(N,)`` the game's v(N) − v(∅) of the explained class.
        rescale: ``"additive"`` or ``"multiplicative"``.
        steps: IG's integration steps; GradientShap's samples per image.
        internal_batch_size: IG's rows per pass.
        seed: seeds GradientShap's draws (the global RNG state is restored).

    Returns:
        ``(values (N, d), info)``: info names the captum class that ran, the rescaling, the mean
        absolute efficiency gap before it (``efficiency_gap_before``) and the images the
        multiplicative rule left to the additive one.
    """
    if rescale not in RESCALINGS:
        raise UserError(f"rescale must be one of {sorted(RESCALINGS)}, got {rescale!r}")
    f = _FullMaskProbability(surrogate_net).eval()
    x = images.detach().float()
    zero = torch.zeros_like(x)
    tgt = target.long().to(x.device)
    if method == "ig":
        attr = IntegratedGradients(f).attribute(
            x, baselines=zero, target=tgt, n_steps=steps, internal_batch_size=internal_batch_size
        )
        used = f"captum.attr.IntegratedGradients (zero input, {steps} steps)"
    elif method == "deepshap":
        if deeplift_supported(surrogate_net):
            with warnings.catch_warnings():  # captum's note that it sets hooks (and removes them)
                warnings.filterwarnings("ignore", message=".*hooks and attributes.*")
                attr = DeepLiftShap(f).attribute(
                    x, baselines=zero[:1].expand(2, *x.shape[1:]), target=tgt
                )
            used = "captum.attr.DeepLiftShap (zero input)"
        else:
            state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            try:
                attr = GradientShap(f).attribute(
                    x, baselines=zero[:1], target=tgt, n_samples=steps, stdevs=0.0
                )
            finally:
                torch.random.set_rng_state(state)
            used = (
                f"captum.attr.GradientShap (zero input, {steps} samples): DeepLift cannot run "
                "its rules on this model (a traced graph or functional nonlinearities)"
            )
    else:
        raise UserError(f"unknown gradient baseline {method!r}; choose 'ig' or 'deepshap'")
    phi = _per_player(attr.detach().double(), players)
    delta = delta.double().to(phi.device)
    gap = float((phi.sum(1) - delta).abs().mean())
    values, fallback = _rescale(phi, delta, rescale)
    info = {
        "used": used,
        "rescaled": f"{rescale}: {RESCALINGS[rescale]}",
        "efficiency_gap_before": gap,
        "reduction": "pixel attributions summed over channels and each superpixel",
    }
    if rescale == "multiplicative":
        info["additive_fallback_images"] = fallback
    return values, info
