"""Neural network modules (``nn.Module`` only): CIFAR ResNet-18, U-Net."""

from simshap.models.resnet import cifar_resnet18
from simshap.models.unet import UNet

__all__ = [
    "cifar_resnet18",
    "UNet",
]
