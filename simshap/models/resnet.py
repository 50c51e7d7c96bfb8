"""torchvision's ResNet-18 adapted to 32x32 inputs (CIFAR stem)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock

__all__ = ["DeepLiftBasicBlock", "cifar_resnet18", "warm_start_from_classifier"]


class DeepLiftBasicBlock(BasicBlock):
    """torchvision's ``BasicBlock`` without in-place operations, so DeepLIFT / DeepSHAP work.

    torchvision's block reuses one ``ReLU(inplace=True)`` twice and adds the shortcut in place;
    shap's ``DeepExplainer`` needs each nonlinearity to be its own module and no in-place
    updates. This block has ``relu`` (after the first convolution) and ``relu_out`` (after the
    residual sum), both out of place. ReLUs hold no parameters, so the state-dict keys, and so
    every checkpoint, are those of torchvision's block.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.relu = nn.ReLU(inplace=False)
        self.relu_out = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu_out(out + identity)


def cifar_resnet18(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> nn.Module:
    """Torchvision's ResNet-18 (random weights) with a CIFAR stem.

    The 7x7 stride-2 stem and the max-pool are replaced by a 3x3 stride-1 convolution, so a
    32x32 image reaches ``layer4`` at 4x4 resolution. ``in_channels=4`` gives the image surrogate
    s(x, m), which reads the masked image and the mask stacked on the channel axis: ``(x * m, m)``.

    Args:
        num_classes: outputs of the final linear layer.
        in_channels: input channels (3 for RGB images, 4 for the surrogate's ``(x * m, m)``).
        width: channels of the first stage (torchvision: 64; stages use width, 2w, 4w, 8w).
            Smaller widths keep CPU tests fast; the architecture is otherwise unchanged.

    Returns:
        A ``torchvision.models.ResNet`` mapping ``(N, in_channels, H, W)`` to ``(N, num_classes)``.

    """
    if num_classes < 1 or in_channels < 1 or width < 1:
        raise ValueError(
            "num_classes, in_channels and width must be positive integers, got "
            f"num_classes={num_classes}, in_channels={in_channels}, width={width}"
        )
    net = resnet18(weights=None, num_classes=num_classes)
    # rebuild the four stages with torchvision's own block builder, with the out-of-place
    # block (same parameters and keys) so that shap's DeepExplainer can run on the network
    net.inplanes = width
    net.layer1 = net._make_layer(DeepLiftBasicBlock, width, 2)
    net.layer2 = net._make_layer(DeepLiftBasicBlock, 2 * width, 2, stride=2)
    net.layer3 = net._make_layer(DeepLiftBasicBlock, 4 * width, 2, stride=2)
    net.layer4 = net._make_layer(DeepLiftBasicBlock, 8 * width, 2, stride=2)
    net.fc = nn.Linear(8 * width, num_classes)
    net.relu = nn.ReLU(inplace=False)
    rebuilt: list[nn.Module] = [net.layer1, net.layer2, net.layer3, net.layer4]
    net.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.maxpool = nn.Identity()
    rebuilt += [net.conv1, net.bn1]
    for part in rebuilt:
        _torchvision_init(part)
    return net


def _torchvision_init(module: nn.Module) -> None:
    """Apply the initialisation of torchvision's ResNet (He-normal convs, unit BatchNorm)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def warm_start_from_classifier(
    target: nn.Module,
    classifier_net: nn.Module,
    option: str = "surrogate.init",
    width_key: str = "surrogate.width",
) -> None:
    """Copy a ResNet classifier's weights into ``target`` (in place), key by key.

    ``target`` is the surrogate's ``(C + 1)``-channel ResNet or an explainer's trunk: every one of
    its tensors is copied from the classifier's tensor of the same key (the classifier may hold
    more, e.g. ``fc``). A first convolution with one input channel more than the classifier's
    (the surrogate's mask channel) gets the classifier's weights on its image channels and zeros
    on the mask channel.

    Args:
        target: the network to fill.
        classifier_net: the trained classifier.
        option: the config option named in errors.
        width_key: the config key whose width must equal ``model.width``, named in errors.

    Raises:
        ValueError: if ``target`` has a tensor the classifier lacks (another architecture) or
            one of another shape (another width).
    """
    source, wanted = classifier_net.state_dict(), target.state_dict()
    missing = [key for key in wanted if key not in source]
    if missing:
        raise ValueError(
            f"{option}: classifier needs a ResNet-18 classifier of the same "
            f"architecture; the classifier has no {missing[0]!r}"
        )
    new = {}
    for key, want in wanted.items():
        value = source[key]
        if key == "conv1.weight" and value.shape[1] + 1 == want.shape[1]:
            value = torch.cat([value, torch.zeros_like(value[:, :1])], dim=1)
        if value.shape != want.shape:
            raise ValueError(
                f"{option}: classifier needs {width_key} = model.width "
                f"({key}: {tuple(value.shape)} vs {tuple(want.shape)})"
            )
        new[key] = value.to(want.dtype)
    target.load_state_dict(new)
