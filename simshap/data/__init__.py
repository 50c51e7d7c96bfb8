"""Data sets and Lightning DataModules, tabular and images.

Tabular: breast_cancer, census, news, bankruptcy. Images: CIFAR-10, Fashion-MNIST (32x32).
"""

from simshap.data.image_modules import CIFAR10DataModule, FashionMNISTDataModule, ImageDataModule
from simshap.data.images import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    load_cifar10_arrays,
    load_fashion_mnist_arrays,
)
from simshap.data.tabular import (
    TABULAR_DATASETS,
    TabularData,
    load_raw,
    load_tabular,
    resolve_data_dir,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "TABULAR_DATASETS",
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "TabularData",
    "load_cifar10_arrays",
    "load_fashion_mnist_arrays",
    "load_raw",
    "load_tabular",
    "resolve_data_dir",
]
