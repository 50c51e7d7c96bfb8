"""Neural network modules (``nn.Module`` only): MLP, masked input, CIFAR ResNet-18, U-Net."""

from simshap.models.explainer_nets import (
    MLPExplainerNet,
    ResNetExplainerNet,
    UNetExplainerNet,
    build_explainer_net,
)
from simshap.models.mlp import MLP, MaskedInput
from simshap.models.resnet import cifar_resnet18
from simshap.models.unet import UNet

__all__ = [
    "MLP",
    "MaskedInput",
    "MLPExplainerNet",
    "ResNetExplainerNet",
    "UNetExplainerNet",
    "build_explainer_net",
    "cifar_resnet18",
    "UNet",
]
