"""The user's images: a torchvision ``ImageFolder`` directory or a ``.npz`` of arrays.

Every image is decoded with PIL through :class:`torchvision.datasets.ImageFolder`, checked
(mode, size) and turned into a normalized float tensor by ``torchvision.transforms.v2``. A file
that cannot be decoded, has the wrong mode (``L`` for one channel, ``RGB`` for three) or the
wrong size raises :class:`~simshap.errors.UserError` naming the file and the fix.

A ``.npz`` holds ``x_train`` / ``y_train`` and optionally ``x_test`` / ``y_test`` (or ``x`` /
``y``): ``uint8`` images in ``(N, C, H, W)`` or ``(N, H, W, C)`` (or ``(N, H, W)`` for one
channel), or floats in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import datasets
from torchvision.transforms import v2

from simshap.errors import MissingFileError, UserError

__all__ = [
    "ImageArrays",
    "augment_images",
    "check_image",
    "image_transform",
    "load_image_dataset",
]

MODES = {1: "L", 3: "RGB"}


@dataclass
class ImageArrays:
    """Normalized images and labels of one data set.

    Attributes:
        x_train: ``(N, C, H, W)`` float32, normalized with ``mean`` / ``std``.
        y_train: ``(N,)`` int64 labels.
        x_test: held-out images (the last fifth of the shuffled training images if the data set
            has no test split).
        y_test: their labels.
        classes: class names.
        mean: per-channel mean used for normalization.
        std: per-channel standard deviation.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: list[float]
    std: list[float]


def image_transform(mean: list[float], std: list[float]) -> v2.Compose:
    """PIL image or uint8 tensor -> normalized float32 tensor ``(C, H, W)``."""
    return v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    )


def check_image(img: Image.Image, channels: int, size: tuple[int, int] | None, name: str) -> None:
    """Raise a :class:`UserError` naming ``name`` if ``img`` has the wrong mode or size.

    Args:
        img: a decoded PIL image.
        channels: 1 (mode ``L``) or 3 (mode ``RGB``).
        size: ``(H, W)`` expected, or ``None`` for any.
        name: the file (or request part) named in the message.
    """
    mode = MODES[channels]
    if img.mode != mode:
        raise UserError(
            f"{name}: image mode {img.mode!r}, expected {mode!r} ({channels} channel(s)); "
            f"convert it (PIL: img.convert({mode!r})) or set dataset.channels"
        )
    if size is not None and (img.height, img.width) != tuple(size):
        raise UserError(
            f"{name}: image of {img.height}x{img.width} pixels, expected {size[0]}x{size[1]}; "
            "resize the images or set dataset.image_size"
        )


def _open(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(
            f"{path}: not a readable image ({type(err).__name__}: {err}); remove or re-save it"
        ) from None
    except Image.DecompressionBombError as err:
        raise UserError(f"{path}: {err}; shrink the image") from None


def _folder(root: Path, channels: int, size: tuple[int, int] | None, tf: Any) -> tuple:
    try:
        ds = datasets.ImageFolder(str(root), loader=_open)
    except FileNotFoundError as err:
        raise UserError(
            f"{root}: {err}; expected ImageFolder layout ROOT/<class>/<image>.png"
        ) from None
    xs, ys = [], []
    for path, label in ds.samples:
        img = _open(path)
        check_image(img, channels, size, path)
        if size is None:
            size = (img.height, img.width)
        xs.append(tf(img))
        ys.append(label)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long), list(ds.classes)


def _npz_images(a: np.ndarray, channels: int, name: str) -> torch.Tensor:
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise UserError(f"{name}: expected (N, C, H, W) or (N, H, W, C) images, got {a.shape}")
    if a.shape[1] != channels and a.shape[-1] == channels:
        a = a.transpose(0, 3, 1, 2)
    if a.shape[1] != channels:
        raise UserError(
            f"{name}: images have shape {a.shape[1:]}, expected {channels} channel(s); "
            "set dataset.channels"
        )
    t = torch.from_numpy(np.ascontiguousarray(a))
    if t.dtype == torch.uint8:
        return t.float() / 255.0
    t = t.float()
    if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise UserError(f"{name}: float images must be finite and in [0, 1]; or store uint8")
    return t


def _npz(path: Path, channels: int) -> tuple:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable .npz ({err})") from None
    keys = set(z.files)
    pairs = [("x_train", "y_train"), ("x_test", "y_test")] if "x_train" in keys else [("x", "y")]
    out = []
    for kx, ky in pairs:
        if kx not in keys or ky not in keys:
            if kx == "x_test":
                continue
            raise UserError(f"{path}: needs arrays {kx!r} and {ky!r} (has {sorted(keys)})")
        x = _npz_images(z[kx], channels, f"{path}[{kx}]")
        y = torch.from_numpy(np.asarray(z[ky]).astype(np.int64))
        if len(y) != len(x):
            raise UserError(f"{path}: {len(x)} images but {len(y)} labels in {ky!r}")
        out.append((x, y))
    return out


def _split(x: torch.Tensor, y: torch.Tensor, seed: int) -> tuple:
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = max(1, len(x) // 5)
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_image_dataset(
    path: str | Path,
    channels: int = 3,
    image_size: tuple[int, int] | list[int] | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    seed: int = 0,
) -> ImageArrays:
    """Read the user's images: an ``ImageFolder`` directory or a ``.npz``.

    A directory with ``train/`` and ``test/`` subfolders (each in ``ImageFolder`` layout) gives
    both splits; otherwise a fifth of the images (seeded) is held out.

    Args:
        path: the directory or ``.npz`` file.
        channels: 1 or 3.
        image_size: ``(H, W)`` every image must have (``None``: the first image's size).
        mean: per-channel normalization mean (default 0.5).
        std: per-channel normalization standard deviation (default 0.5).
        seed: seed of the train / test split when the data set has none.

    Returns:
        The normalized images and labels.

    Raises:
        UserError: a missing path, an unreadable file, a wrong mode or size (naming the file).
    """
    path = Path(path)
    if channels not in MODES:
        raise UserError(f"dataset.channels must be 1 or 3, got {channels!r}")
    mean = list(mean) if mean is not None else [0.5] * channels
    std = list(std) if std is not None else [0.5] * channels
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise UserError(
            f"dataset.mean / dataset.std need {channels} values each (std > 0), got {mean}, {std}"
        )
    size = tuple(image_size) if image_size is not None else None
    if not path.exists():
        raise MissingFileError(f"dataset.path {path} does not exist")
    if path.is_file():
        parts = _npz(path, channels)
        classes: list[str] | None = None
        norm = v2.Normalize(mean, std)
        parts = [(norm(x), y) for x, y in parts]
        if size is not None and tuple(parts[0][0].shape[-2:]) != size:
            raise UserError(
                f"{path}: images are {tuple(parts[0][0].shape[-2:])}, expected {size}; "
                "resize them or set dataset.image_size"
            )
    else:
        tf = image_transform(mean, std)
        subs = [path / "train", path / "test"]
        roots = subs if subs[0].is_dir() and subs[1].is_dir() else [path]
        parts, classes = [], None
        for root in roots:
            x, y, cls = _folder(root, channels, size, tf)
            size = tuple(x.shape[-2:])
            if classes is not None and cls != classes:
                raise UserError(f"{root}: classes {cls} differ from train/'s {classes}")
            classes = cls
            parts.append((x, y))
    if len(parts) == 1:
        x_a, y_a, x_b, y_b = _split(*parts[0], seed)
        parts = [(x_a, y_a), (x_b, y_b)]
    (x_tr, y_tr), (x_te, y_te) = parts
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    return ImageArrays(
        x_tr.float(),
        y_tr,
        x_te.float(),
        y_te,
        classes or [str(i) for i in range(n_classes)],
        mean,
        std,
    )


def augment_images(
    x: torch.Tensor, flips: bool = True, crops: int = 0, pad: int = 4, seed: int = 0
) -> torch.Tensor:
    """Training rows of ``x`` with fixed augmented copies: flips, then shifted crops.

    The copies are fixed rows, drawn once from ``seed`` (so SimSHAP's per-row target averaging
    stays valid: a row is always the same image). ``flips`` appends the horizontal mirror
    images; each of ``crops`` rounds then appends every row so far shifted by a random offset
    of up to ``pad`` pixels each way (reflection padding, then a crop of the original size, as
    ``RandomCrop(size, padding=pad, padding_mode="reflect")``).

    Args:
        x: ``(N, C, H, W)`` images.
        flips: add the mirror images.
        crops: rounds of shifted copies (0: none).
        pad: the largest shift in pixels (below H and W).
        seed: seeds the offsets.

    Returns:
        ``(N * (1 + flips) * (1 + crops), C, H, W)`` rows, the originals first.
    """
    if isinstance(crops, bool) or not isinstance(crops, int) or crops < 0:
        raise UserError(f"explainer.crops must be an integer >= 0, got {crops!r}")
    base = torch.cat([x, x.flip(-1)]) if flips else x
    if crops == 0:
        return base
    n, _, h, w = base.shape
    if not 0 < pad < min(h, w):
        raise UserError(f"the crop padding must lie in 1..{min(h, w) - 1} pixels, got {pad}")
    gen = torch.Generator().manual_seed(seed)
    padded = torch.nn.functional.pad(base, (pad, pad, pad, pad), mode="reflect")
    out = [base]
    for _ in range(crops):
        offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
        shifted = torch.empty_like(base)
        for dy, dx in offsets.unique(dim=0).tolist():  # at most (2 pad + 1)^2 groups
            rows = ((offsets[:, 0] == dy) & (offsets[:, 1] == dx)).nonzero().squeeze(1)
            shifted[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
        out.append(shifted)
    return torch.cat(out)
