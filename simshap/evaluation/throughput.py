"""Target throughput: SimSHAP's training-target computation against the surrogate's raw forward."""

from __future__ import annotations

import torch

from simshap.amortized.simshap import SimSHAP
from simshap.estimators.semivalues import sim_semivalue_target
from simshap.evaluation.timing import timed

__all__ = ["measure_target_throughput"]


def measure_target_throughput(
    explainer: SimSHAP,
    x: torch.Tensor,
    iters: int = 20,
    warmup: int = 3,
    bf16: bool | None = None,
) -> dict[str, float]:
    """Throughput of SimSHAP's target computation beside the surrogate's raw forward pass.

    Target computation (one training step's worth, no gradient): draw the ``M`` paired
    Shapley-kernel coalitions of every image, evaluate the surrogate on all ``B * (M + 2)``
    masked images (with ∅ and N) through the game layer, and form the Sim-Semivalue target.
    Raw forward: the surrogate's ResNet alone on the very same ``B * (M + 2)`` four-channel
    inputs, built once beforehand. Both are reported in masked images per second.

    Args:
        explainer: a SimSHAP module holding its surrogate, on the device of ``x``.
        x: ``(B, C, H, W)`` batch of (normalized) images.
        iters: timed repetitions.
        warmup: untimed repetitions first (cuDNN autotuning, compilation).
        bf16: run under bf16 autocast (default: on CUDA).

    Returns:
        ``target_images_per_s``, ``raw_images_per_s``, ``ratio`` (target / raw),
        ``masked_images_per_step``, ``batch_size``, ``n_masks``.
    """
    surrogate = explainer._require_surrogate()
    device = x.device
    bf16 = device.type == "cuda" if bf16 is None else bf16
    explainer.on_fit_start()  # seeds the step's mask generator on the module's device
    centered = explainer.hparams.centered

    def target_step() -> torch.Tensor:
        masks, values, v0, v1 = explainer.sample_values(x)
        return sim_semivalue_target(masks, values, v0, v1, centered)

    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        b = x.shape[0]
        masks, *_ = explainer.sample_values(x)
        ends = torch.zeros(b, 2, masks.shape[-1], dtype=torch.bool, device=device)
        ends[:, 1] = True
        flat = torch.cat([ends, masks], 1).flatten(0, 1)
        fmask = surrogate.groups.feature_mask(flat).to(x.dtype)
        xr = x.repeat_interleave(masks.shape[1] + 2, 0)
        inputs = torch.cat([xr * fmask, fmask], 1)
        if any(
            p.is_contiguous(memory_format=torch.channels_last) and p.ndim == 4
            for p in surrogate.net.parameters()
        ):
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        resnet = surrogate.net.net

        def raw_step() -> torch.Tensor:
            return resnet(inputs)

        rates = {}
        for key, fn in (("target", target_step), ("raw", raw_step)):
            for _ in range(warmup):
                fn()
            _, seconds = timed(lambda fn=fn: [fn() for _ in range(iters)])
            rates[key] = inputs.shape[0] * iters / max(seconds, 1e-12)
    return {
        "target_images_per_s": rates["target"],
        "raw_images_per_s": rates["raw"],
        "ratio": rates["target"] / rates["raw"],
        "masked_images_per_step": float(inputs.shape[0]),
        "batch_size": float(x.shape[0]),
        "n_masks": float(explainer.hparams.n_masks),
    }
