"""The two image data sets of the causal study: scikit-learn's digits and Fashion-MNIST.

Both come back as float images in [0, 1] of shape ``(N, 1, H, W)`` with fixed, seeded splits, so
that every model of a zoo sees the same training subset and the same 100 explained test images.
An optional validation split is held out of the training images (for choices such as the
number of epochs, which must not look at the test set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from simshap.errors import UserError

__all__ = ["STUDY_DATASETS", "StudyData", "load_study_data"]

STUDY_DATASETS: tuple[str, ...] = ("digits", "fashion_mnist")


@dataclass
class StudyData:
    """Images of one study data set.

    Attributes:
        name: data set name.
        x_train: training images ``(N, 1, H, W)`` in [0, 1].
        y_train: training labels ``(N,)``.
        x_test: test images (accuracy is measured on them).
        y_test: test labels.
        x_explain: the fixed images that every model explains ``(n_explain, 1, H, W)``.
        y_explain: their labels.
        x_val: validation images held out of the training set (possibly empty).
        y_val: their labels.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_explain: torch.Tensor
    y_explain: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.x_train.shape[-2]), int(self.x_train.shape[-1])


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.as_tensor(bunch.target, dtype=torch.long)


def load_study_data(
    name: str,
    n_train: int | None = None,
    n_test: int | None = None,
    n_explain: int = 100,
    seed: int = 0,
    data_dir: str | None = None,
    n_val: int = 0,
) -> StudyData:
    """Load a study data set with seeded, fixed splits.

    ``digits`` (1,797 images, 8x8) is split 70/30 into train and test. ``fashion_mnist`` uses its
    own 60k/10k split. The validation images are the last ``n_val`` of a seeded permutation of
    the training images; ``n_train`` / ``n_test`` take the first of the remaining training images
    and of a permutation of the test images; the explained images are the first ``n_explain``
    test images of that permutation.

    Args:
        name: ``"digits"`` or ``"fashion_mnist"``.
        n_train: training subset size (default: all).
        n_test: test subset size (default: all).
        n_explain: number of fixed explained test images.
        seed: seed of the split permutations.
        data_dir: where the Fashion-MNIST idx files are (default: the project's search path).
        n_val: validation images held out of the training images (0: none).

    Returns:
        The :class:`StudyData`.

    Raises:
        UserError: unknown name, missing Fashion-MNIST files, or subset sizes out of range.
    """
    gen = torch.Generator().manual_seed(seed)
    if name == "digits":
        x, y = _digits()
        perm = torch.randperm(len(x), generator=gen)
        n_tr = int(round(0.7 * len(x)))
        x_tr, y_tr = x[perm[:n_tr]], y[perm[:n_tr]]
        x_te, y_te = x[perm[n_tr:]], y[perm[n_tr:]]
    elif name == "fashion_mnist":
        from simshap.data.images import load_fashion_mnist_arrays

        try:
            x_tr, y_tr, x_te, y_te = load_fashion_mnist_arrays(data_dir, pad_to=28)
        except FileNotFoundError as err:
            raise UserError(str(err)) from None
        x_tr, x_te = x_tr.float() / 255.0, x_te.float() / 255.0
        p_tr = torch.randperm(len(x_tr), generator=gen)
        x_tr, y_tr = x_tr[p_tr], y_tr[p_tr]
        p_te = torch.randperm(len(x_te), generator=gen)
        x_te, y_te = x_te[p_te], y_te[p_te]
    else:
        raise UserError(
            f"unknown study dataset {name!r}; choose one of {', '.join(STUDY_DATASETS)}"
        )
    if not 0 <= n_val < len(x_tr):
        raise UserError(f"n_val={n_val} is out of range for {name}: choose 0..{len(x_tr) - 1}")
    x_va, y_va = x_tr[len(x_tr) - n_val :], y_tr[len(y_tr) - n_val :]
    x_tr, y_tr = x_tr[: len(x_tr) - n_val], y_tr[: len(y_tr) - n_val]
    for label, n, avail in (("n_train", n_train, len(x_tr)), ("n_test", n_test, len(x_te))):
        if n is not None and not 1 <= n <= avail:
            raise UserError(f"{label}={n} is out of range for {name}: choose 1..{avail}")
    if n_train is not None:
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]
    if n_test is not None:
        x_te, y_te = x_te[:n_test], y_te[:n_test]
    if not 1 <= n_explain <= len(x_te):
        raise UserError(f"n_explain={n_explain} must be between 1 and the test size {len(x_te)}")
    return StudyData(
        name,
        x_tr,
        y_tr,
        x_te,
        y_te,
        x_te[:n_explain].clone(),
        y_te[:n_explain].clone(),
        x_va,
        y_va,
    )
