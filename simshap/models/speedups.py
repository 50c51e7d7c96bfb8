"""GPU-only speed-ups (``channels_last`` memory format, ``torch.compile``), skipped on the CPU.

``channels_last`` and ``torch.compile`` pay off with cuDNN and Triton on a GPU. On the CPU they
buy little, and with some torch builds (2.14.1) a ``channels_last`` ResNet backward pass on the
CPU never returns. So whatever a config asks for, they are applied only on CUDA devices; on
the CPU each request is skipped with a one-line log.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

__all__ = ["apply_speedups", "speedups_allowed"]

log = logging.getLogger("simshap")


def speedups_allowed(device: torch.device | str) -> bool:
    """Whether GPU speed-ups may be applied for ``device`` (only CUDA devices)."""
    return torch.device(device).type == "cuda"


def apply_speedups(
    net: nn.Module,
    device: torch.device | str,
    channels_last: bool = False,
    compile_net: bool = False,
) -> nn.Module:
    """Put ``net`` in ``channels_last`` and/or compile it in place, on CUDA only.

    The state-dict keys stay unchanged (``nn.Module.compile`` compiles in place). For a
    ``MaskedInput`` wrapper the inner network is compiled, so the masking stays eager.

    Args:
        net: the network, in place.
        device: where it will run; on a non-CUDA device nothing is applied.
        channels_last: keep 4-d weights (and so activations) in ``torch.channels_last``.
        compile_net: wrap the forward with ``torch.compile``.

    Returns:
        ``net`` itself.
    """
    if not (channels_last or compile_net):
        return net
    if not speedups_allowed(device):
        asked = [n for n, on in (("channels_last", channels_last), ("compile", compile_net)) if on]
        print(
            f"[simshap] {' and '.join(asked)} skipped on {torch.device(device).type} "
            "(applied only on CUDA)",
            flush=True,
        )
        return net
    if channels_last:
        net.to(memory_format=torch.channels_last)
    if compile_net:
        getattr(net, "net", net).compile()
    return net
