"""Image DataModules: CIFAR-10 and Fashion-MNIST (32x32), on the arrays of :mod:`.images`.

Both hold the images as ``uint8`` tensors ``(N, C, 32, 32)`` and serve normalized float
batches; the training loader augments (random crop 32 with padding 4, horizontal flip), the
validation split is carved from the official training set with a seed, and
:meth:`ImageDataModule.test_tensors` returns normalized test tensors for evaluation.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from simshap.data.images import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    Arrays,
    load_cifar10_arrays,
    load_fashion_mnist_arrays,
)
from simshap.errors import UserError

__all__ = ["CIFAR10DataModule", "FashionMNISTDataModule", "ImageDataModule"]


# --------------------------------------------------------------------------- datasets


class _ImageDataset(Dataset):
    """``uint8`` images -> normalized float tensors, optionally augmented per sample."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        augment: v2.Transform | None,
    ) -> None:
        self.images, self.labels = images, labels
        self.mean, self.std = mean, std
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.images[i]
        if self.augment is not None:
            img = self.augment(img)
        x = (img.float() / 255.0 - self.mean) / self.std
        return x, self.labels[i]


class ImageDataModule(pl.LightningDataModule, ABC):
    """Common machinery: seeded validation split, augmentation, normalization, loaders.

    Subclasses implement :meth:`load_arrays`. Images are loaded once, on :meth:`setup` (or the
    first use of a loader or helper).

    Args:
        mean: per-channel normalization mean.
        std: per-channel normalization std.
        batch_size: images per batch.
        num_workers: DataLoader workers.
        val_size: validation images carved from the training set (a fraction if < 1).
        seed: seed of the validation split and of the training shuffle.
        augment: random crop (padding 4) and horizontal flip on training images.

    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: float | int = 0.1,
        seed: int = 0,
        augment: bool = True,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        if val_size < 0:
            raise UserError(f"val_size must be >= 0, got {val_size}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.seed = seed
        self.augment = augment
        self._arrays: dict[str, torch.Tensor] | None = None

    @abstractmethod
    def load_arrays(self) -> Arrays:
        """Return ``(x_train, y_train, x_test, y_test)``, images ``uint8 (N, C, 32, 32)``."""

    @property
    def num_channels(self) -> int:
        """Image channels."""
        return self.mean.shape[0]

    def setup(self, stage: str | None = None) -> None:
        """Load the images and carve the seeded validation split (idempotent)."""
        if self._arrays is not None:
            return
        x_tr, y_tr, x_te, y_te = self.load_arrays()
        n = len(y_tr)
        n_val = int(round(self.val_size * n)) if self.val_size < 1 else int(self.val_size)
        if n_val >= n:
            raise UserError(f"val_size={self.val_size} leaves no training images out of {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        val, train = perm[:n_val].sort().values, perm[n_val:].sort().values
        self._arrays = {
            "x_train": x_tr[train],
            "y_train": y_tr[train],
            "x_val": x_tr[val],
            "y_val": y_tr[val],
            "x_test": x_te,
            "y_test": y_te,
        }

    def arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw ``uint8`` images and labels of ``split`` (``train``, ``val`` or ``test``)."""
        if split not in ("train", "val", "test"):
            raise UserError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.setup()
        assert self._arrays is not None
        return self._arrays[f"x_{split}"], self._arrays[f"y_{split}"]

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` images ``(N, C, H, W)`` -> normalized ``float32`` on the same device."""
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float() / 255.0 - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images -> pixel intensities in [0, 1] (for plotting)."""
        return (x * self.std.to(x.device) + self.mean.to(x.device)).clamp(0, 1)

    def test_tensors(
        self, n: int | None = None, split: str = "test"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized images ``(n, C, 32, 32)`` and labels of the first ``n`` of ``split``."""
        x, y = self.arrays(split)
        if n is not None:
            x, y = x[:n], y[:n]
        return self.normalize(x), y

    def _transform(self) -> v2.Transform:
        return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])

    def _loader(self, split: str, train: bool) -> DataLoader:
        x, y = self.arrays(split)
        augment = self._transform() if (train and self.augment) else None
        ds = _ImageDataset(x, y, self.mean, self.std, augment)
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=train,
            drop_last=train and len(ds) > self.batch_size,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed) if train else None,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Return shuffled, augmented training batches ``(x float32, y int64)``."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Return validation batches (no augmentation), in order."""
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """Return test batches (no augmentation), in order."""
        return self._loader("test", train=False)


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10 (3x32x32, 10 classes) with the standard normalization.

    Args:
        source: ``"torchvision"``, ``"subset"`` (``cifar10-subset.npz``) or ``"auto"``; see
            :func:`load_cifar10_arrays`.
        data_dir: folder holding the files.
        download: allow torchvision to download when absent and online.
        **kwargs: :class:`ImageDataModule` options (``batch_size``, ``num_workers``,
            ``val_size``, ``seed``, ``augment``).

    """

    classes = CIFAR10_CLASSES
    num_classes = 10

    def __init__(
        self,
        source: str = "auto",
        data_dir: str | os.PathLike[str] | None = None,
        download: bool | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(CIFAR10_MEAN, CIFAR10_STD, **kwargs)  # type: ignore[arg-type]
        if source not in ("auto", "torchvision", "subset"):
            raise UserError(f"source must be 'torchvision', 'subset' or 'auto', got {source!r}")
        self.source = source
        self.data_dir = data_dir
        self.download = download

    def load_arrays(self) -> Arrays:  # noqa: D102
        return load_cifar10_arrays(self.source, self.data_dir, self.download)


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST zero-padded to 1x32x32 (10 classes), normalized.

    Args:
        data_dir: folder searched before the Debian package's folder; see
            :func:`load_fashion_mnist_arrays`.
        **kwargs: :class:`ImageDataModule` options.

    """

    classes = FASHION_MNIST_CLASSES
    num_classes = 10

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, **kwargs: object) -> None:
        super().__init__(FASHION_MNIST_MEAN, FASHION_MNIST_STD, **kwargs)  # type: ignore[arg-type]
        self.data_dir = data_dir

    def load_arrays(self) -> Arrays:  # noqa: D102
        return load_fashion_mnist_arrays(self.data_dir, pad_to=32)
